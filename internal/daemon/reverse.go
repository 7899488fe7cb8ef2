package daemon

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jacobsa/fuse"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"github.com/cryptfs/cryptfs/internal/reversefs"
)

// serveReverse is Serve for reverse mode (Options.ReverseConfig set):
// o.CipherDir is the plaintext directory, shown encrypted and read-only at
// o.Mountpoint by package reversefs. No fast path: the view is read by
// backup tools, whose work is reading contents.
func serveReverse(ctx context.Context, o Options) error {
	suite, err := crypt.New(o.Master, o.Crypt)
	if err != nil {
		crypt.Wipe(o.Master)
		return err
	}
	defer suite.Wipe()
	rev, err := crypt.NewReverse(o.Master, suite)
	crypt.Wipe(o.Master)
	if err != nil {
		return err
	}
	defer rev.Wipe()
	raiseFileLimit()

	fsys, err := reversefs.New(reversefs.Config{Plain: o.CipherDir, Config: o.ReverseConfig, Reverse: rev, Log: o.Log})
	if err != nil {
		return err
	}
	defer fsys.Close()
	cfg := reversefs.MountConfig(o.CipherDir, o.AllowOther)
	if o.Log.Debug().Enabled() {
		cfg.ErrorLogger = log.New(zerologWriter{o.Log}, "", 0)
	}
	cfg.Transport = o.Transport
	cfg.EnableAdaptivePolling = o.Poll.Enabled()
	mfs, err := fuse.Mount(o.Mountpoint, fsys.Server(), cfg)
	if err != nil {
		return fmt.Errorf("mount %s: %w", o.Mountpoint, err)
	}
	h := &reverseControl{fsys: fsys, status: control.Status{
		PID: os.Getpid(), Mountpoint: o.Mountpoint, CipherDir: o.CipherDir,
		Tier: "off", TierReason: "reverse mode: a read-only view, served by the daemon", ReadOnly: true,
		Started: time.Now(), LogFile: o.LogFile,
	}}
	h.status.Transport, h.status.TransportReason = transportStatus(o.Transport, o.Poll, mfs.Transport())
	h.status.Poll = pollStatus(mfs.Transport())
	h.status.StartTicks, _, _ = control.ProcessStart(os.Getpid())
	if dev, err := control.Device(o.Mountpoint); err == nil {
		h.status.Device = dev
		raiseReadahead(dev, o.Log)
		if ctl, err := control.Listen(dev, h); err == nil {
			defer ctl.Close()
		} else {
			o.Log.Warn().Err(err).Msg("no control socket: cryptfs status will not see this mount")
		}
	}
	o.Log.Info().Str("mountpoint", o.Mountpoint).Msg("mounted a reverse view")
	if o.Mounted != nil {
		// The background mount's parent waits for the tier in its "ok"
		// line: without it, it waited forever for a daemon that serves.
		o.Mounted(h.Status())
	}
	o.Ready(nil)
	sdNotify("READY=1\nSTATUS=Mounted the reverse view " + o.Mountpoint)

	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case <-served:
			return
		case <-ctx.Done():
		}
		o.Log.Info().Str("reason", context.Cause(ctx).Error()).Msg("unmounting")
		if err := mountinfo.Unmount(o.Mountpoint, false); err != nil {
			o.Log.Warn().Err(err).Msg("unmount failed (busy?); detaching lazily")
			mountinfo.Unmount(o.Mountpoint, true)
		}
	}()
	if err := mfs.Join(context.Background()); err != nil {
		return fmt.Errorf("serving %s: %w", o.Mountpoint, err)
	}
	sdNotify("STOPPING=1")
	return nil
}

// reverseControl answers cryptfs status and stats for a reverse view.
type reverseControl struct {
	fsys   *reversefs.FS
	status control.Status
}

func (h *reverseControl) Status() control.Status {
	st := h.status
	st.Inodes = h.fsys.Inodes()
	return st
}

func (h *reverseControl) Stats() control.Stats { return control.Stats{Source: "daemon"} }
