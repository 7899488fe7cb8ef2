package fusefs

import (
	"fmt"
	"log"
	"os"

	"github.com/jacobsa/fuse"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/meta"
)

// MountOptions are the mount-time choices.
type MountOptions struct {
	Source     string // shown as the mount's source (the cipher directory)
	ReadOnly   bool
	AllowOther bool
	Tier       meta.Tier
	ErrorLog   *log.Logger
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
	}
	if o.AllowOther {
		cfg.Options["allow_other"] = ""
	}
	return cfg
}

// MountDevice mounts a FUSE file system at dir with mount(2) on a /dev/fuse
// descriptor this process opens and keeps, so that it can attach the
// fast-path program to the connection (an ioctl on that descriptor). Serve
// it with fuse.Mount("/dev/fd/N", ...); the mount options of o go into the
// mount data here, because jacobsa/fuse does not mount a /dev/fd/N path
// itself. Needs CAP_SYS_ADMIN.
func MountDevice(dir string, o MountOptions) (*os.File, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	dev := os.NewFile(uintptr(fd), "/dev/fuse")
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,default_permissions", fd, os.Getuid(), os.Getgid())
	if o.AllowOther {
		data += ",allow_other"
	}
	flags := uintptr(unix.MS_NODEV | unix.MS_NOSUID)
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(o.Source, dir, "fuse.cryptfs", flags, data); err != nil {
		dev.Close()
		return nil, fmt.Errorf("mount(2) %s: %w", dir, err)
	}
	return dev, nil
}
