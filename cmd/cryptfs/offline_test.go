package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/restore"
)

// mktreeMain is the testscript command cryptfs-mktree CIPHERDIR SRCDIR:
// it copies the plaintext directory SRCDIR (files, directories, symlinks)
// into the cipher tree CIPHERDIR offline, with the password read from
// standard input and weak KDF parameters allowed, so that the scripts of
// the offline tools (path, cat, restore) have a tree to read without
// mounting one.
func mktreeMain() {
	if err := mktree(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cryptfs-mktree:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func mktree(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: cryptfs-mktree CIPHERDIR SRCDIR")
	}
	cfg, err := config.Load(filepath.Join(args[0], config.FileName), config.LoadOptions{AllowWeakKDF: true})
	if err != nil {
		return err
	}
	pw, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return err
	}
	master, err := cfg.Unlock([]byte(strings.TrimSuffix(pw, "\n")))
	if err != nil {
		return err
	}
	s, err := crypt.New(master, cfg.CryptOptions())
	crypt.Wipe(master)
	if err != nil {
		return err
	}
	defer s.Wipe()
	t, err := ciphertree.Open(args[0], s)
	if err != nil {
		return err
	}
	defer t.Close()
	src := args[1]
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return t.Mkdir(rel, uint32(info.Mode().Perm()))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return t.Symlink(target, rel)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return t.WriteFile(rel, data, uint32(info.Mode().Perm()))
		}
	})
}

func TestFormatProgress(t *testing.T) {
	total := restore.Progress{Files: 16702, Bytes: 250 << 20}
	tests := []struct {
		cur     restore.Progress
		elapsed time.Duration
		want    string
	}{
		{restore.Progress{}, 0, "restored 0/16702 files, 0.0 MiB/250.0 MiB   "},
		{restore.Progress{Files: 120, Bytes: 50 << 20}, time.Second, "restored 120/16702 files, 50.0 MiB/250.0 MiB, 50.0 MiB/s, ETA 0:04   "},
		{restore.Progress{Files: 1, Bytes: 1 << 20}, 10 * time.Second, "restored 1/16702 files, 1.0 MiB/250.0 MiB, 0.1 MiB/s, ETA 41:30   "},
		{restore.Progress{Files: 1, Bytes: 1 << 20}, 100 * time.Second, "restored 1/16702 files, 1.0 MiB/250.0 MiB, 0.0 MiB/s, ETA 6:55:00   "},
		{total, 5 * time.Second, "restored 16702/16702 files, 250.0 MiB/250.0 MiB, 50.0 MiB/s   "},
	}
	for _, tc := range tests {
		if got := formatProgress(tc.cur, total, tc.elapsed); got != tc.want {
			t.Errorf("formatProgress(%+v, %v) = %q, want %q", tc.cur, tc.elapsed, got, tc.want)
		}
	}
}
