package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
)

// lowerByIno finds the path in the cipher tree of the lower file whose
// inode number is ino (cryptfs passes lower inode numbers through).
func lowerByIno(t *testing.T, cipher string, ino uint64) string {
	t.Helper()
	found := ""
	filepath.WalkDir(cipher, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil && st.Ino == ino {
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no lower file with inode %d in %s", ino, cipher)
	}
	return found
}

// TestFastPathRepublishesChangedAttrs: in the ebpf tier, a create, link,
// remove or rename republishes the attributes it changed (the parent
// directories', a hard-linked file's) instead of dropping them, so the
// GETATTR the kernel sends before the next create or unlink (the
// permission check of default_permissions) is answered in the kernel
// (issue 17). Checked with the daemon's own program run on its maps right
// after each change, before anything else reaches the daemon: the answer
// must be served and equal the lower directory's or file's stat (all but
// the mode bits of the root, which cryptfs adjusts).
func TestFastPathRepublishesChangedAttrs(t *testing.T) {
	m, prog := shadowMount(t)
	p := func(rel string) string { return filepath.Join(m.Dir, rel) }
	mustDo(t, os.MkdirAll(p("d/sub"), 0o755))
	mustDo(t, os.Mkdir(p("e"), 0o755))
	mustDo(t, os.WriteFile(p("d/f"), []byte("x"), 0o644))
	mustDo(t, os.WriteFile(p("d/gone"), []byte("x"), 0o644))
	mustDo(t, os.WriteFile(p("d/move"), []byte("x"), 0o644))
	mustDo(t, os.Mkdir(p("d/rmd"), 0o755))
	ino := func(rel string) uint64 { return lstat(t, p(rel)).Ino }
	root, d, e, f := ino("."), ino("d"), ino("e"), ino("d/f")

	// checkServed runs GETATTR of each id and compares the answer with
	// the lower file's stat.
	checkServed := func(what string, ids ...uint64) {
		t.Helper()
		for _, id := range ids {
			ret, out := run(t, prog, fastpath.GetattrCtx(id))
			if ret != fastpath.Served {
				t.Errorf("after %s: GETATTR of inode %d went to the daemon (%d): its attributes were dropped, not republished", what, id, ret)
				continue
			}
			var st unix.Stat_t
			if id == root {
				mustDo(t, unix.Lstat(m.Cipher, &st))
			} else {
				mustDo(t, unix.Lstat(lowerByIno(t, m.Cipher, id), &st))
			}
			a := out.AttrOut().Attr
			var diff []string
			check := func(name string, got, want any) {
				if fmt.Sprint(got) != fmt.Sprint(want) {
					diff = append(diff, fmt.Sprintf("%s %v, the lower file has %v", name, got, want))
				}
			}
			if id != root { // the root is node 1 to the kernel
				check("ino", a.Ino, st.Ino)
			}
			check("nlink", a.Nlink, st.Nlink)
			check("uid/gid", fmt.Sprint(a.Uid, "/", a.Gid), fmt.Sprint(st.Uid, "/", st.Gid))
			check("mtime", fmt.Sprint(a.Mtime, ".", a.Mtimensec), fmt.Sprint(st.Mtim.Sec, ".", st.Mtim.Nsec))
			check("ctime", fmt.Sprint(a.Ctime, ".", a.Ctimensec), fmt.Sprint(st.Ctim.Sec, ".", st.Ctim.Nsec))
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				check("size", a.Size, st.Size)
			}
			if id != root {
				check("mode", a.Mode, st.Mode)
			}
			if len(diff) > 0 {
				t.Errorf("after %s: GETATTR of inode %d served %s", what, id, strings.Join(diff, "; "))
			}
		}
	}

	steps := []struct {
		what   string
		change func() error
		ids    []uint64
	}{
		{"create", func() error { return os.WriteFile(p("d/new"), nil, 0o644) }, []uint64{d}},
		{"mkdir", func() error { return os.Mkdir(p("d/newdir"), 0o755) }, []uint64{d}},
		{"symlink", func() error { return os.Symlink("f", p("d/link")) }, []uint64{d}},
		{"mknod", func() error { return unix.Mkfifo(p("d/fifo"), 0o600) }, []uint64{d}},
		{"hard link", func() error { return os.Link(p("d/f"), p("e/f2")) }, []uint64{e, f}},
		{"unlink of one of two names", func() error { return os.Remove(p("e/f2")) }, []uint64{e, f}},
		{"unlink", func() error { return os.Remove(p("d/gone")) }, []uint64{d}},
		{"rmdir", func() error { return os.Remove(p("d/rmd")) }, []uint64{d}},
		{"rename within a directory", func() error { return os.Rename(p("d/move"), p("d/moved")) }, []uint64{d}},
		{"rename across directories", func() error { return os.Rename(p("d/moved"), p("e/moved")) }, []uint64{d, e}},
		{"chmod", func() error { return os.Chmod(p("d/f"), 0o600) }, []uint64{f}},
		{"utimes", func() error { return os.Chtimes(p("d/f"), time.Unix(1e9, 0), time.Unix(1e9, 5)) }, []uint64{f}},
		{"create in the root", func() error { return os.WriteFile(p("top"), nil, 0o644) }, []uint64{root}},
		{"rename of a directory across directories", func() error { return os.Rename(p("d/sub"), p("e/sub")) }, []uint64{d, e}},
	}
	for _, s := range steps {
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		checkServed(s.what, s.ids...)
	}
	if _, err := os.Lstat(p("d/gone")); !os.IsNotExist(err) {
		t.Errorf("d/gone after unlink: %v", err)
	}
	var st syscall.Stat_t
	mustDo(t, syscall.Lstat(p("e/moved"), &st))
}
