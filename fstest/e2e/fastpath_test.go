package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/bpf/fastpath/fastpathtest"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/control"
)

// These tests run the daemon's ebpf tier on a stock kernel: the daemon
// (a separate `cryptfs mount -f --fast-path=ebpf --bpf-shadow` process)
// fills the fast-path maps exactly as it would with the kernel hook, and
// the test runs the daemon's own program on those maps with
// BPF_PROG_TEST_RUN, comparing its answers with what stat(2) and
// getxattr(2) return through the mount.

// shadowMount mounts in the ebpf tier without attaching and returns the
// daemon's program.
func shadowMount(t *testing.T) (*cryptfstest.Mount, *ebpf.Program) {
	t.Helper()
	cryptfstest.RequireFUSE(t)
	fastpathtest.Load(t) // skips with the reason when BPF is unavailable
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--fast-path=ebpf", "--bpf-shadow"}})
	dev, err := control.Device(m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := control.GetStatus(dev)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tier != "ebpf" || st.BPFProgramID == 0 {
		t.Fatalf("daemon status %+v: want the ebpf tier with a program", st)
	}
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(st.BPFProgramID))
	if err != nil {
		t.Fatalf("open the daemon's program %d: %v", st.BPFProgramID, err)
	}
	t.Cleanup(func() { prog.Close() })
	return m, prog
}

func run(t *testing.T, prog *ebpf.Program, c *fastpath.Ctx) (int32, *fastpath.Ctx) {
	t.Helper()
	ret, out, err := fastpath.RunProgram(prog, c)
	if err != nil {
		t.Fatal(err)
	}
	return ret, out
}

func lstat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// diffAttr compares the program's attributes with a stat through the mount.
func diffAttr(a *fastpath.Attr, st *unix.Stat_t) string {
	var d []string
	check := func(name string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			d = append(d, fmt.Sprintf("%s %v, stat says %v", name, got, want))
		}
	}
	check("ino", a.Ino, st.Ino)
	check("size", a.Size, st.Size)
	check("blocks", a.Blocks, st.Blocks)
	check("mode", a.Mode, st.Mode)
	check("nlink", a.Nlink, st.Nlink)
	check("uid", a.Uid, st.Uid)
	check("gid", a.Gid, st.Gid)
	check("atime", fmt.Sprint(a.Atime, ".", a.Atimensec), fmt.Sprint(st.Atim.Sec, ".", st.Atim.Nsec))
	// With the writeback cache (on in cryptfs), the kernel keeps its own
	// mtime and ctime for regular files and ignores those of any reply,
	// the daemon's and the program's alike (fuse_get_cache_mask), so
	// stat shows the kernel's; for every other type they must match.
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		check("mtime", fmt.Sprint(a.Mtime, ".", a.Mtimensec), fmt.Sprint(st.Mtim.Sec, ".", st.Mtim.Nsec))
		check("ctime", fmt.Sprint(a.Ctime, ".", a.Ctimensec), fmt.Sprint(st.Ctim.Sec, ".", st.Ctim.Nsec))
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR || st.Mode&unix.S_IFMT == unix.S_IFBLK {
		check("rdev", a.Rdev, st.Rdev)
	}
	return strings.Join(d, "; ")
}

func getxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// buildTree creates a tree with every kind of entry through the mount and
// returns its paths, relative to the mountpoint.
func buildTree(t *testing.T, root string) []string {
	t.Helper()
	mustDo(t, os.MkdirAll(filepath.Join(root, "a/b/c"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(root, "a/empty"), nil, 0o600))
	mustDo(t, os.WriteFile(filepath.Join(root, "a/b/small"), []byte("hello"), 0o644))
	mustDo(t, os.WriteFile(filepath.Join(root, "a/b/c/blocks"), bytes.Repeat([]byte("z"), 3*4096+17), 0o640))
	mustDo(t, os.Link(filepath.Join(root, "a/b/small"), filepath.Join(root, "a/hardlink")))
	mustDo(t, os.Symlink("b/small", filepath.Join(root, "a/symlink")))
	mustDo(t, unix.Mkfifo(filepath.Join(root, "a/fifo"), 0o600))
	mustDo(t, os.WriteFile(filepath.Join(root, strings.Repeat("L", 200)), []byte("long name"), 0o644))
	mustDo(t, unix.Setxattr(filepath.Join(root, "a/b/small"), "user.color", []byte("blue"), 0))
	mustDo(t, unix.Setxattr(filepath.Join(root, "a/b/small"), "user.empty", nil, 0))
	mustDo(t, unix.Setxattr(filepath.Join(root, "a"), "user.big", bytes.Repeat([]byte("x"), 1000), 0))
	return []string{"a", "a/b", "a/b/c", "a/empty", "a/b/small", "a/b/c/blocks", "a/hardlink",
		"a/symlink", "a/fifo", strings.Repeat("L", 200)}
}

// TestFastPathEquivalence: after the daemon published a tree, the
// program's answer for every path, attribute and xattr equals what the
// mount returns.
func TestFastPathEquivalence(t *testing.T) {
	m, prog := shadowMount(t)
	paths := buildTree(t, m.Dir)
	xattrs := map[string][]string{"a/b/small": {"user.color", "user.empty"}, "a": {"user.big"}}

	// Publish: the kernel looks every path up, and asks for xattrs.
	for _, p := range paths {
		lstat(t, filepath.Join(m.Dir, p))
		for _, x := range append(xattrs[p], "user.missing", "security.capability", "system.posix_acl_access") {
			getxattr(filepath.Join(m.Dir, p), x)
		}
	}
	if _, err := os.Lstat(filepath.Join(m.Dir, "a/nothing-here")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lstat of a missing name: %v", err)
	}

	for _, p := range paths {
		full := filepath.Join(m.Dir, p)
		parent := lstat(t, filepath.Dir(full))
		st := lstat(t, full)

		ret, out := run(t, prog, lookupCtx(parent.Ino, filepath.Base(p)))
		if ret != fastpath.Served {
			t.Errorf("%s: LOOKUP returned %d, want served", p, ret)
		} else {
			e := out.EntryOut()
			if e.Nodeid != st.Ino {
				t.Errorf("%s: LOOKUP nodeid %d, stat says inode %d", p, e.Nodeid, st.Ino)
			}
			if d := diffAttr(&e.Attr, &st); d != "" {
				t.Errorf("%s: LOOKUP attributes differ: %s", p, d)
			}
		}
		ret, out = run(t, prog, fastpath.GetattrCtx(st.Ino))
		if ret != fastpath.Served {
			t.Errorf("%s: GETATTR returned %d, want served", p, ret)
		} else if d := diffAttr(&out.AttrOut().Attr, &st); d != "" {
			t.Errorf("%s: GETATTR attributes differ: %s", p, d)
		}
		for _, x := range append(xattrs[p], "user.missing", "security.capability", "system.posix_acl_access") {
			if k := st.Mode & unix.S_IFMT; x == "user.missing" && k != unix.S_IFREG && k != unix.S_IFDIR {
				// The VFS answers user.* on symlinks and special files
				// itself (xattr_permission); no request is ever sent.
				continue
			}
			want, werr := getxattr(full, x)
			c := ctx(fastpath.GetxattrCtx(st.Ino, x, 4096))
			ret, out := run(t, prog, c)
			switch {
			case ret == fastpath.Upcall && len(want) > fastpath.XattrMax:
				// Values over 256 bytes are fetched from the daemon; the
				// length query is still answered in the kernel.
				c := ctx(fastpath.GetxattrCtx(st.Ino, x, 0))
				if ret, out := run(t, prog, c); ret != fastpath.Served || int(out.XattrOut().Size) != len(want) {
					t.Errorf("%s %s: size query returned %d size %d, want served %d", p, x, ret, out.XattrOut().Size, len(want))
				}
			case errors.Is(werr, unix.ENODATA), errors.Is(werr, unix.EOPNOTSUPP):
				// Absent, or a namespace cryptfs does not support: both
				// answered in the kernel, with the daemon's errno.
				if errno := werr.(unix.Errno); ret != -int32(errno) {
					t.Errorf("%s %s: GETXATTR returned %d, getxattr says %v", p, x, ret, werr)
				}
			case werr != nil:
				if ret == fastpath.Served {
					t.Errorf("%s %s: GETXATTR served, getxattr says %v", p, x, werr)
				}
			case ret != fastpath.Served:
				t.Errorf("%s %s: GETXATTR returned %d, want served", p, x, ret)
			default:
				xo := out.XattrOut()
				if got := xo.Value[:xo.Size]; !bytes.Equal(got, want) {
					t.Errorf("%s %s: GETXATTR value %q, getxattr says %q", p, x, got, want)
				}
				if len(want) > 0 {
					c := ctx(fastpath.GetxattrCtx(st.Ino, x, uint32(len(want)-1)))
					if ret, _ := run(t, prog, c); ret != -int32(unix.ERANGE) {
						t.Errorf("%s %s: GETXATTR into a short buffer returned %d, want -ERANGE", p, x, ret)
					}
				}
			}
		}
	}
	a := lstat(t, filepath.Join(m.Dir, "a"))
	ret, out := run(t, prog, lookupCtx(a.Ino, "nothing-here"))
	if ret != fastpath.Served || out.EntryOut().Nodeid != 0 {
		t.Errorf("negative LOOKUP returned %d nodeid %d, want served with nodeid 0", ret, out.EntryOut().Nodeid)
	}
}

// ctx unwraps a context constructor; the names here are always valid.
func ctx(c *fastpath.Ctx, err error) *fastpath.Ctx {
	if err != nil {
		panic(err)
	}
	return c
}

func lookupCtx(parent uint64, name string) *fastpath.Ctx {
	return ctx(fastpath.LookupCtx(parent, name))
}

// TestFastPathCoherence: after each kind of change through the mount, the
// program either sends the request to the daemon or answers the new value,
// never a stale one.
func TestFastPathCoherence(t *testing.T) {
	m, prog := shadowMount(t)
	buildTree(t, m.Dir)
	p := func(rel string) string { return filepath.Join(m.Dir, rel) }
	// publish makes the daemon publish rel, and checks the program then
	// serves it: a change must withdraw a fact that was really there.
	publish := func(rel string) {
		t.Helper()
		lstat(t, p(filepath.Dir(rel)))
		st := lstat(t, p(rel))
		getxattr(p(rel), "user.color")
		if ret, _ := run(t, prog, fastpath.GetattrCtx(st.Ino)); ret != fastpath.Served {
			t.Fatalf("%s was not published (GETATTR returned %d)", rel, ret)
		}
		parent := lstat(t, p(filepath.Dir(rel)))
		if ret, _ := run(t, prog, lookupCtx(parent.Ino, filepath.Base(rel))); ret != fastpath.Served {
			t.Fatalf("%s was not published (LOOKUP returned %d)", rel, ret)
		}
	}
	// checkName: LOOKUP of rel answers what lstat says now (or upcalls).
	checkName := func(what, rel string) {
		t.Helper()
		parent := lstat(t, p(filepath.Dir(rel)))
		ret, out := run(t, prog, lookupCtx(parent.Ino, filepath.Base(rel)))
		var st unix.Stat_t
		err := unix.Lstat(p(rel), &st)
		if ret != fastpath.Served {
			return
		}
		e := out.EntryOut()
		switch {
		case errors.Is(err, syscall.ENOENT):
			if e.Nodeid != 0 {
				t.Errorf("after %s: LOOKUP %s served inode %d, but it is gone", what, rel, e.Nodeid)
			}
		case err != nil:
			t.Fatal(err)
		case e.Nodeid != st.Ino:
			t.Errorf("after %s: LOOKUP %s served inode %d, now %d", what, rel, e.Nodeid, st.Ino)
		default:
			if d := diffAttr(&e.Attr, &st); d != "" {
				t.Errorf("after %s: LOOKUP %s served stale attributes: %s", what, rel, d)
			}
		}
	}
	// checkAttr: GETATTR of ino answers what lstat(rel) says now.
	checkAttr := func(what, rel string, ino uint64) {
		t.Helper()
		ret, out := run(t, prog, fastpath.GetattrCtx(ino))
		st := lstat(t, p(rel))
		if ret == fastpath.Served {
			if d := diffAttr(&out.AttrOut().Attr, &st); d != "" {
				t.Errorf("after %s: GETATTR of %s served stale attributes: %s", what, rel, d)
			}
		}
	}
	checkXattr := func(what, rel, name string) {
		t.Helper()
		st := lstat(t, p(rel))
		c := ctx(fastpath.GetxattrCtx(st.Ino, name, 4096))
		ret, out := run(t, prog, c)
		want, werr := getxattr(p(rel), name)
		switch {
		case ret == fastpath.Upcall:
		case ret == -int32(unix.ENODATA), ret == -int32(unix.EOPNOTSUPP):
			if !errors.Is(werr, unix.Errno(-ret)) {
				t.Errorf("after %s: GETXATTR %s %s served %v, getxattr says %q, %v", what, rel, name, unix.Errno(-ret), want, werr)
			}
		case ret == fastpath.Served:
			if xo := out.XattrOut(); werr != nil || !bytes.Equal(xo.Value[:xo.Size], want) {
				t.Errorf("after %s: GETXATTR %s %s served %q, getxattr says %q, %v", what, rel, name, xo.Value[:xo.Size], want, werr)
			}
		default:
			t.Errorf("after %s: GETXATTR returned %d", what, ret)
		}
	}

	small := "a/b/small"
	ino := func(rel string) uint64 { return lstat(t, p(rel)).Ino }
	steps := []struct {
		what   string
		change func() error
		check  func(what string)
	}{
		{"write", func() error {
			f, err := os.OpenFile(p(small), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(bytes.Repeat([]byte("w"), 5000))
			return err
		}, func(w string) { checkAttr(w, small, ino(small)); checkName(w, small) }},
		{"truncate", func() error { return os.Truncate(p(small), 3) }, func(w string) { checkAttr(w, small, ino(small)) }},
		{"chmod", func() error { return os.Chmod(p(small), 0o600) }, func(w string) { checkAttr(w, small, ino(small)); checkName(w, small) }},
		{"chown", func() error { return os.Lchown(p(small), 1234, 5678) }, func(w string) { checkAttr(w, small, ino(small)) }},
		{"utimens", func() error {
			return unix.UtimesNano(p(small), []unix.Timespec{{Sec: 1000, Nsec: 5}, {Sec: 2000, Nsec: 7}})
		}, func(w string) { checkAttr(w, small, ino(small)) }},
		{"setxattr", func() error { return unix.Setxattr(p(small), "user.color", []byte("red"), 0) },
			func(w string) { checkXattr(w, small, "user.color"); checkAttr(w, small, ino(small)) }},
		{"removexattr", func() error { return unix.Removexattr(p(small), "user.color") },
			func(w string) { checkXattr(w, small, "user.color") }},
		{"link", func() error { return os.Link(p(small), p("a/b/c/linked")) },
			func(w string) { checkAttr(w, small, ino(small)); checkName(w, "a/b/c/linked") }},
		{"rename", func() error { return os.Rename(p("a/b/c/blocks"), p("a/moved")) },
			func(w string) {
				checkName(w, "a/b/c/blocks")
				checkName(w, "a/moved")
				checkAttr(w, "a/moved", ino("a/moved"))
			}},
		{"rename over", func() error { return os.Rename(p("a/moved"), p("a/empty")) },
			func(w string) { checkName(w, "a/moved"); checkName(w, "a/empty") }},
		{"unlink", func() error { return os.Remove(p("a/hardlink")) },
			func(w string) { checkName(w, "a/hardlink"); checkAttr(w, small, ino(small)) }},
		{"mkdir over negative", func() error { return os.Mkdir(p("a/nothing-here"), 0o755) },
			func(w string) { checkName(w, "a/nothing-here") }},
		{"rmdir", func() error { return os.Remove(p("a/nothing-here")) },
			func(w string) { checkName(w, "a/nothing-here") }},
	}
	for _, s := range steps {
		for _, rel := range []string{small, "a/b/c/blocks", "a/moved", "a/empty", "a/hardlink", "a/nothing-here"} {
			if _, err := os.Lstat(p(rel)); err == nil {
				publish(rel)
			}
		}
		os.Lstat(p("a/never")) // never exists: a negative entry stays published
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		s.check(s.what)
	}
}
