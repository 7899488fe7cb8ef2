package main

import (
	"encoding/json"
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
		Args:  args(1),
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
			fmt.Fprintf(e.stdout, "Mountpoint:  %s\nCipher dir:  %s\nDaemon pid:  %d\nFast path:   %s (%s)\nRead-only:   %v\nConnection:  %d\nMounted at:  %s\nInodes:      %d\n",
				st.Mountpoint, st.CipherDir, st.PID, st.Tier, st.TierReason, st.ReadOnly, st.Device, st.Started.Format("2006-01-02 15:04:05"), st.Inodes)
			if st.LogFile != "" {
				fmt.Fprintf(e.stdout, "Log file:    %s\n", st.LogFile)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func statusOf(mnt string) (control.Status, error) {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return control.Status{}, err
	}
	dev, err := control.Device(abs)
	if err != nil {
		return control.Status{}, withCode(exitNotMounted, "%s is not a cryptfs mount", abs)
	}
	st, err := control.GetStatus(dev)
	if err != nil {
		return st, withCode(exitNotMounted, "%s: %v", abs, err)
	}
	return st, nil
}
