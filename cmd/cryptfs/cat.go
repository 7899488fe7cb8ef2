package main

import (
	"fmt"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

func newCat(e env) *cobra.Command {
	var u unlockFlags
	c := &cobra.Command{
		Use:   "cat [flags] CIPHERDIR PLAINPATH...",
		Short: "Decrypt files of an encrypted directory (or a backup of one) to standard output, offline",
		Long: `cat writes the plaintext of each regular file PLAINPATH (a path relative
to the root of the encrypted directory) to standard output, reading the
cipher directory without mounting it: run it on a copy of the tree (a
backup) or on an unmounted directory. Every block is authenticated as
the mount authenticates it. A block that fails stops cat with exit code
20, naming the file and the block; what was written before it had
authenticated. Sparse regions are written as zeros without being read.

To restore files with their metadata, use cryptfs restore.`,
		Args: func(c *cobra.Command, a []string) error {
			if len(a) < 2 {
				return withCode(exitUsage, "cat needs CIPHERDIR and at least one PLAINPATH\nUsage: %s", c.UseLine())
			}
			return nil
		},
		RunE: func(c *cobra.Command, a []string) error {
			t, closeTree, err := openTree(e, &u, a[0])
			if err != nil {
				return err
			}
			defer closeTree()
			for _, p := range a[1:] {
				if err := catFile(e, t, p); err != nil {
					return treeError(err)
				}
			}
			return nil
		},
	}
	u.register(c)
	return c
}

func catFile(e env, t *ciphertree.Tree, p string) error {
	n, err := t.Lstat(p)
	if err != nil {
		return err
	}
	switch n.Stat.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return fmt.Errorf("%s: %w (cryptfs restore copies a directory)", p, syscall.EISDIR)
	case unix.S_IFLNK:
		target, err := t.Readlink(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return fmt.Errorf("%s is a symlink to %q: name the file it points to", p, target)
	default:
		return fmt.Errorf("%s is not a regular file", p)
	}
	f, err := t.OpenFile(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteTo(e.stdout); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}
