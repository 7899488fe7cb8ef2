package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

func newPasswd(e env) *cobra.Command {
	var (
		u          unlockFlags
		keepBackup string
	)
	c := &cobra.Command{
		Use:   "passwd [flags] CIPHERDIR",
		Short: "Change the password (the master key and all data stay as they are)",
		Long: `passwd re-wraps the master key under a new password. No copy of the old
config is kept: the old password stops opening this config at once. Copies
of the old config elsewhere (backups, sync history, snapshots) still open
with the old password, and the master key does not change: if the old
password leaked, re-encrypt into a new tree with 'cryptfs rekey'.

--keep-backup DIR keeps the old config in DIR (outside the cipher tree),
for a way back should the new password be lost; it still opens with the
old password. A cryptfs.conf.bak that an earlier passwd left next to the
config is removed.

Without a terminal, the old password (or the recovery key with
--recovery-key) and the new one are read as two lines from standard input.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			path := configPath(a[0], u.config)
			var opts config.RewrapOptions
			if keepBackup != "" {
				bak, err := backupPath(keepBackup, a[0], path)
				if err != nil {
					return err
				}
				opts.Backup = bak
			}
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
			if err := cfg.Rewrap(path, master, pw, opts); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "Password changed.")
			if opts.Backup != "" {
				fmt.Fprintf(e.stdout, "The old config is kept as %s; it still opens with the old password.\n", opts.Backup)
			}
			stale := path + config.BackupSuffix
			if err := os.Remove(stale); err == nil {
				fmt.Fprintf(e.stdout, "Removed %s, which an earlier passwd left and which opened with an older password.\n", stale)
			} else if !errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(e.stderr, "cryptfs: warning: cannot remove %s, which opens with an older password: %v\n", stale, err)
			}
			fmt.Fprintln(e.stdout, "Copies of the old config in backups or sync history still open with the old password; if it leaked, use 'cryptfs rekey'.")
			return nil
		},
	}
	u.register(c)
	c.Flags().StringVar(&keepBackup, "keep-backup", "", "keep the old config in `DIR`, outside the cipher tree (it still opens with the old password)")
	return c
}

// backupPath returns where passwd --keep-backup DIR keeps the old config:
// a new file in DIR, which must be an existing directory outside the
// cipher tree and not on a cryptfs mount (whose files end up in some
// cipher tree, and with it in its backups and sync history).
func backupPath(dir, cipherDir, cfgPath string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return "", withCode(exitUsage, "--keep-backup %s: %v", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "", withCode(exitUsage, "--keep-backup %s: not a directory", dir)
	}
	for _, tree := range []string{cipherDir, filepath.Dir(cfgPath)} {
		t, err := filepath.EvalSymlinks(tree)
		if err == nil {
			t, err = filepath.Abs(t)
		}
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(t, real); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
			return "", withCode(exitUsage, "--keep-backup %s is inside %s: a backup there is copied wherever the tree is (sync, backups) and keeps opening with the old password; choose a directory outside it", dir, t)
		}
	}
	if ms, err := mountinfo.Read(); err == nil {
		for _, m := range ms {
			if m.FSType == "fuse.cryptfs" && uint64(m.Major) == uint64(unix.Major(st.Dev)) && uint64(m.Minor) == uint64(unix.Minor(st.Dev)) {
				return "", withCode(exitUsage, "--keep-backup %s is on the cryptfs mount %s: the backup would be stored in a cipher tree; choose a directory outside it", dir, m.Mountpoint)
			}
		}
	}
	return filepath.Join(real, config.FileName+"."+time.Now().Format("20060102-150405")+".bak"), nil
}
