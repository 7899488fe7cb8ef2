package fusefs

import (
	"log"

	"github.com/jacobsa/fuse"

	"github.com/cryptfs/cryptfs/meta"
)

// MountOptions are the mount-time choices.
type MountOptions struct {
	Source     string // shown as the mount's source (the cipher directory)
	ReadOnly   bool
	AllowOther bool
	Tier       meta.Tier
	ErrorLog   *log.Logger
	// Shared is shared-storage mode: the kernel's writeback cache is off
	// (it would keep its own size of every regular file, whatever the
	// lower file says).
	Shared bool
	// Transport: /dev/fuse or FUSE over io_uring (fuse.MountConfig.Transport).
	// The server serves either (Server).
	Transport fuse.Transport
	// Poll: the reader of /dev/fuse polls it for a short, self-tuning
	// window before it sleeps (fuse.MountConfig.EnableAdaptivePolling;
	// not used with io_uring).
	Poll bool
}

// MountConfig returns the jacobsa/fuse mount configuration.
//
// The kernel checks permissions (default_permissions) from the attributes
// the daemon reports, so access control is exactly the lower files' modes
// and owners. READDIRPLUS fills the kernel's caches except in the off
// tier, whose replies must not be cached anyway. Reads are asynchronous
// and directory operations parallel: the daemon locks per inode itself.
func MountConfig(o MountOptions) *fuse.MountConfig {
	cfg := &fuse.MountConfig{
		FSName:               o.Source,
		Subtype:              "cryptfs",
		ReadOnly:             o.ReadOnly,
		EnableReaddirplus:    o.Tier != meta.Off,
		EnableAsyncReads:     true,
		EnableParallelDirOps: true,
		// The daemon clears set-ID bits itself (FS.killSuidgid), so the
		// kernel stops asking for security.capability before every
		// write: untar sent 3.6 such GETXATTRs per file.
		EnableHandleKillPrivV2: true,
		ErrorLogger:            o.ErrorLog,
		Options:                map[string]string{},
		Transport:              o.Transport,
		EnableAdaptivePolling:  o.Poll,
	}
	cfg.DisableWritebackCaching = o.Shared
	if o.AllowOther {
		cfg.Options["allow_other"] = ""
	}
	return cfg
}
