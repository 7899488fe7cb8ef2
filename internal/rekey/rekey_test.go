package rekey

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newTree makes an empty cipher tree (root IV included) under key.
func newTree(t *testing.T, key byte, opts crypt.Options) *ciphertree.Tree {
	t.Helper()
	dir := t.TempDir()
	s, err := crypt.New(bytes.Repeat([]byte{key}, crypt.KeyLen), opts)
	must(t, err)
	t.Cleanup(s.Wipe)
	if !opts.DeterministicNames {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		must(t, err)
		_, err = ciphertree.WriteDirIV(fd)
		unix.Close(fd)
		must(t, err)
	}
	tr, err := ciphertree.Open(dir, s)
	must(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

var longName = strings.Repeat("long-", 40)

// populate fills src with every kind of entry and metadata.
func populate(t *testing.T, src *ciphertree.Tree) {
	t.Helper()
	must(t, src.Mkdir("d", 0o755))
	must(t, src.Mkdir("d/e", 0o700))
	must(t, src.WriteFile("empty", nil, 0o644))
	must(t, src.WriteFile("d/small", []byte("small file"), 0o640))
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*crypt.BlockSize/16+7)
	must(t, src.WriteFile("d/e/big", big, 0o600))
	must(t, src.WriteFile(longName, []byte("long name"), 0o644))
	sparse, err := src.CreateFile("sparse", 0o644)
	must(t, err)
	must(t, sparse.WriteAt([]byte("at 10 MiB"), 10<<20))
	must(t, sparse.Truncate(20<<20))
	must(t, sparse.Close())
	must(t, src.Link("d/small", "hardlink"))
	must(t, src.Symlink("d/small", "sym"))
	must(t, src.Mknod("fifo", unix.S_IFIFO|0o600, 0))
	must(t, src.SetXattr("d/small", "user.comment", []byte("a value")))
	must(t, src.SetXattr("d", "user.dir", []byte("on a directory")))
	mode := uint32(0o4750)
	must(t, src.SetAttr("d/e/big", ciphertree.Attr{Mode: &mode}))
	past := unix.Timespec{Sec: 1000000000, Nsec: 123456789}
	for _, p := range []string{"d/small", "sym", "fifo", "d/e", "d"} {
		must(t, src.SetAttr(p, ciphertree.Attr{Atime: &past, Mtime: &past}))
	}
	must(t, src.SetRootMode(0o1777))
}

// TestCopyAndVerify: everything in a tree reaches a tree under another
// key, Verify finds no difference, hard links share an inode, and sparse
// regions stay holes.
func TestCopyAndVerify(t *testing.T) {
	src, dst := newTree(t, 1, crypt.Options{}), newTree(t, 2, crypt.Options{})
	populate(t, src)
	st, problems, err := Copy(src, dst, Options{Owners: os.Geteuid() == 0})
	must(t, err)
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if st.Dirs != 2 || st.Files != 5 || st.Links != 1 || st.Symlinks != 1 || st.Others != 1 || st.Xattrs != 2 {
		t.Errorf("copied %+v", st)
	}
	diffs, err := Verify(src, dst, os.Geteuid() == 0)
	must(t, err)
	if len(diffs) != 0 {
		t.Fatalf("differences: %v", diffs)
	}
	a, err := dst.Lstat("d/small")
	must(t, err)
	b, err := dst.Lstat("hardlink")
	must(t, err)
	if a.Stat.Ino != b.Stat.Ino {
		t.Error("the hard link is a copy in the new tree")
	}
	sp, err := dst.Lstat("sparse")
	must(t, err)
	if sp.Stat.Blocks*512 > 1<<20 {
		t.Errorf("the sparse file takes %d bytes in the copy, want a few blocks", sp.Stat.Blocks*512)
	}
	if m, err := dst.RootMode(); err != nil || m != 0o1777 {
		t.Errorf("root mode %o, %v; want 1777", m, err)
	}
	// Verify sees a change.
	must(t, dst.SetXattr("d/small", "user.comment", []byte("another value")))
	f, err := dst.CreateFile("extra", 0o644)
	must(t, err)
	must(t, f.Close())
	diffs, err = Verify(src, dst, false)
	must(t, err)
	got := ""
	for _, d := range diffs {
		got += d.String() + "\n"
	}
	for _, want := range []string{"d/small: extended attributes differ", "extra: only in the copy"} {
		if !strings.Contains(got, want) {
			t.Errorf("Verify does not report %q:\n%s", want, got)
		}
	}
}

// TestCopyReportsDamage: a block that fails authentication and a name that
// does not decrypt are Problems; the rest is copied.
func TestCopyReportsDamage(t *testing.T) {
	src, dst := newTree(t, 1, crypt.Options{}), newTree(t, 2, crypt.Options{})
	must(t, src.WriteFile("good", []byte("good"), 0o644))
	must(t, src.WriteFile("bad", bytes.Repeat([]byte("b"), 2*crypt.BlockSize), 0o644))
	lower, err := src.LowerPath("bad")
	must(t, err)
	f, err := os.OpenFile(filepath.Join(src.Dir(), lower), os.O_RDWR, 0)
	must(t, err)
	b := make([]byte, 1) // flip a byte (writing a fixed value may change nothing)
	off := int64(crypt.BlockOffset(1)) + 30
	_, err = f.ReadAt(b, off)
	must(t, err)
	_, err = f.WriteAt([]byte{b[0] ^ 0xff}, off)
	must(t, err)
	f.Close()
	must(t, os.WriteFile(filepath.Join(src.Dir(), "notaname"), nil, 0o644))
	_, problems, err := Copy(src, dst, Options{})
	must(t, err)
	got := ""
	for _, p := range problems {
		got += p.String() + "\n"
	}
	if len(problems) != 2 || !strings.Contains(got, "bad:") || !strings.Contains(got, "notaname") {
		t.Errorf("problems:\n%s", got)
	}
	if r, err := dst.OpenFile("good"); err != nil {
		t.Errorf("the good file was not copied: %v", err)
	} else {
		r.Close()
	}
}
