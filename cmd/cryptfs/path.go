package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// The offline tools (path, cat, restore) read a cipher tree without
// mounting it: the cipher directory itself while it is not mounted, or a
// copy of it (a backup).

// exitDamaged is the exit code of cat and restore when data fails
// authentication: that of fsck finding damaged or tampered data.
const exitDamaged = exitFsckProblems

// openTree unlocks the config of cipherDir and opens the tree. The caller
// calls close when done: it closes the tree and wipes the keys.
func openTree(e env, u *unlockFlags, cipherDir string) (t *ciphertree.Tree, close func(), err error) {
	cfg, master, err := u.unlock(e, cipherDir, u.secrets(e))
	if err != nil {
		return nil, nil, err
	}
	suite, err := crypt.New(master, cfg.CryptOptions())
	wipe(master)
	if err != nil {
		return nil, nil, err
	}
	t, err = ciphertree.Open(cipherDir, suite)
	if err != nil {
		suite.Wipe()
		return nil, nil, err
	}
	return t, func() { t.Close(); suite.Wipe() }, nil
}

// treeError gives an error of the offline tools its exit code and a hint.
func treeError(err error) error {
	if errors.Is(err, crypt.ErrAuth) {
		return &codedError{code: exitDamaged, err: fmt.Errorf("%w (modified or damaged since it was written; cryptfs fsck lists every such file)", err)}
	}
	return err
}

func newPath(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "path encrypt|decrypt [flags] CIPHERDIR PATH...",
		Short: "Map plaintext paths to paths in the cipher tree and back, offline",
		Long: `path encrypt prints, for each plaintext PATH (relative to the root of the
encrypted directory), the path in the cipher directory that stores it,
relative to CIPHERDIR: the name to look for in a backup of the cipher
tree. path decrypt does the reverse, for paths relative to CIPHERDIR (or
starting with CIPHERDIR). Every directory on the way must exist in
CIPHERDIR: its name IV names its entries. Sync tools' conflict copies are
mapped under the names the mount shows them with.

When CIPHERDIR is mounted, the paths are mapped by its daemon through the
control socket, without asking for the password (only the mount's owner
and root may ask); --offline unlocks the tree here instead.

A name of 160 bytes or more is stored as longname.<hash>, with its
encrypted name in the file .cryptfs.longname.<hash> beside it: back up
both.`,
		RunE: func(c *cobra.Command, a []string) error {
			return withCode(exitUsage, "path needs encrypt or decrypt, then CIPHERDIR and PATH\nUsage: %s", c.UseLine())
		},
	}
	for _, dir := range []string{"encrypt", "decrypt"} {
		var u unlockFlags
		var offline bool
		sub := &cobra.Command{
			Use:   dir + " [flags] CIPHERDIR PATH...",
			Short: map[string]string{"encrypt": "Print the cipher path of each plaintext path", "decrypt": "Print the plaintext path of each cipher path"}[dir],
			Args: func(c *cobra.Command, a []string) error {
				if len(a) < 2 {
					return withCode(exitUsage, "%s needs CIPHERDIR and at least one PATH\nUsage: %s", c.Name(), c.UseLine())
				}
				return nil
			},
			RunE: func(c *cobra.Command, a []string) error {
				if !offline {
					if done, err := pathsOnline(e, dir == "decrypt", a[0], a[1:]); done {
						return err
					}
				}
				t, closeTree, err := openTree(e, &u, a[0])
				if err != nil {
					return err
				}
				defer closeTree()
				for _, p := range a[1:] {
					var out string
					if dir == "encrypt" {
						out, err = t.LowerPath(p)
					} else {
						out, err = t.PlainPath(relativeTo(a[0], p))
					}
					if err != nil {
						return treeError(err)
					}
					fmt.Fprintln(e.stdout, out)
				}
				return nil
			},
		}
		u.register(sub)
		sub.Flags().BoolVar(&offline, "offline", false, "unlock the tree here even when it is mounted")
		// Flags come before CIPHERDIR: after it every argument is a path,
		// and an encrypted name may begin with '-' (base64url).
		sub.Flags().SetInterspersed(false)
		c.AddCommand(sub)
	}
	return c
}

// pathsOnline maps paths through the control socket of the daemon that
// has cipherDir mounted. done is false when no live daemon serves it (the
// caller then works offline); otherwise err is the outcome.
func pathsOnline(e env, decrypt bool, cipherDir string, paths []string) (done bool, err error) {
	dir := abs(cipherDir)
	ms, err := mountinfo.Read()
	if err != nil || dir == "" {
		return false, nil
	}
	for _, m := range ms {
		if !m.IsCryptfs() || filepath.Clean(m.Source) != dir {
			continue
		}
		in := paths
		if decrypt {
			in = make([]string, len(paths))
			for i, p := range paths {
				in[i] = relativeTo(cipherDir, p)
			}
		}
		out, err := control.PathsOf(m, decrypt, in)
		if errors.Is(err, control.ErrNoDaemon) {
			continue // a dead mount of the tree, or one without a socket
		}
		if err != nil {
			return true, fmt.Errorf("the daemon of %s: %w", m.Mountpoint, err)
		}
		for _, p := range out {
			fmt.Fprintln(e.stdout, p)
		}
		return true, nil
	}
	return false, nil
}

// relativeTo returns cipher path p relative to cipherDir when p names
// something inside it (as given, or both made absolute), else p as it is
// (relative to cipherDir already).
func relativeTo(cipherDir, p string) string {
	for _, try := range [][2]string{{filepath.Clean(cipherDir), filepath.Clean(p)}, {abs(cipherDir), abs(p)}} {
		if r, ok := strings.CutPrefix(try[1], try[0]+"/"); ok && try[0] != "" {
			return r
		}
	}
	return p
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	return a
}
