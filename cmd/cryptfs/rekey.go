package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/rekey"
)

func newRekey(e env) *cobra.Command {
	var u unlockFlags
	c := &cobra.Command{
		Use:   "rekey [flags] OLD NEW",
		Short: "Re-encrypt a tree into a new one under a new master key (after a leak)",
		Long: `rekey copies everything in the encrypted directory OLD into a new encrypted
directory NEW that has its own, new master key and password: the remedy
when a password, a config or the recovery key of OLD may have leaked
(passwd changes only the password that wraps the same master key).

Every directory, file, symlink, FIFO, socket and device node is copied with
its name, content, user extended attributes, mode, access and modification
times and, as root, its owner; hard links stay hard links. Then the two
trees are compared entry by entry. Entries of OLD that fail authentication
are listed and not copied. Both trees must be unmounted; NEW must not exist
or be empty. NEW gets the same format options as OLD and a new recovery key,
shown once.

Afterwards, mount NEW instead of OLD, and delete OLD and its copies (backups,
sync history) once you no longer need them: they still open with the old
password or key.

Without a terminal, OLD's password (or its recovery key with
--recovery-key) and NEW's password are read as two lines from standard input.`,
		Args: args(2),
		RunE: func(c *cobra.Command, a []string) error {
			return runRekey(e, &u, a[0], a[1])
		},
	}
	u.register(c)
	return c
}

// lockTree takes a flock on the cipher directory dir (shared for reading,
// exclusive for writing), the lock a daemon serving it holds: a mounted
// tree is refused. The descriptor is returned for closing.
func lockTree(dir string, how int) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", dir, err)
	}
	if err := unix.Flock(fd, how|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return -1, withCode(exitAlreadyMounted, "%s is in use (mounted?): unmount it first", dir)
		}
		return -1, fmt.Errorf("lock %s: %w", dir, err)
	}
	return fd, nil
}

func runRekey(e env, u *unlockFlags, oldDir, newDir string) error {
	if entries, err := os.ReadDir(newDir); err == nil && len(entries) > 0 {
		return withCode(exitNotEmpty, "%s is not empty: rekey makes a new tree there", newDir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	lockOld, err := lockTree(oldDir, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unix.Close(lockOld)

	sec := u.secrets(e)
	cfg, master, err := u.unlock(e, oldDir, sec)
	if err != nil {
		return err
	}
	oldSuite, err := crypt.New(master, cfg.CryptOptions())
	wipe(master)
	if err != nil {
		return err
	}
	defer oldSuite.Wipe()
	// NEW's password never comes from --passfile/--extpass, which name
	// OLD's.
	newSec := &secrets{stdin: e.stdin, stderr: e.stderr, lines: sec.lines}
	pw, err := newSec.readNew("New password for " + newDir + ": ")
	if err != nil {
		return err
	}
	defer wipe(pw)

	if err := os.MkdirAll(newDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", newDir, err)
	}
	lockNew, err := lockTree(newDir, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unix.Close(lockNew)
	opts := config.CreateOptions{DeterministicNames: cfg.DeterministicNames()}
	if u.insecureKDF {
		k := config.InsecureTestKDF()
		opts.KDF, opts.AllowWeakKDF = &k, true
	}
	newCfg, newMaster, err := config.Create(configPath(newDir, ""), pw, opts)
	if err != nil {
		return err
	}
	defer wipe(newMaster)
	recovery := config.RecoveryKey(newMaster)
	newSuite, err := crypt.New(newMaster, newCfg.CryptOptions())
	if err != nil {
		return err
	}
	defer newSuite.Wipe()
	if !newCfg.DeterministicNames() {
		if _, err := ciphertree.WriteDirIV(lockNew); err != nil {
			return err
		}
		if err := ciphertree.SyncDirIV(lockNew); err != nil {
			return err
		}
	}

	src, err := ciphertree.Open(oldDir, oldSuite)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := ciphertree.Open(newDir, newSuite)
	if err != nil {
		return err
	}
	defer dst.Close()
	owners := os.Geteuid() == 0
	st, problems, err := rekey.Copy(src, dst, rekey.Options{Owners: owners})
	if err != nil {
		return fmt.Errorf("copying into %s (it is incomplete; delete it and try again): %w", newDir, err)
	}
	diffs, err := rekey.Verify(src, dst, owners)
	if err != nil {
		return fmt.Errorf("verifying %s: %w", newDir, err)
	}
	fmt.Fprintf(e.stdout, "Copied %d directories, %d files (%d bytes), %d symlinks, %d hard links, %d other entries and %d extended attributes into %s under a new master key.\n",
		st.Dirs, st.Files, st.Bytes, st.Symlinks, st.Links, st.Others, st.Xattrs, newDir)
	if !owners {
		fmt.Fprintln(e.stdout, "Not run as root: every copied entry belongs to you.")
	}
	fmt.Fprintf(e.stdout, `
The recovery key of %s (shown once; store it somewhere safe and offline):

    %s
`, newDir, recovery)
	for _, p := range problems {
		fmt.Fprintf(e.stderr, "cryptfs: not copied: %s\n", p)
	}
	for _, p := range diffs {
		fmt.Fprintf(e.stderr, "cryptfs: the copy differs: %s\n", p)
	}
	if len(problems) > 0 || len(diffs) > 0 {
		return withCode(exitFsckProblems, "%d entries of %s could not be copied and %d differ: %s is incomplete (see above)", len(problems), oldDir, len(diffs), newDir)
	}
	fmt.Fprintf(e.stdout, "\nVerified: %s holds the same files as %s. Mount %s from now on, and delete %s and its copies (backups, sync history) once you no longer need them: they still open with the old password and key.\n",
		newDir, oldDir, newDir, oldDir)
	return nil
}
