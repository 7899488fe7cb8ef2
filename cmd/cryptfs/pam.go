package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/internal/pam"
)

func newPAM(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "pam open|close|passwd USER",
		Short: "The session stages of encrypted homes, run by the PAM module pam_cryptfs (root)",
		Long: `pam runs one stage of an encrypted home's session for USER. The PAM module
pam_cryptfs.so runs it as root; there is no need to run it by hand.

  open    count a session; mount the home (the password on standard input,
          ended by a NUL byte) unless it is mounted already
  close   count a session out; the last one unmounts the home (a busy home
          stays mounted until it is free, and the log says why)
  passwd  re-wrap the home's key under a new login password (the old and the
          new password on standard input, each ended by a NUL byte)

Messages go to standard error as "LEVEL MESSAGE" lines, which the module
passes to syslog, and to /run/cryptfs/sessions/UID.log. See the README,
section "Home directory".`,
		Args: args(2),
		RunE: func(c *cobra.Command, a []string) error {
			if code := pam.Run(a[0], a[1], e.stdin, e.stderr, ""); code != 0 {
				return &codedError{code: code, err: fmt.Errorf("pam %s %s failed (see the messages above)", a[0], a[1])}
			}
			return nil
		},
	}
	return c
}
