package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/home"
)

func newHome(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "home",
		Short: "Encrypted home directories: move a home in, see and lock it",
		Long: `home manages encrypted home directories: a user's home lives encrypted in
/home/.cryptfs/USER, is mounted at login with the login password by the PAM
module pam_cryptfs and unmounted at the last logout. See the README,
section "Home directory".`,
	}
	c.AddCommand(newHomeMigrate(e), newHomeStatus(e), newHomeLock(e),
		newHomeDaemon(e), newHomeRewrap(e), newHomeUnmountWhenFree(e))
	return c
}

func newHomeStatus(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "status USER",
		Short: "Show USER's encrypted home: where it lives, whether it is mounted, how many sessions are open",
		Args:  args(1),
		RunE: func(c *cobra.Command, a []string) error {
			ent, err := home.Load(a[0])
			if errors.Is(err, home.ErrNoEntry) {
				return withCode(exitNotMounted, "%s has no encrypted home (no %s)", a[0], home.EntryPath(a[0]))
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "user:        %s\ncipher:      %s\nmountpoint:  %s\n", a[0], ent.Cipher, ent.Mountpoint)
			if ent.Idle > 0 {
				fmt.Fprintf(e.stdout, "idle lock:   %s\n", ent.Idle)
			}
			mounted := "no"
			if home.Mounted(ent.Mountpoint) {
				mounted = "yes"
			}
			fmt.Fprintf(e.stdout, "mounted:     %s\n", mounted)
			if u, err := home.LookupUser(a[0]); err == nil && os.Geteuid() == 0 {
				if s, err := home.LockSessions(u.UID); err == nil {
					st := s.State
					s.Unlock()
					fmt.Fprintf(e.stdout, "sessions:    %d\n", st.Sessions)
					if st.Daemon.Running() {
						fmt.Fprintf(e.stdout, "daemon:      pid %d\n", st.Daemon.PID)
					}
					if st.Retry.Running() {
						fmt.Fprintf(e.stdout, "unmount:     waiting until it is no longer in use (pid %d)\n", st.Retry.PID)
					}
					fmt.Fprintf(e.stdout, "log:         %s\n", home.LogPath(u.UID))
				}
			}
			return nil
		},
	}
}

func newHomeLock(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "lock USER",
		Short: "Unmount USER's encrypted home now and reset its session count (root)",
		Long: `lock unmounts USER's encrypted home the normal way, whatever the session
count says, and sets the count to zero: for an administrator, or after
sessions that ended without their PAM close stage (a crash). A busy home is
not unmounted: lock names the processes that keep it busy.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			if os.Geteuid() != 0 {
				return withCode(exitUsage, "cryptfs home lock must run as root")
			}
			err := home.Lock(a[0], func(level home.Level, msg string) { fmt.Fprintf(e.stderr, "%s\n", msg) })
			if errors.Is(err, home.ErrBusy) {
				return withCode(exitError, "%v", err)
			}
			return err
		},
	}
}

// newHomeDaemon is the daemon of a home (internal: started by the PAM
// stages and by migrate, with its descriptors; see home.RunDaemon).
func newHomeDaemon(e env) *cobra.Command {
	var o home.DaemonOptions
	c := &cobra.Command{
		Use:    "daemon [flags] CIPHERDIR MOUNTPOINT",
		Short:  "Serve a home (internal: started by cryptfs pam open and home migrate)",
		Hidden: true,
		Args:   args(2),
		RunE: func(c *cobra.Command, a []string) error {
			o.Cipher, o.Mountpoint = a[0], a[1]
			o.Log = newLogger(e.stderr, false).Level(zerolog.InfoLevel)
			return home.RunDaemon(o)
		},
	}
	f := c.Flags()
	f.BoolVar(&o.Key, "key", false, "the secret is the master key")
	f.BoolVar(&o.Rewrap, "rewrap", false, "serve re-wrap requests on descriptor 7")
	f.BoolVar(&o.AllowWeakKDF, "insecure-kdf", false, "")
	f.DurationVar(&o.Idle, "idle", 0, "unmount after `DURATION` without use")
	f.StringVar(&o.FastPath, "fast-path", "", "metadata fast path")
	f.StringVar(&o.Transport, "transport", "", "how requests reach the daemon: auto, uring or dev (default auto)")
	f.StringVar(&o.Poll, "poll", "", "whether the /dev/fuse reader polls: auto, adaptive or off (default auto)")
	return c
}

// newHomeRewrap re-wraps a home's key (internal: run as the user by cryptfs
// pam passwd, the old and new password on standard input, each ended by a
// NUL byte).
func newHomeRewrap(e env) *cobra.Command {
	var allowWeak bool
	c := &cobra.Command{
		Use:    "rewrap CIPHERDIR",
		Short:  "Re-wrap a home's key (internal: run by cryptfs pam passwd)",
		Hidden: true,
		Args:   args(1),
		RunE: func(c *cobra.Command, a []string) error {
			s, err := home.ReadSecrets(e.stdin, 2)
			if err != nil {
				return err
			}
			defer crypt.Wipe(s[0])
			defer crypt.Wipe(s[1])
			if len(s[0]) == 0 || len(s[1]) == 0 {
				return withCode(exitUsage, "rewrap needs the old and the new password")
			}
			err = home.Rewrap(a[0], s[0], s[1], allowWeak)
			if errors.Is(err, home.ErrWrongPassword) {
				return &codedError{code: exitWrongPassword, err: err}
			}
			return err
		},
	}
	c.Flags().BoolVar(&allowWeak, "insecure-kdf", false, "")
	return c
}

// newHomeUnmountWhenFree is the background unmount of a busy home after its
// last session (internal: started by cryptfs pam close).
func newHomeUnmountWhenFree(e env) *cobra.Command {
	return &cobra.Command{
		Use:    "unmount-when-free USER",
		Short:  "Unmount a busy home once it is free (internal: started by cryptfs pam close)",
		Hidden: true,
		Args:   args(1),
		RunE: func(c *cobra.Command, a []string) error {
			return home.UnmountWhenFree(a[0], func(level home.Level, msg string) {
				fmt.Fprintf(e.stderr, "%s unmount-when-free: %s %s\n", time.Now().Format(time.RFC3339), level, msg)
			})
		},
	}
}
