package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The reuse check: cryptfs derives node IDs from lower inode numbers, and
// a disk file system hands the number of a deleted inode to the next one
// it creates. Every fact the daemon, the kernel and the maps hold about
// the old file (attributes, symlink target, xattrs, a directory's entries)
// must be gone when the number comes back as another file of the same
// type. Reuse is detected in the cipher directory (the lower inode
// numbers), not through the mount: the daemon may give the new file
// another node ID, which is one correct way to pass.

type reuseConfig struct {
	common
	tier     string
	attempts int
}

func runReuse(args []string, stdout io.Writer) error {
	var c reuseConfig
	f := flag.NewFlagSet("reuse", flag.ContinueOnError)
	c.flags(f, "where to create the work directory (default $TMPDIR; a disk file system that reuses inode numbers, with user xattrs)")
	f.StringVar(&c.tier, "tier", "ebpf", "the fast-path tier to mount with")
	f.IntVar(&c.attempts, "attempts", 40, "create/delete rounds per kind before giving up on seeing a number reused")
	if err := f.Parse(args); err != nil {
		return err
	}
	return reuse(c, stdout)
}

// reuseKind creates, inspects and removes one kind of object. make
// creates generation g (0: the old file, 1: its successor) at p; inspect
// reads every fact of it and returns them as text; want is what inspect
// must return for generation g.
type reuseKind struct {
	name    string
	mode    uint32 // S_IFMT of the lower file
	make    func(p string, g int) error
	inspect func(p string) (string, error)
	want    func(g int) string
	remove  func(p string) error
}

var reuseKinds = []reuseKind{
	{
		name: "symlink",
		mode: unix.S_IFLNK,
		make: func(p string, g int) error { return os.Symlink(symlinkTarget(g), p) },
		inspect: func(p string) (string, error) {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return "", err
			}
			t, err := os.Readlink(p)
			return fmt.Sprintf("size=%d target=%s", st.Size, t), err
		},
		want:   func(g int) string { return fmt.Sprintf("size=%d target=%s", len(symlinkTarget(g)), symlinkTarget(g)) },
		remove: os.Remove,
	},
	{
		name: "file",
		mode: unix.S_IFREG,
		make: func(p string, g int) error {
			if err := os.WriteFile(p, fileContent(g), 0o644); err != nil {
				return err
			}
			if err := os.Chmod(p, fileMode(g)); err != nil {
				return err
			}
			return unix.Setxattr(p, "user.gen", []byte(strings.Repeat("g", g+1)), 0)
		},
		inspect: func(p string) (string, error) {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return "", err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return "", err
			}
			buf := make([]byte, 64)
			n, err := unix.Getxattr(p, "user.gen", buf)
			x := xattrResult(buf[:max(n, 0)], err)
			n, err = unix.Getxattr(p, "user.old", buf)
			o := xattrResult(buf[:max(n, 0)], err)
			return fmt.Sprintf("size=%d mode=%o content=%q user.gen=%s user.old=%s", st.Size, st.Mode&0o777, data, x, o), nil
		},
		want: func(g int) string {
			old := "ENODATA"
			if g == 0 {
				old = `"x"`
			}
			return fmt.Sprintf("size=%d mode=%o content=%q user.gen=%q user.old=%s", len(fileContent(g)), fileMode(g), fileContent(g), strings.Repeat("g", g+1), old)
		},
		remove: os.Remove,
	},
	{
		name: "directory",
		mode: unix.S_IFDIR,
		make: func(p string, g int) error {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(p, fmt.Sprintf("child%d", g)), nil, 0o644)
		},
		inspect: func(p string) (string, error) {
			names, err := readDirNames(p)
			if err != nil {
				return "", err
			}
			var out []string
			for _, n := range []string{"child0", "child1"} {
				var st unix.Stat_t
				out = append(out, n+"="+errString(unix.Lstat(filepath.Join(p, n), &st)))
			}
			return fmt.Sprintf("entries=%v %s", names, strings.Join(out, " ")), nil
		},
		want: func(g int) string {
			c0, c1 := "ok", "ENOENT"
			if g == 1 {
				c0, c1 = "ENOENT", "ok"
			}
			return fmt.Sprintf("entries=[child%d] child0=%s child1=%s", g, c0, c1)
		},
		remove: os.RemoveAll,
	},
}

func symlinkTarget(g int) string {
	if g == 0 {
		return "old-target"
	}
	return "the/new/target/is/longer/than/the/old/one"
}

func fileContent(g int) []byte   { return bytes.Repeat([]byte{byte('a' + g)}, 10+30*g) }
func fileMode(g int) os.FileMode { return os.FileMode(0o600 + 0o44*g) }

func reuse(c reuseConfig, stdout io.Writer) (err error) {
	ws, err := c.start("reuse")
	if err != nil {
		return err
	}
	defer ws.finish(&err)
	work, cipher, mnt, x := ws.work, ws.cipher, ws.mnt, ws.x
	m, err := x.mountTier(cipher, mnt, c.tier, filepath.Join(work, "daemon.log"))
	if err != nil {
		return err
	}
	defer func() {
		if uerr := m.unmount(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	var errs []error
	reused := 0
	for _, k := range reuseKinds {
		dir := filepath.Join(mnt, k.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		seen, err := reuseOne(k, dir, cipher, c.attempts)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", k.name, err))
			fmt.Fprintf(stdout, "reuse: %s tier, %s: FAIL: %v\n", c.tier, k.name, err)
		case seen:
			reused++
			fmt.Fprintf(stdout, "reuse: %s tier, %s: a new %s with a reused inode number shows only its own facts\n", c.tier, k.name, k.name)
		default:
			fmt.Fprintf(stdout, "reuse: %s tier, %s: no inode number reused in %d rounds (not checked)\n", c.tier, k.name, c.attempts)
		}
	}
	if reused == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("no inode number was reused in %d rounds of any kind: the check tested nothing (is %s on a disk file system?)", c.attempts, work))
	}
	return errors.Join(errs...)
}

// reuseOne creates and removes objects of one kind until the lower file
// system hands out a deleted one's inode number again, then checks that
// the new object shows its own facts. It reports whether a reuse was seen.
func reuseOne(k reuseKind, dir, cipher string, attempts int) (bool, error) {
	for i := 0; i < attempts; i++ {
		old := filepath.Join(dir, fmt.Sprintf("old%d", i))
		if err := k.make(old, 0); err != nil {
			return false, err
		}
		if k.name == "file" {
			if err := unix.Setxattr(old, "user.old", []byte("x"), 0); err != nil {
				return false, err
			}
		}
		// Read every fact twice: the first read publishes, the second
		// is served (in the ebpf tier).
		for r := 0; r < 2; r++ {
			got, err := k.inspect(old)
			if err != nil {
				return false, fmt.Errorf("inspect %s: %w", old, err)
			}
			if got != k.want(0) {
				return false, fmt.Errorf("%s: %s, want %s", old, got, k.want(0))
			}
		}
		before, err := lowerInodes(cipher, k.mode)
		if err != nil {
			return false, err
		}
		if err := k.remove(old); err != nil {
			return false, err
		}
		mid, err := lowerInodes(cipher, k.mode)
		if err != nil {
			return false, err
		}
		young := filepath.Join(dir, fmt.Sprintf("new%d", i))
		if err := k.make(young, 1); err != nil {
			return false, err
		}
		after, err := lowerInodes(cipher, k.mode)
		if err != nil {
			return false, err
		}
		got, err := k.inspect(young)
		if err != nil {
			return false, fmt.Errorf("inspect %s: %w", young, err)
		}
		// A number the removal freed and the creation took again.
		var reused uint64
		for ino := range after {
			if before[ino] && !mid[ino] {
				reused = ino
			}
		}
		if reused != 0 {
			if got != k.want(1) {
				return true, fmt.Errorf("%s took over lower inode number %d of a deleted %s and shows its facts: %s, want %s", young, reused, k.name, got, k.want(1))
			}
			return true, nil
		}
		if got != k.want(1) {
			return false, fmt.Errorf("%s (lower inode number not reused): %s, want %s", young, got, k.want(1))
		}
		if err := k.remove(young); err != nil {
			return false, err
		}
	}
	return false, nil
}

// lowerInodes returns the inode numbers of the lower files of type mode
// (S_IFMT bits) in the cipher tree.
func lowerInodes(cipher string, mode uint32) (map[uint64]bool, error) {
	out := make(map[uint64]bool)
	err := filepath.WalkDir(cipher, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == mode {
			out[st.Ino] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk the cipher tree: %w", err)
	}
	return out, nil
}
