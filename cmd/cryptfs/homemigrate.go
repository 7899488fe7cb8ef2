package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/internal/home"
	"github.com/cryptfs/cryptfs/internal/progress"
)

func newHomeMigrate(e env) *cobra.Command {
	var (
		o                      home.MigrateOptions
		finish, abandon, anyPw bool
		passfile               string
	)
	c := &cobra.Command{
		Use:   "migrate [flags] USER",
		Short: "Move USER's existing home into a new encrypted home (root; resumable)",
		Long: `migrate encrypts USER's existing home into a new cipher directory
(/home/.cryptfs/USER) that the PAM module pam_cryptfs mounts at login with
the login password. USER must be logged out (their processes are listed
otherwise).

It checks the free space first, copies with a progress bar, and can be
interrupted at any point: run it again to resume. Before it changes
anything it verifies the copy: fsck of the new tree, then every byte, mode,
owner, time, symlink, extended attribute and hard link against the source.
Only then does it move the plaintext home aside (HOME.before-cryptfs, kept
with its permissions), put an empty mountpoint in its place and register the
encrypted home. The recovery key is printed once, when the new tree is
created.

Once USER has logged in and checked the home:
    cryptfs home migrate --finish USER    deletes the kept plaintext
    cryptfs home migrate --abandon USER   undoes the migration at any point

The password asked for is USER's login password (checked with pam_unix's
unix_chkpwd; --any-password skips that: login then cannot unlock the home).
Without a terminal it is read from standard input (one line; the same
once more when the new tree is created), or from --passfile.

--from DIR copies DIR instead of the home directory (an eCryptfs home's
plaintext mounted elsewhere, for instance); the home directory still becomes
the mountpoint, and DIR is left as it is.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			say := func(format string, args ...any) { fmt.Fprintf(e.stderr, format+"\n", args...) }
			if os.Geteuid() != 0 {
				return withCode(exitUsage, "cryptfs home migrate must run as root")
			}
			switch {
			case finish && abandon:
				return withCode(exitUsage, "--finish and --abandon exclude each other")
			case finish:
				return home.FinishMigration(a[0], say)
			case abandon:
				return home.AbandonMigration(a[0], say)
			}
			o.User = a[0]
			sec := &secrets{passfile: passfile, stdin: e.stdin, stderr: e.stderr}
			var err error
			prompt := fmt.Sprintf("Login password of %s: ", o.User)
			if home.MigrationUnderWay(o.User) {
				o.Password, err = sec.read(prompt)
			} else {
				o.Password, err = sec.readNew(prompt)
			}
			if err != nil {
				return err
			}
			defer wipe(o.Password)
			if !anyPw {
				ok, err := home.CheckLoginPassword(o.User, o.Password)
				if err != nil {
					return fmt.Errorf("cannot check the login password (%v); --any-password skips the check", err)
				}
				if !ok {
					return withCode(exitWrongPassword, "this is not %s's login password: login would not unlock the home (--any-password to use it anyway)", o.User)
				}
			}
			o.Say = say
			o.RecoveryKey = func(key string) {
				fmt.Fprintf(e.stdout, `Created the encrypted home. Its recovery key (shown once; store it offline):

    %s

It unlocks the home without the password (cryptfs passwd --recovery-key).
`, key)
			}
			o.Progress = func(label string, files, bytes int64) home.Reporter {
				return progress.New(e.stderr, label, files, bytes)
			}
			err = home.Migrate(o)
			switch {
			case errors.Is(err, home.ErrWrongPassword):
				return &codedError{code: exitWrongPassword, err: err}
			case errors.Is(err, home.ErrLoggedIn):
				return &codedError{code: exitError, err: err}
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.From, "from", "", "copy `DIR` instead of the home directory")
	f.StringVar(&o.Cipher, "cipher", "", "the new cipher `DIR` (default /home/.cryptfs/USER)")
	f.DurationVar(&o.Idle, "idle", 0, "lock the home after `DURATION` without use (written to the registry)")
	f.StringVar(&o.FastPath, "fast-path", "", "the home's fast path: auto, kernel-cache or off (written to the registry)")
	f.BoolVar(&o.DropUnsupportedXattrs, "drop-unsupported-xattrs", false, "copy files whose extended attributes cryptfs cannot store (all but user.*) without them")
	f.BoolVar(&anyPw, "any-password", false, "do not check that the password is USER's login password")
	f.StringVar(&passfile, "passfile", "", "read the password from the first line of `FILE`")
	f.BoolVar(&finish, "finish", false, "delete the plaintext home kept by a finished migration")
	f.BoolVar(&abandon, "abandon", false, "undo the migration: the plaintext home back, the encrypted copy deleted")
	f.BoolVar(&o.AllowWeakKDF, "insecure-kdf", false, "")
	f.MarkHidden("insecure-kdf")
	return c
}
