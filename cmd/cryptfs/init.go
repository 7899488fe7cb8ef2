package main

import (
	"fmt"
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
prints the recovery key: the only way back in if the password is lost.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			if reverse {
				return runInitReverse(e, &u, deterministic, a[0])
			}
			dir := a[0]
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("create %s: %w", dir, err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			if u.config == "" && len(entries) > 0 {
				return withCode(exitNotEmpty, "%s is not empty: init needs an empty directory", dir)
			}
			sec := u.secrets(e)
			pw, err := sec.readNew("New password: ")
			if err != nil {
				return err
			}
			defer wipe(pw)
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

It unlocks this directory without the password:
    cryptfs mount --recovery-key %s MOUNTPOINT
    cryptfs passwd --recovery-key %s
`, dir, config.RecoveryKey(master), dir, dir)
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
