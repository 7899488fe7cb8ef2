package daemon

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/bpf/reqstats"
	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/fusefs"
	"github.com/cryptfs/cryptfs/internal/harden"
	"github.com/cryptfs/cryptfs/internal/lowerwatch"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"github.com/cryptfs/cryptfs/meta"
)

// Options are what a mount needs. CipherDir and Mountpoint are absolute
// paths the caller checked (the mountpoint an empty directory, neither
// inside the other).
type Options struct {
	CipherDir  string
	Mountpoint string
	Crypt      crypt.Options // from the config (config.Config.CryptOptions)
	Master     []byte        // the master key; Serve wipes it
	FastPath   Mode          // the tier, or Auto
	ReadOnly   bool
	AllowOther bool // other users may use the mount (as root: files are created as the caller)
	Log        zerolog.Logger
	LogFile    string // where Log goes, shown by cryptfs status ("" for standard error)
	// BPFShadow runs the ebpf tier without attaching the program: the maps
	// are filled as with the kernel hook, for tests on kernels without it.
	BPFShadow bool
	// CPUProfile and MemProfile, when set, are files to write a CPU
	// profile of the whole mount and a heap profile at unmount to.
	CPUProfile string
	MemProfile string
	// Ready, if not nil, is called exactly once: with nil once the mount
	// answers, or with the error that kept it from mounting.
	Ready func(error)
	// Mounted, if not nil, is called with the mount's status (its tier
	// among it) just before Ready(nil).
	Mounted func(control.Status)

	// ReverseConfig, if set, is reverse mode: CipherDir is a plaintext
	// directory shown encrypted and read-only (package reversefs), with
	// this config file as the view's cryptfs.conf.
	ReverseConfig string

	lowerFD int // the locked cipher directory (set by Serve)

	// Device, if set, is a /dev/fuse descriptor already mounted at
	// Mountpoint (MountDevice: root mounts a user's home for a daemon
	// that runs as that user). Serve serves it instead of mounting, and
	// closes it.
	Device *os.File
	// Idle, if positive, unmounts the mount once it has served no request
	// for that long and nothing keeps it busy (see idle.go).
	Idle time.Duration
	// SharedStorage: CipherDir may change behind the daemon's back (sync
	// clients); see CheckShared and package fusefs (shared.go).
	SharedStorage bool
	// Transport is how requests travel between the kernel and the daemon
	// (transport.go): fuse.TransportAuto (FUSE over io_uring where the
	// kernel offers it, else /dev/fuse), TransportURing (or no mount), or
	// TransportDev (the zero value).
	Transport fuse.Transport
	// Poll is whether the reader of /dev/fuse polls it before it sleeps
	// (transport.go; PollAuto, the zero value, decides by Poll.Enabled).
	Poll Poll
}

// Serve mounts o.CipherDir at o.Mountpoint and serves it until it is
// unmounted (by cryptfs unmount, umount, or ctx: its cancellation, e.g.
// by SIGINT or SIGTERM through signal.NotifyContext, unmounts, lazily when
// the mount is busy). It wipes the key material when the mount ends. The
// process's umask, descriptor limit and soft memory limit are set for a
// daemon: Serve is meant to be the process's one job.
func Serve(ctx context.Context, o Options) (err error) {
	ready := o.Ready
	if ready == nil {
		ready = func(error) {}
	}
	readied := false
	o.Ready = func(err error) {
		if !readied {
			readied = true
			ready(err)
		}
	}
	defer func() {
		if err != nil {
			o.Ready(err)
		}
	}()
	if err := harden.Process(); err != nil { // no core dump, no ptrace: it holds keys
		crypt.Wipe(o.Master)
		return err
	}
	if o.ReverseConfig != "" {
		return serveReverse(ctx, o)
	}
	suite, err := crypt.New(o.Master, o.Crypt)
	crypt.Wipe(o.Master)
	if err != nil {
		return err
	}
	defer suite.Wipe()
	// One daemon per cipher tree, from before mount(2) until the mount is
	// gone (the lock is released last, after the deferred unmount work).
	lock, err := lockTree(o)
	if err != nil {
		return err
	}
	defer lock.Close()
	o.lowerFD = lock.Dir()

	syscall.Umask(0) // modes come from the kernel, already masked
	raiseFileLimit()
	stopHeap := make(chan struct{})
	defer close(stopHeap)
	governHeap(stopHeap)
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	if err := CheckShared(o.SharedStorage, false, o.FastPath, o.BPFShadow); err != nil {
		return err
	}
	var t tierChoice
	if o.SharedStorage {
		t = sharedTier(o.FastPath)
	} else if t, err = chooseTier(o.FastPath, o.BPFShadow); err != nil {
		return err
	}
	defer t.close()
	err = serveTier(ctx, o, suite, t)
	if errors.Is(err, errAttachFailed) && o.FastPath.Auto {
		o.Log.Warn().Err(err).Msg("falling back to the kernel-cache tier")
		t.close()
		t = tierChoice{tier: meta.KernelCache, reason: "auto: " + err.Error(), wanted: t.wanted, kernel: t.kernel}
		err = serveTier(ctx, o, suite, t)
	}
	return err
}

// serveTier mounts with one tier and serves until unmounted.
func serveTier(ctx context.Context, o Options, suite *crypt.Suite, t tierChoice) error {
	var sink meta.Sink
	if t.fp != nil {
		sink = fastpath.NewSink(t.fp, o.Log)
	}
	notifier := fuse.NewNotifier()
	var watch *lowerwatch.Watcher
	if o.SharedStorage {
		// Change notification on the cipher tree (package lowerwatch):
		// without it, outside changes show within the 1 s bound only.
		var werr error
		if watch, werr = lowerwatch.New(); werr != nil {
			o.Log.Warn().Err(werr).Msg("no change notification on the cipher tree: outside changes show within the 1 s bound only")
			watch = nil
		} else {
			defer watch.Close() // before fsys.Close, deferred below
		}
	}
	fsys, err := fusefs.New(fusefs.Config{
		Lower:    o.CipherDir,
		Suite:    suite,
		Tier:     t.tier,
		FastPath: sink,
		ReadOnly: o.ReadOnly,
		Log:      o.Log,
		Retain:   fastpath.MaxAttrs,
		LowerFD:  o.lowerFD,
		Shared:   o.SharedStorage,
		Watch:    watch,
	}, notifier)
	if err != nil {
		return err
	}
	defer fsys.Close()

	mopts := fusefs.MountOptions{
		Source:     o.CipherDir,
		ReadOnly:   o.ReadOnly,
		AllowOther: o.AllowOther,
		Tier:       t.tier,
		Shared:     o.SharedStorage,
		Transport:  o.Transport,
		Poll:       o.Poll.Enabled(),
	}
	if o.Log.Debug().Enabled() {
		// jacobsa/fuse formats a line for every failed request that is not
		// ENOENT-like (EOPNOTSUPP for security.capability before every
		// write among them) before the writer sees it: only worth it when
		// the line is kept.
		mopts.ErrorLog = log.New(zerologWriter{o.Log}, "", 0)
	}
	server := fuse.NewServerWithNotifier(notifier, fsys.Server())
	var mfs *fuse.MountedFileSystem
	devFD := -1
	target, release, err := mountTarget(o.Mountpoint)
	if err != nil {
		return err
	}
	defer release()
	if t.attach || o.Device != nil {
		dev, err := o.device(target, mopts)
		if err != nil {
			return err
		}
		// jacobsa/fuse wraps /dev/fd/N in an *os.File of its own and closes
		// it when the connection ends; dev must not own the same number, or
		// its finalizer closes it under the library's reads. The library
		// gets a duplicate; dev stays open (and reachable) until we return.
		defer dev.Close()
		if devFD, err = unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			mountinfo.Unmount(o.Mountpoint, true)
			return fmt.Errorf("dup /dev/fuse: %w", err)
		}
		if mfs, err = fuse.Mount(fmt.Sprintf("/dev/fd/%d", devFD), server, fusefs.MountConfig(mopts)); err != nil {
			mountinfo.Unmount(o.Mountpoint, true)
			return fmt.Errorf("serve %s: %w", o.Mountpoint, err)
		}
		if err := t.attachTo(devFD); err != nil {
			mountinfo.Unmount(o.Mountpoint, false)
			mfs.Join(context.Background())
			return fmt.Errorf("%w: %w", errAttachFailed, err)
		}
	} else if mfs, err = fuse.Mount(target, server, fusefs.MountConfig(mopts)); err != nil {
		return fmt.Errorf("mount %s: %w", o.Mountpoint, err)
	}
	release()

	h := &controlHandler{fsys: fsys, fp: t.fp, status: control.Status{
		PID: os.Getpid(), Mountpoint: o.Mountpoint, CipherDir: o.CipherDir,
		Tier: t.tier.String(), TierReason: t.reason, ReadOnly: o.ReadOnly,
		Started: time.Now(), LogFile: o.LogFile,
	}}
	t.describe(&h.status)
	h.status.Transport, h.status.TransportReason = transportStatus(o.Transport, o.Poll, mfs.Transport())
	h.status.Poll = pollStatus(mfs.Transport())
	h.status.StartTicks, _, _ = control.ProcessStart(os.Getpid())
	if h.tree = openPathTree(o, suite); h.tree != nil {
		defer h.tree.Close() // after ctl.Close, deferred below
	}
	if t.fp != nil {
		if info, err := t.fp.Program().Info(); err == nil {
			if id, ok := info.ID(); ok {
				h.status.BPFProgramID = uint32(id)
			}
		}
	}
	if dev, err := control.Device(o.Mountpoint); err == nil {
		h.status.Device = dev
		raiseReadahead(dev, o.Log)
		if os.Geteuid() == 0 {
			if col, err := reqstats.Open(dev); err == nil {
				h.col = col
				defer col.Close() // after ctl.Close: no stats request reads it any more
			} else {
				o.Log.Info().Err(err).Msg("no tracepoint statistics; cryptfs stats shows the daemon's own counters")
			}
		}
		if ctl, err := control.Listen(dev, h); err == nil {
			defer ctl.Close()
		} else {
			o.Log.Warn().Err(err).Msg("no control socket: cryptfs status/stats will not see this mount")
		}
	}
	o.Log.Info().Str("mountpoint", o.Mountpoint).Str("fast_path", t.tier.String()).
		Str("transport", h.status.Transport).Str("transport_reason", h.status.TransportReason).Msg("mounted")
	if o.Mounted != nil {
		o.Mounted(h.Status())
	}
	o.Ready(nil)
	sdNotify("READY=1\nSTATUS=Mounted " + o.Mountpoint + " (fast path: " + t.tier.String() + ")")

	if watch != nil {
		// Notifications only while served: the goroutine may stay
		// blocked in one at unmount (the process ends soon after).
		go watch.Run(fsys.LowerChanged)
	}
	served := make(chan struct{})
	defer close(served)
	if o.Idle > 0 {
		go idleLock(served, o, h)
	}
	go func() {
		select {
		case <-served:
			return
		case <-ctx.Done():
		}
		o.Log.Info().Str("reason", context.Cause(ctx).Error()).Msg("unmounting")
		if devFD >= 0 {
			fastpath.Detach(devFD)
		}
		if err := mountinfo.Unmount(o.Mountpoint, false); err != nil {
			o.Log.Warn().Err(err).Msg("unmount failed (busy?); detaching lazily")
			mountinfo.Unmount(o.Mountpoint, true)
		}
	}()
	if err := mfs.Join(context.Background()); err != nil {
		return fmt.Errorf("serving %s: %w", o.Mountpoint, err)
	}
	sdNotify("STOPPING=1")
	fsys.LogWatchStats()
	if o.MemProfile != "" {
		// The heap as the mount leaves it: the inode table at its largest.
		if f, err := os.Create(o.MemProfile); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	return nil
}
