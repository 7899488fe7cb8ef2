package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

func newUnmount(e env) *cobra.Command {
	var lazy bool
	c := &cobra.Command{
		Use:     "unmount [flags] MOUNTPOINT",
		Aliases: []string{"umount"},
		Short:   "Unmount and wait for the daemon to exit (its keys are wiped)",
		Args:    args(1),
		RunE: func(c *cobra.Command, a []string) error {
			mnt, err := filepath.Abs(a[0])
			if err != nil {
				return err
			}
			dev, err := control.Device(mnt)
			if err != nil {
				return withCode(exitNotMounted, "%s is not a cryptfs mount", mnt)
			}
			daemon, serr := control.GetStatus(dev)
			pid := 0
			if serr == nil {
				pid = daemon.PID
			}
			if err := mountinfo.Unmount(mnt, lazy); err != nil {
				if pid == 0 {
					// A dead daemon's mount: cut the connection, then detach.
					mountinfo.AbortFUSE(dev)
					err = mountinfo.Unmount(mnt, true)
				}
				if err != nil {
					return fmt.Errorf("%w (files still open? close them or use --lazy)", err)
				}
			}
			if pid != 0 && !lazy {
				deadline := time.Now().Add(30 * time.Second)
				for daemon.Running() {
					if time.Now().After(deadline) {
						return fmt.Errorf("unmounted, but the daemon (pid %d) has not exited", pid)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&lazy, "lazy", false, "detach now even if busy; the daemon exits when the last file is closed")
	return c
}
