package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newPasswd(e env) *cobra.Command {
	var u unlockFlags
	c := &cobra.Command{
		Use:   "passwd [flags] CIPHERDIR",
		Short: "Change the password (the master key and all data stay as they are)",
		Long: `passwd re-wraps the master key under a new password. The previous config
is kept as cryptfs.conf.bak. Without a terminal, the old password (or the
recovery key with --recovery-key) and the new one are read as two lines
from standard input.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			sec := u.secrets(e)
			cfg, master, err := u.unlock(e, a[0], sec)
			if err != nil {
				return err
			}
			defer wipe(master)
			// The new password never comes from --passfile/--extpass,
			// which name the old one.
			newSec := &secrets{stdin: e.stdin, stderr: e.stderr, lines: sec.lines}
			pw, err := newSec.readNew("New password: ")
			if err != nil {
				return err
			}
			defer wipe(pw)
			path := configPath(a[0], u.config)
			if err := cfg.Rewrap(path, master, pw); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Password changed. The previous config is kept as %s.bak.\n", path)
			return nil
		},
	}
	u.register(c)
	return c
}
