package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
)

func newInit(e env) *cobra.Command {
	var (
		u             unlockFlags
		deterministic bool
		reverse       bool
	)
	c := &cobra.Command{
		Use:   "init [flags] CIPHERDIR",
		Short: "Create an encrypted directory (prints its recovery key once)",
		Long: `init creates cryptfs.conf in CIPHERDIR (created if missing; it must be
empty) with a new random master key wrapped under your password, and
prints the recovery key: the only way back in if the password is lost, and
with 'cryptfs recover' the way to a new cryptfs.conf if that is lost. If
init fails, it removes the directory it created.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) (err error) {
			if reverse {
				return runInitReverse(e, &u, deterministic, a[0])
			}
			dir, err := filepath.Abs(a[0])
			if err != nil {
				return err
			}
			if err := checkInitDir(dir, u.config == ""); err != nil {
				return err
			}
			warnExposed(e, dir)
			sec := u.secrets(e)
			pw, err := sec.readNew("New password: ")
			if err != nil {
				return err
			}
			defer wipe(pw)
			// Create the directory now that there is a password, and remove
			// what was created here if anything below fails.
			created, err := mkdirAllTop(dir)
			if err != nil {
				return fmt.Errorf("create %s: %w", dir, err)
			}
			if created != "" {
				defer func() {
					if err != nil {
						os.RemoveAll(created)
					}
				}()
			}
			opts := config.CreateOptions{DeterministicNames: deterministic}
			if u.insecureKDF {
				k := config.InsecureTestKDF()
				opts.KDF, opts.AllowWeakKDF = &k, true
			}
			_, master, err := config.Create(configPath(dir, u.config), pw, opts)
			if err != nil {
				return err
			}
			defer wipe(master)
			if !deterministic {
				if err := writeRootIV(dir); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stdout, `Created the encrypted directory %s.

Your recovery key (shown once; store it somewhere safe and offline):

    %s

It unlocks this directory without the password, and it is the master
key: with it, 'cryptfs recover' writes a new cryptfs.conf if that file is
ever lost or damaged. Keep a copy of %s outside the directory too.
    cryptfs mount --recovery-key %s MOUNTPOINT
    cryptfs passwd --recovery-key %s
`, a[0], config.RecoveryKey(master), configPath(dir, u.config), a[0], a[0])
			return nil
		},
	}
	u.register(c)
	c.Flags().BoolVar(&deterministic, "deterministic-names", false,
		"no per-directory IVs: equal names encrypt equally in every directory (for sync tools that create the same directory on two machines)")
	c.Flags().BoolVar(&reverse, "reverse", false,
		"CIPHERDIR is a plaintext directory: write a reverse config (.cryptfs.reverse.conf) for 'cryptfs mount --reverse'")
	return c
}

// checkInitDir refuses a directory that is not empty, naming what it is
// when it is recognisably a cryptfs or gocryptfs tree. empty says whether
// the directory must be empty (no --config elsewhere).
func checkInitDir(dir string, empty bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return withCode(exitNotEmpty, "%s exists and is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	has := map[string]bool{}
	for _, e := range entries {
		has[e.Name()] = true
	}
	switch {
	case has[config.FileName]:
		return withCode(exitNotEmpty, "%s is already a cryptfs directory (it has %s): mount it with 'cryptfs mount %s MOUNTPOINT'", dir, config.FileName, dir)
	case has[crypt.DirIVFile]:
		return withCode(exitNotEmpty, "%s looks like a cryptfs directory whose %s is lost (it has %s): restore your copy of %s, or write a new one with the recovery key: cryptfs recover %s",
			dir, config.FileName, crypt.DirIVFile, config.FileName, dir)
	case has["gocryptfs.conf"] || has["gocryptfs.diriv"]:
		return withCode(exitNotEmpty, "%s is a gocryptfs directory: cryptfs cannot read it; mount it with gocryptfs (to move to cryptfs, copy its files into a new cryptfs directory)", dir)
	case empty && len(entries) > 0:
		return withCode(exitNotEmpty, "%s is not empty: init needs an empty directory", dir)
	}
	return nil
}

// warnExposed warns when others could reach or replace the cipher
// directory: its parent writable by others, or the directory itself (if it
// exists) open to them.
func warnExposed(e env, dir string) {
	parent := filepath.Dir(dir)
	if st, err := os.Stat(parent); err == nil && st.Mode().Perm()&0o022 != 0 {
		fmt.Fprintf(e.stderr, "cryptfs: warning: %s is writable by others (mode %04o): whoever can write there can rename or replace %s; keep encrypted directories in a private place (for example your home directory)\n",
			parent, st.Mode()&(fs.ModePerm|fs.ModeSticky), filepath.Base(dir))
	}
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(e.stderr, "cryptfs: warning: %s is open to others (mode %04o): they can see the encrypted names and sizes and copy the files; chmod 700 %s\n",
			dir, st.Mode().Perm(), dir)
	}
}

// mkdirAllTop is os.MkdirAll(dir, 0700) that returns the topmost directory
// it created ("" if dir existed).
func mkdirAllTop(dir string) (string, error) {
	top := ""
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
		if p == filepath.Dir(p) {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return top, nil
}

// writeRootIV creates the name IV of the top directory.
func writeRootIV(dir string) error {
	iv, err := crypt.NewDirIV()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, crypt.DirIVFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o400)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(iv[:]); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func wipe(b []byte) { crypt.Wipe(b) }
