package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/internal/control"
)

func newStatus(e env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status [flags] MOUNTPOINT",
		Short: "Show a mount's daemon, fast-path tier and log file",
		Long: `status asks the daemon serving MOUNTPOINT about itself. It finds the daemon
from the mount (its owner and connection), from any shell of the owner and
from root. A mount whose daemon has exited (killed, crashed) is reported as
dead (exit code 21): 'cryptfs unmount' removes it.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			st, err := statusOf(a[0])
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(e.stdout, "Mountpoint:  %s\nCipher dir:  %s\nDaemon pid:  %d\nFast path:   %s (%s)\n",
				st.Mountpoint, st.CipherDir, st.PID, st.Tier, st.TierReason)
			if st.FastPathWanted != "" {
				fmt.Fprintf(e.stdout, "Wanted:      --fast-path=%s (ebpf tier wanted: %s)\n", st.FastPathWanted, yesNo(st.EBPFWanted))
			}
			if k := st.Kernel; k != nil {
				fmt.Fprintf(e.stdout, "Kernel FUSE: %s (kernel %s)\n", k.Summary, k.Release)
			}
			fmt.Fprintf(e.stdout, "Read-only:   %v\nConnection:  %d\nMounted at:  %s\nInodes:      %d\n",
				st.ReadOnly, st.Device, st.Started.Format("2006-01-02 15:04:05"), st.Inodes)
			if st.Transport != "" {
				fmt.Fprintf(e.stdout, "Transport:   %s (%s)\n", st.Transport, st.TransportReason)
			}
			if st.Poll != "" {
				fmt.Fprintf(e.stdout, "Polling:     %s\n", st.Poll)
			}
			if st.LogFile != "" {
				fmt.Fprintf(e.stdout, "Log file:    %s\n", st.LogFile)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// statusOf asks the daemon of the mount at mnt for its status; a mount
// whose daemon does not answer is an error that says why and what to do.
func statusOf(mnt string) (control.Status, error) {
	d, err := findDaemon(mnt)
	if err != nil {
		return control.Status{}, err
	}
	return d.Status, nil
}

// findDaemon finds the live daemon of the cryptfs mount at mnt.
func findDaemon(mnt string) (control.Daemon, error) {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return control.Daemon{}, err
	}
	d, err := control.Find(abs)
	if errors.Is(err, control.ErrNotCryptfs) {
		return d, withCode(exitNotMounted, "%s is not a cryptfs mount", abs)
	}
	if err != nil {
		return d, err
	}
	switch d.State {
	case control.Live:
		return d, nil
	case control.Dead:
		return d, withCode(exitDeadMount, "%s is a dead mount: its daemon has exited (killed or crashed), and every access fails with \"Transport endpoint is not connected\"; run 'cryptfs unmount %s' to remove it", abs, abs)
	case control.Unreachable:
		pid := "its daemon runs"
		if d.PID > 0 {
			pid = fmt.Sprintf("its daemon (pid %d) runs", d.PID)
		}
		return d, fmt.Errorf("%s: %s but does not answer on its control socket (%v); 'cryptfs unmount %s' still works", abs, pid, d.Why, abs)
	}
	return d, fmt.Errorf("%s: cannot tell whether its daemon runs: %v", abs, d.Why)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
