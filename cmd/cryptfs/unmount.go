package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/holders"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// daemonExitTimeout is how long unmount waits for the daemon to finish
// writing and exit once the mount is gone.
const daemonExitTimeout = 30 * time.Second

func newUnmount(e env) *cobra.Command {
	var lazy, force bool
	c := &cobra.Command{
		Use:     "unmount [flags] MOUNTPOINT",
		Aliases: []string{"umount"},
		Short:   "Unmount and wait for the daemon to exit (its keys are wiped); never aborts a busy mount",
		Long: `unmount unmounts a cryptfs mount and waits until its daemon has written
everything and exited (its keys are wiped). It finds the daemon from the
mount itself, so it works from any shell of the mount's owner and from
root.

A mount that is in use (a process has its working directory, an open file
or a mapping in it) is left exactly as it is: unmount exits with code 19
and lists those processes. Close them (or cd out) and run it again.

A mount whose daemon has died (killed, crashed; every access fails with
"Transport endpoint is not connected") is removed, even when in use: there
is nothing left to lose.

--lazy detaches the mount now even if busy; the daemon keeps serving the
open files and exits when the last one is closed. --force aborts the
connection: writes the daemon has not finished are lost, and processes
using the mount get errors. As root, the path must not contain a symlink.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			if lazy && force {
				return withCode(exitUsage, "--lazy and --force exclude each other")
			}
			return runUnmount(e, a[0], lazy, force)
		},
	}
	c.Flags().BoolVar(&lazy, "lazy", false, "detach now even if busy; the daemon exits when the last file is closed")
	c.Flags().BoolVar(&force, "force", false, "abort the connection: unwritten data is lost")
	return c
}

func runUnmount(e env, path string, lazy, force bool) error {
	mnt, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := checkNoSymlinks(mnt); err != nil {
			return err
		}
	}
	d, err := control.Find(mnt)
	if errors.Is(err, control.ErrNotCryptfs) {
		return withCode(exitNotMounted, "%s is not a cryptfs mount", mnt)
	}
	if err != nil {
		return err
	}
	switch {
	case d.State == control.Dead:
		// The connection died with its daemon: nothing is left to flush.
		// Unmount, or detach if processes still sit in it.
		if err := mountinfo.Unmount(mnt, false); errors.Is(err, mountinfo.ErrBusy) {
			err = mountinfo.Unmount(mnt, true)
			if err == nil {
				fmt.Fprintf(e.stderr, "cryptfs: %s was a dead mount (its daemon had exited); detached it (processes still in it see errors until they leave)\n", mnt)
			}
			return err
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "cryptfs: %s was a dead mount (its daemon had exited); removed it\n", mnt)
		return nil
	case force:
		fmt.Fprintf(e.stderr, "cryptfs: warning: --force aborts the connection to the daemon of %s: data it has not written yet is lost, and processes using the mount get errors\n", mnt)
		if err := mountinfo.AbortFUSE(d.Mount.Device()); err != nil {
			if d.PID <= 0 || !d.Running() {
				return fmt.Errorf("%w (and the daemon's pid is unknown)", err)
			}
			// Without fusectl, killing the daemon closes /dev/fuse, which
			// aborts the connection just the same.
			if kerr := killProcess(d.PID); kerr != nil {
				return fmt.Errorf("%w; kill daemon %d: %w", err, d.PID, kerr)
			}
		}
		if err := mountinfo.Unmount(mnt, true); err != nil {
			return err
		}
	case lazy:
		if err := mountinfo.Unmount(mnt, true); err != nil {
			return err
		}
		return nil // the daemon exits when the last file is closed
	default:
		if err := mountinfo.Unmount(mnt, false); err != nil {
			if errors.Is(err, mountinfo.ErrBusy) {
				return busyError(d.Mount, mnt)
			}
			return err
		}
	}
	if d.PID <= 0 {
		if d.State != control.Live {
			fmt.Fprintf(e.stderr, "cryptfs: unmounted %s; its daemon could not be found (%v), so this did not wait for it to exit\n", mnt, d.Why)
		}
		return nil
	}
	deadline := time.Now().Add(daemonExitTimeout)
	for d.Running() {
		if time.Now().After(deadline) {
			return fmt.Errorf("unmounted %s, but its daemon (pid %d) has not exited after %v", mnt, d.PID, daemonExitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// busyError names what keeps the mount m busy.
func busyError(m mountinfo.Mount, mnt string) error {
	r, _ := holders.Find(m)
	var b strings.Builder
	fmt.Fprintf(&b, "%s is busy; nothing was changed (close these, or cd out, and run cryptfs unmount again; --lazy detaches it now, --force aborts it and loses unwritten data):", mnt)
	for _, h := range r.Holders {
		self := ""
		if h.PID == os.Getpid() {
			self = ", this command"
		} else if h.PID == os.Getppid() {
			self = ", the shell that runs this command"
		}
		fmt.Fprintf(&b, "\n    pid %d (%s%s): %s", h.PID, h.Comm, self, h.What)
		if h.Path != "" {
			fmt.Fprintf(&b, " %s", h.Path)
		}
	}
	for _, sub := range r.Submounts {
		fmt.Fprintf(&b, "\n    a mount inside it: %s (%s)", sub.Mountpoint, sub.FSType)
	}
	hidden := ""
	if r.Unreadable > 0 {
		hidden = fmt.Sprintf("processes that could not be inspected: %d", r.Unreadable)
		if os.Geteuid() != 0 {
			hidden += " (other users'; root sees them)"
		}
	}
	switch {
	case len(r.Holders) == 0 && len(r.Submounts) == 0 && hidden != "":
		fmt.Fprintf(&b, "\n    (no process found; %s)", hidden)
	case len(r.Holders) == 0 && len(r.Submounts) == 0:
		b.WriteString("\n    (no process found: something else holds it, e.g. a loop device or a bind mount of a file in it)")
	case hidden != "":
		fmt.Fprintf(&b, "\n    (%s)", hidden)
	}
	return &codedError{code: exitBusy, err: errors.New(b.String())}
}
