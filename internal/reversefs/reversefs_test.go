package reversefs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/fsck"
)

// These tests drive the file system's handlers directly, without a mount
// (a process must not read a FUSE mount it serves): they copy the whole
// view into a directory, as cp -a of a mounted view would, and read that
// copy with the forward-mode code (ciphertree, fsck).

var ctx = context.Background()

// testView is a plaintext tree with its reverse config, and the keys.
type testView struct {
	plain  string
	config string
	master []byte
	opts   crypt.Options
}

// newTestView creates a reverse config in plain (cheap KDF).
func newTestView(t testing.TB, plain string, opts crypt.Options) *testView {
	t.Helper()
	k := config.InsecureTestKDF()
	conf := filepath.Join(plain, ConfigName)
	_, master, err := config.Create(conf, []byte("pw"), config.CreateOptions{DeterministicNames: opts.DeterministicNames, KDF: &k, AllowWeakKDF: true})
	if err != nil {
		t.Fatal(err)
	}
	return &testView{plain: plain, config: conf, master: master, opts: opts}
}

// mount returns a view over the tree, as a new mount would make it.
func (v *testView) mount(t testing.TB) *FS {
	t.Helper()
	s, err := crypt.New(v.master, v.opts)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := crypt.NewReverse(v.master, s)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := New(Config{Plain: v.plain, Config: v.config, Reverse: rev, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close(); rev.Wipe(); s.Wipe() })
	return fsys
}

// suite returns forward mode's keys for the tree.
func (v *testView) suite(t *testing.T) *crypt.Suite {
	t.Helper()
	s, err := crypt.New(v.master, v.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Wipe)
	return s
}

func write(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// plainTree fills dir with what a view must handle: file sizes around
// block boundaries, a sparse file, nested and empty directories, names
// around the long-name threshold, names that look like cryptfs's own,
// symlinks (dangling, absolute, to a directory, long), user attributes, a
// fifo and a hard link.
func plainTree(t *testing.T, dir string) {
	t.Helper()
	for name, n := range map[string]int{"empty": 0, "one": 1, "b4095": 4095, "b4096": 4096, "b4097": 4097, "a/b/c/three-blocks": 3*4096 + 5} {
		write(t, filepath.Join(dir, name), random(t, n))
	}
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	sparse.WriteAt([]byte("in the middle"), 100<<10)
	sparse.Truncate(256 << 10)
	sparse.Close()
	for _, d := range []string{"emptydir", "a/emptier"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("L", 200)
	write(t, filepath.Join(dir, long), []byte("long name"))
	write(t, filepath.Join(dir, "a", strings.Repeat("x", 159)), []byte("159"))
	write(t, filepath.Join(dir, "a", strings.Repeat("y", 160)), []byte("160"))
	write(t, filepath.Join(dir, strings.Repeat("D", 255), "inside"), []byte("in a long-named directory"))
	// Plaintext names that are reserved in a cipher tree are ordinary here.
	write(t, filepath.Join(dir, "cryptfs.conf"), []byte("a user's file named cryptfs.conf"))
	write(t, filepath.Join(dir, crypt.DirIVFile), []byte("a user's file named .cryptfs.diriv"))
	write(t, filepath.Join(dir, "a", ConfigName), []byte("not the config: it is not at the root"))
	for target, name := range map[string]string{
		"../one": "a/rel", "/etc/passwd": "abs", "nowhere": "dangling", "a": "todir",
		strings.Repeat("t/", 1500): "longtarget",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for p, attrs := range map[string]map[string]string{
		"one": {"user.comment": "hello", "user.empty": "", "user." + strings.Repeat("n", 150): "longest name"},
		"a":   {"user.dir": "on a directory"},
	} {
		for k, v := range attrs {
			if err := unix.Setxattr(filepath.Join(dir, p), k, []byte(v), 0); err != nil {
				t.Skipf("user xattrs unsupported here: %v", err)
			}
		}
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "b4097"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
}

// parseDirents decodes the fuse_dirent records ReadDir wrote.
func parseDirents(t testing.TB, b []byte) (names []string, inos []uint64, offs []uint64) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 24 {
			t.Fatalf("truncated dirent")
		}
		ino, off := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		n := int(binary.LittleEndian.Uint32(b[16:]))
		names = append(names, string(b[24:24+n]))
		inos, offs = append(inos, ino), append(offs, off)
		rec := (24 + n + 7) &^ 7
		b = b[min(rec, len(b)):]
	}
	return names, inos, offs
}

// readDir lists a directory of the view through OpenDir and ReadDir,
// with a small buffer so that the listing takes several reads.
func readDir(t testing.TB, fsys *FS, id fuseops.InodeID) []string {
	t.Helper()
	open := &fuseops.OpenDirOp{Inode: id}
	if err := fsys.OpenDir(ctx, open); err != nil {
		t.Fatal(err)
	}
	defer fsys.ReleaseDirHandle(ctx, &fuseops.ReleaseDirHandleOp{Handle: open.Handle})
	var all []string
	off := fuseops.DirOffset(0)
	for {
		op := &fuseops.ReadDirOp{Inode: id, Handle: open.Handle, Offset: off, Dst: make([]byte, 700)}
		if err := fsys.ReadDir(ctx, op); err != nil {
			t.Fatal(err)
		}
		if op.BytesRead == 0 {
			return all
		}
		names, _, offs := parseDirents(t, op.Dst[:op.BytesRead])
		all = append(all, names...)
		off = fuseops.DirOffset(offs[len(offs)-1])
	}
}

// readAll reads a file of the view in chunks of odd sizes, and checks the
// result against one read of the whole file.
func readAll(t *testing.T, fsys *FS, id fuseops.InodeID, size uint64) []byte {
	t.Helper()
	open := &fuseops.OpenFileOp{Inode: id}
	if err := fsys.OpenFile(ctx, open); err != nil {
		t.Fatal(err)
	}
	defer fsys.ReleaseFileHandle(ctx, &fuseops.ReleaseFileHandleOp{Handle: open.Handle})
	read := func(off int64, n int) []byte {
		op := &fuseops.ReadFileOp{Inode: id, Handle: open.Handle, Offset: off, Size: int64(n), Dst: make([]byte, n)}
		if err := fsys.ReadFile(ctx, op); err != nil {
			t.Fatal(err)
		}
		return op.Dst[:op.BytesRead]
	}
	var chunked []byte
	steps := []int{7, 4136 + 11} // odd sizes: every boundary inside a read
	if size > 2*crypt.CipherBlockSize {
		steps = []int{4136 + 11, 128<<10 + 3}
	}
	for _, step := range steps {
		chunked = chunked[:0]
		for off := int64(0); ; {
			b := read(off, step)
			if len(b) == 0 {
				break
			}
			chunked = append(chunked, b...)
			off += int64(len(b))
		}
		if whole := read(0, int(size)+100); !bytes.Equal(whole, chunked) {
			t.Fatalf("inode %d: reads of %d bytes differ from one read", id, step)
		}
	}
	if uint64(len(chunked)) != size {
		t.Fatalf("inode %d: read %d bytes, attributes say %d", id, len(chunked), size)
	}
	if b := read(int64(size)+5000, 100); len(b) != 0 {
		t.Fatalf("read beyond the end gave %d bytes", len(b))
	}
	return chunked
}

// copyView copies the whole view into dst through the handlers, as cp -a
// would, and returns every entry's inode number by view path.
func copyView(t *testing.T, fsys *FS, dst string) map[string]uint64 {
	t.Helper()
	inos := map[string]uint64{}
	var walk func(id fuseops.InodeID, dir, rel string)
	walk = func(id fuseops.InodeID, dir, rel string) {
		for _, name := range readDir(t, fsys, id) {
			if name == "." || name == ".." {
				continue
			}
			look := &fuseops.LookUpInodeOp{Parent: id, Name: name}
			if err := fsys.LookUpInode(ctx, look); err != nil {
				t.Fatalf("lookup %s/%s: %v", rel, name, err)
			}
			e := look.Entry
			p, r := filepath.Join(dir, name), filepath.Join(rel, name)
			inos[r] = uint64(e.Child)
			get := &fuseops.GetInodeAttributesOp{Inode: e.Child}
			if err := fsys.GetInodeAttributes(ctx, get); err != nil || get.Attributes != e.Attributes {
				t.Fatalf("getattr %s: %v, %+v vs %+v", r, err, get.Attributes, e.Attributes)
			}
			m := e.Attributes.Mode
			switch {
			case m.IsDir():
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
				walk(e.Child, p, r)
			case m.IsRegular():
				if err := os.WriteFile(p, readAll(t, fsys, e.Child, e.Attributes.Size), 0o600); err != nil {
					t.Fatal(err)
				}
			case m&os.ModeSymlink != 0:
				op := &fuseops.ReadSymlinkOp{Inode: e.Child}
				if err := fsys.ReadSymlink(ctx, op); err != nil {
					t.Fatalf("readlink %s: %v", r, err)
				}
				if uint64(len(op.Target)) != e.Attributes.Size {
					t.Fatalf("symlink %s: target of %d bytes, size %d", r, len(op.Target), e.Attributes.Size)
				}
				if err := os.Symlink(op.Target, p); err != nil {
					t.Fatal(err)
				}
			case m&os.ModeNamedPipe != 0:
				if err := unix.Mkfifo(p, 0o600); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("%s: unexpected mode %v", r, m)
			}
			copyXattrs(t, fsys, e.Child, p)
			os.Chmod(p, m.Perm()) // after writing (0400 files)
			fsys.ForgetInode(ctx, &fuseops.ForgetInodeOp{Inode: e.Child, N: 1})
		}
	}
	walk(fuseops.RootInodeID, dst, "")
	return inos
}

func copyXattrs(t *testing.T, fsys *FS, id fuseops.InodeID, p string) {
	t.Helper()
	list := &fuseops.ListXattrOp{Inode: id}
	if err := fsys.ListXattr(ctx, list); err != nil {
		t.Fatal(err)
	}
	if list.BytesRead == 0 {
		return
	}
	list.Dst = make([]byte, list.BytesRead)
	list.BytesRead = 0
	if err := fsys.ListXattr(ctx, list); err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(strings.TrimSuffix(string(list.Dst[:list.BytesRead]), "\x00"), "\x00") {
		get := &fuseops.GetXattrOp{Inode: id, Name: name}
		if err := fsys.GetXattr(ctx, get); err != nil {
			t.Fatal(err)
		}
		get.Dst, get.BytesRead = make([]byte, get.BytesRead), 0
		if err := fsys.GetXattr(ctx, get); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(p, name, get.Dst[:get.BytesRead], 0); err != nil {
			t.Fatal(err)
		}
	}
}

// comparePlain checks that forward mode reads the copy as the plaintext
// tree (without the reverse config), entry by entry.
func comparePlain(t *testing.T, s *crypt.Suite, copyDir, plain string) {
	t.Helper()
	tree, err := ciphertree.Open(copyDir, s)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	seen := 0
	err = filepath.WalkDir(plain, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(plain, p)
		if rel == "." {
			return nil
		}
		if rel == ConfigName || rel == ConfigName+".bak" {
			if _, err := tree.LowerPath(rel); err != nil {
				return err
			}
			if lp, _ := tree.LowerPath(rel); exists(filepath.Join(copyDir, lp)) {
				t.Errorf("the reverse config %s is in the view", rel)
			}
			return nil
		}
		seen++
		lower, err := tree.LowerPath(rel)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		var pst, cst unix.Stat_t
		if err := unix.Lstat(p, &pst); err != nil {
			return err
		}
		if err := unix.Lstat(filepath.Join(copyDir, lower), &cst); err != nil {
			t.Errorf("%s: not in the copy: %v", rel, err)
			return nil
		}
		if pst.Mode&unix.S_IFMT != cst.Mode&unix.S_IFMT {
			t.Errorf("%s: type %o in the copy, %o in the plaintext", rel, cst.Mode&unix.S_IFMT, pst.Mode&unix.S_IFMT)
			return nil
		}
		switch pst.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			want, _ := os.ReadFile(p)
			f, err := tree.OpenFile(rel)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				return nil
			}
			got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
			f.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: forward read %d bytes (%v), want %d", rel, len(got), err, len(want))
			}
		case unix.S_IFLNK:
			want, _ := os.Readlink(p)
			if got, err := tree.Readlink(rel); err != nil || got != want {
				t.Errorf("%s: forward readlink %q, %v; want %q", rel, got, err, want)
			}
		}
		if pst.Mode&unix.S_IFMT == unix.S_IFREG || pst.Mode&unix.S_IFMT == unix.S_IFDIR {
			xs, err := tree.Xattrs(rel)
			if err != nil {
				t.Errorf("%s: xattrs: %v", rel, err)
			}
			got := map[string]string{}
			for _, x := range xs {
				if x.NameErr != nil || x.ValueErr != nil {
					t.Errorf("%s: xattr %s does not decrypt", rel, x.Lower)
				}
				got[x.Name] = string(x.Value)
			}
			want := plainXattrs(t, p)
			if !equalMaps(got, want) {
				t.Errorf("%s: xattrs %q, want %q", rel, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 20 {
		t.Fatalf("compared only %d entries", seen)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// plainXattrs are the user attributes of p that forward mode can store.
func plainXattrs(t *testing.T, p string) map[string]string {
	out := map[string]string{}
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return out
	}
	buf := make([]byte, sz)
	sz, _ = unix.Llistxattr(p, buf)
	for _, name := range strings.Split(strings.TrimSuffix(string(buf[:sz]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") || len(name) > crypt.MaxXattrName {
			continue
		}
		v, err := ciphertree.Getxattr(p, name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(v)
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestCopyReadsInForwardMode: a copy of the view is a cipher tree that
// forward mode reads as the plaintext, and that fsck finds clean.
func TestCopyReadsInForwardMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts crypt.Options
	}{
		{"diriv", crypt.Options{}},
		{"deterministic-names", crypt.Options{DeterministicNames: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := t.TempDir()
			plainTree(t, plain)
			v := newTestView(t, plain, tc.opts)
			dst := t.TempDir()
			copyView(t, v.mount(t), dst)

			conf, _ := os.ReadFile(v.config)
			if got, err := os.ReadFile(filepath.Join(dst, ViewConfigName)); err != nil || !bytes.Equal(got, conf) {
				t.Fatalf("the view's cryptfs.conf is not the reverse config: %v", err)
			}
			if _, err := config.Load(filepath.Join(dst, ViewConfigName), config.LoadOptions{AllowWeakKDF: true}); err != nil {
				t.Fatalf("forward mode refuses the view's config: %v", err)
			}
			_, err := os.Stat(filepath.Join(dst, crypt.DirIVFile))
			if tc.opts.DeterministicNames != errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("root IV file: %v (deterministic names %v)", err, tc.opts.DeterministicNames)
			}
			s := v.suite(t)
			comparePlain(t, s, dst, plain)
			rep, err := fsck.Check(dst, s, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Clean() {
				t.Fatalf("fsck of the copy: %+v", rep.Problems)
			}
		})
	}
}

// hashTree maps every entry of a directory to a digest of what it is.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := sha256.New()
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			h.Write([]byte("link " + target))
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		sz, _ := unix.Llistxattr(p, nil)
		if sz > 0 {
			buf := make([]byte, sz)
			sz, _ = unix.Llistxattr(p, buf)
			names := strings.Split(string(buf[:sz]), "\x00")
			slices.Sort(names)
			for _, n := range names {
				if n == "" {
					continue
				}
				v, _ := ciphertree.Getxattr(p, n)
				h.Write([]byte(n + "=" + string(v)))
			}
		}
		out[rel] = string(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestViewStableAcrossMounts: two views of the same tree (two mounts,
// with keys unlocked twice) have the same names, bytes and inode numbers.
func TestViewStableAcrossMounts(t *testing.T) {
	plain := t.TempDir()
	plainTree(t, plain)
	v := newTestView(t, plain, crypt.Options{})
	a, b := t.TempDir(), t.TempDir()
	inoA := copyView(t, v.mount(t), a)
	inoB := copyView(t, v.mount(t), b)
	ha, hb := hashTree(t, a), hashTree(t, b)
	if len(ha) < 20 || len(ha) != len(hb) {
		t.Fatalf("%d and %d entries", len(ha), len(hb))
	}
	for p, h := range ha {
		if hb[p] != h {
			t.Errorf("%s differs between the two views", p)
		}
		if inoA[p] != inoB[p] && p != "." {
			t.Errorf("%s: inode %d, then %d", p, inoA[p], inoB[p])
		}
	}
	seen := map[uint64]string{}
	for p, ino := range inoA {
		if other, dup := seen[ino]; dup {
			t.Errorf("%s and %s share inode %d", p, other, ino)
		}
		seen[ino] = p
	}
}

// TestChangeTouchesOneBlock: changing bytes of one block of one plaintext
// file changes that file's view in that block only; writing the old bytes
// back gives the old view again; every other file is unchanged.
func TestChangeTouchesOneBlock(t *testing.T) {
	plain := t.TempDir()
	write(t, filepath.Join(plain, "small"), random(t, 100))
	write(t, filepath.Join(plain, "d/other"), random(t, 3*crypt.BlockSize))
	big := filepath.Join(plain, "big")
	write(t, big, random(t, 10*crypt.BlockSize+100))
	v := newTestView(t, plain, crypt.Options{})
	before := t.TempDir()
	copyView(t, v.mount(t), before)

	f, err := os.OpenFile(big, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := make([]byte, 3)
	r, _ := os.Open(big)
	r.ReadAt(old, 4*crypt.BlockSize+17)
	r.Close()
	if _, err := f.WriteAt([]byte{^old[0], ^old[1], ^old[2]}, 4*crypt.BlockSize+17); err != nil {
		t.Fatal(err)
	}
	after := t.TempDir()
	copyView(t, v.mount(t), after)

	s := v.suite(t)
	tree, _ := ciphertree.Open(before, s)
	lower, err := tree.LowerPath("big")
	tree.Close()
	if err != nil {
		t.Fatal(err)
	}
	hb, ha := hashTree(t, before), hashTree(t, after)
	for p := range hb {
		if (hb[p] != ha[p]) != (p == lower) {
			t.Errorf("%s: changed %v", p, hb[p] != ha[p])
		}
	}
	x, _ := os.ReadFile(filepath.Join(before, lower))
	y, _ := os.ReadFile(filepath.Join(after, lower))
	if len(x) != len(y) {
		t.Fatalf("cipher size changed: %d -> %d", len(x), len(y))
	}
	for b := int64(0); b <= 10; b++ {
		lo := crypt.BlockOffset(uint64(b))
		hi := min(lo+crypt.CipherBlockSize, uint64(len(x)))
		if changed := !bytes.Equal(x[lo:hi], y[lo:hi]); changed != (b == 4) {
			t.Errorf("block %d changed: %v", b, changed)
		}
	}
	if !bytes.Equal(x[:crypt.HeaderLen], y[:crypt.HeaderLen]) {
		t.Error("header changed")
	}

	f.WriteAt(old, 4*crypt.BlockSize+17)
	f.Close()
	again := t.TempDir()
	copyView(t, v.mount(t), again)
	if z, _ := os.ReadFile(filepath.Join(again, lower)); !bytes.Equal(z, x) {
		t.Error("writing the old bytes back did not give the old view")
	}
}

// TestAtomicSaveKeepsView: an editor's save (a new inode renamed over the
// file) with one changed block changes one block of the view, since the
// view's identity of a file is its path.
func TestAtomicSaveKeepsView(t *testing.T) {
	plain := t.TempDir()
	data := random(t, 5*crypt.BlockSize)
	write(t, filepath.Join(plain, "doc"), data)
	v := newTestView(t, plain, crypt.Options{})
	before := t.TempDir()
	copyView(t, v.mount(t), before)
	data[2*crypt.BlockSize] ^= 1
	write(t, filepath.Join(plain, "doc.tmp"), data)
	if err := os.Rename(filepath.Join(plain, "doc.tmp"), filepath.Join(plain, "doc")); err != nil {
		t.Fatal(err)
	}
	after := t.TempDir()
	copyView(t, v.mount(t), after)
	tree, _ := ciphertree.Open(before, v.suite(t))
	lower, _ := tree.LowerPath("doc")
	tree.Close()
	x, _ := os.ReadFile(filepath.Join(before, lower))
	y, _ := os.ReadFile(filepath.Join(after, lower))
	for b := uint64(0); b < 5; b++ {
		lo := crypt.BlockOffset(b)
		if changed := !bytes.Equal(x[lo:lo+crypt.CipherBlockSize], y[lo:lo+crypt.CipherBlockSize]); changed != (b == 2) {
			t.Errorf("block %d changed: %v", b, changed)
		}
	}
}

// TestHiddenAndReserved: the reverse config and its backup are not in
// the view; cipher names that are not in the view give ENOENT.
func TestHiddenAndReserved(t *testing.T) {
	plain := t.TempDir()
	write(t, filepath.Join(plain, "f"), []byte("x"))
	v := newTestView(t, plain, crypt.Options{})
	write(t, filepath.Join(plain, ConfigName+".bak"), []byte("old config"))
	write(t, filepath.Join(plain, ".cryptfs.tmp."+ConfigName+".0123456789abcdef"), []byte("half-written config"))
	fsys := v.mount(t)
	names := readDir(t, fsys, fuseops.RootInodeID)
	if len(names) != 5 { // . .. .cryptfs.diriv cryptfs.conf <f>
		t.Fatalf("root lists %q", names)
	}
	iv, _ := fsys.rev.DirIV("")
	for _, hidden := range []string{ConfigName, ConfigName + ".bak", ".cryptfs.tmp." + ConfigName + ".0123456789abcdef"} {
		enc, _ := fsys.s.EncryptName(iv, hidden)
		if slices.Contains(names, enc) {
			t.Errorf("%s is listed", hidden)
		}
		if err := fsys.LookUpInode(ctx, &fuseops.LookUpInodeOp{Parent: fuseops.RootInodeID, Name: enc}); err != syscall.ENOENT {
			t.Errorf("lookup of %s: %v", hidden, err)
		}
	}
	for _, name := range []string{"nonsense", "longname.AAAA", crypt.SidecarName("longname." + strings.Repeat("A", 43)), "cryptfs.conf.bak", ".cryptfs.other"} {
		if err := fsys.LookUpInode(ctx, &fuseops.LookUpInodeOp{Parent: fuseops.RootInodeID, Name: name}); err != syscall.ENOENT {
			t.Errorf("lookup of %q: %v, want ENOENT", name, err)
		}
	}
}

// TestReadOnlyHandlers: every request that changes something is EROFS.
func TestReadOnlyHandlers(t *testing.T) {
	fsys := newTestView(t, t.TempDir(), crypt.Options{}).mount(t)
	for name, err := range map[string]error{
		"setattr": fsys.SetInodeAttributes(ctx, &fuseops.SetInodeAttributesOp{}),
		"mkdir":   fsys.MkDir(ctx, &fuseops.MkDirOp{}),
		"mknod":   fsys.MkNode(ctx, &fuseops.MkNodeOp{}),
		"create":  fsys.CreateFile(ctx, &fuseops.CreateFileOp{}),
		"link":    fsys.CreateLink(ctx, &fuseops.CreateLinkOp{}),
		"symlink": fsys.CreateSymlink(ctx, &fuseops.CreateSymlinkOp{}),
		"rename":  fsys.Rename(ctx, &fuseops.RenameOp{}),
		"rmdir":   fsys.RmDir(ctx, &fuseops.RmDirOp{}),
		"unlink":  fsys.Unlink(ctx, &fuseops.UnlinkOp{}),
		"write":   fsys.WriteFile(ctx, &fuseops.WriteFileOp{}),
		"rmxattr": fsys.RemoveXattr(ctx, &fuseops.RemoveXattrOp{}),
		"setxatr": fsys.SetXattr(ctx, &fuseops.SetXattrOp{}),
		"falloc":  fsys.Fallocate(ctx, &fuseops.FallocateOp{}),
	} {
		if err != syscall.EROFS {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
}

// TestSymlinkNotFollowed: a plaintext symlink to a directory outside the
// tree is shown as a symlink; lookups never go through it.
func TestSymlinkNotFollowed(t *testing.T) {
	plain, outside := t.TempDir(), t.TempDir()
	write(t, filepath.Join(outside, "secret"), []byte("outside"))
	if err := os.Symlink(outside, filepath.Join(plain, "out")); err != nil {
		t.Fatal(err)
	}
	v := newTestView(t, plain, crypt.Options{})
	fsys := v.mount(t)
	iv, _ := fsys.rev.DirIV("")
	enc, _ := fsys.s.EncryptName(iv, "out")
	look := &fuseops.LookUpInodeOp{Parent: fuseops.RootInodeID, Name: enc}
	if err := fsys.LookUpInode(ctx, look); err != nil {
		t.Fatal(err)
	}
	if look.Entry.Attributes.Mode&os.ModeSymlink == 0 {
		t.Fatalf("mode %v", look.Entry.Attributes.Mode)
	}
	if err := fsys.OpenDir(ctx, &fuseops.OpenDirOp{Inode: look.Entry.Child}); err != syscall.ENOTDIR {
		t.Fatalf("opendir through a symlink: %v", err)
	}
	// Even a node for the path under the symlink cannot be resolved.
	if _, err := fsys.ref(nodeKey{class: crypt.InodeClassOf(unix.S_IFDIR), path: "out"}); err != nil {
		t.Fatal(err)
	}
	id := fuseops.InodeID(fsys.peek(nodeKey{class: crypt.InodeClassOf(unix.S_IFDIR), path: "out"}))
	if err := fsys.OpenDir(ctx, &fuseops.OpenDirOp{Inode: id}); err == nil {
		t.Fatal("listed a directory through a symlink")
	}
}

// TestForgetDropsNodes: the inode table holds what the kernel holds.
func TestForgetDropsNodes(t *testing.T) {
	plain := t.TempDir()
	write(t, filepath.Join(plain, "f"), []byte("x"))
	fsys := newTestView(t, plain, crypt.Options{}).mount(t)
	iv, _ := fsys.rev.DirIV("")
	enc, _ := fsys.s.EncryptName(iv, "f")
	var id fuseops.InodeID
	for range 3 {
		look := &fuseops.LookUpInodeOp{Parent: fuseops.RootInodeID, Name: enc}
		if err := fsys.LookUpInode(ctx, look); err != nil {
			t.Fatal(err)
		}
		id = look.Entry.Child
	}
	if fsys.Inodes() != 2 {
		t.Fatalf("%d inodes", fsys.Inodes())
	}
	fsys.ForgetInode(ctx, &fuseops.ForgetInodeOp{Inode: id, N: 2})
	if fsys.Inodes() != 2 {
		t.Fatal("forgot too early")
	}
	fsys.BatchForget(ctx, &fuseops.BatchForgetOp{Entries: []fuseops.BatchForgetEntry{{Inode: id, N: 1}}})
	if fsys.Inodes() != 1 {
		t.Fatalf("%d inodes after the last forget", fsys.Inodes())
	}
	if err := fsys.GetInodeAttributes(ctx, &fuseops.GetInodeAttributesOp{Inode: id}); err != syscall.ESTALE {
		t.Fatalf("getattr of a forgotten inode: %v", err)
	}
}

// TestReadCipherWindows: any window of a file's view (in the header,
// across block boundaries, large enough to seal on all cores, past a
// short last block, past the end) is that window of the whole view built
// block by block.
func TestReadCipherWindows(t *testing.T) {
	plain := t.TempDir()
	v := newTestView(t, plain, crypt.Options{})
	fsys := v.mount(t)
	for _, size := range []int{0, 1, 4095, 4096, 4097, 40*crypt.BlockSize + 33} {
		data := random(t, size)
		p := filepath.Join(plain, "f")
		write(t, p, data)
		id, _ := fsys.rev.FileID("f")
		var want []byte
		if size > 0 {
			want = crypt.EncodeHeader(nil, id)
		}
		for b := 0; b*crypt.BlockSize < size; b++ {
			var err error
			if want, err = fsys.rev.SealBlock(want, data[b*crypt.BlockSize:min(size, (b+1)*crypt.BlockSize)], id, uint64(b)); err != nil {
				t.Fatal(err)
			}
		}
		if uint64(len(want)) != crypt.CipherSize(uint64(size)) {
			t.Fatalf("size %d: reference is %d bytes", size, len(want))
		}
		fd, err := unix.Open(p, unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range [][2]int{{0, 1}, {0, 18}, {5, 20}, {17, 2}, {18, 4136}, {4150, 9000}, {0, len(want) + 10},
			{100, 1 << 20}, {len(want) - 3, 10}, {len(want), 10}, {len(want) + 5000, 10}, {4136*3 + 18, 4136 * 20}} {
			if w[0] < 0 {
				continue
			}
			dst := make([]byte, w[1])
			n, err := fsys.readCipher(fd, id, dst, int64(w[0]))
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := min(w[0], len(want)), min(w[0]+w[1], len(want))
			if !bytes.Equal(dst[:n], want[lo:hi]) {
				t.Errorf("size %d, window %v: %d bytes, want %d (equal prefix: %v)", size, w, n, hi-lo, bytes.HasPrefix(want[lo:hi], dst[:n]))
			}
		}
		unix.Close(fd)
	}
}

// TestConfigChecked: the view shows its config only if it is a cryptfs
// config with the keys' flags (a file put in its place, say a hard link
// to another file, is refused at mount), and shows it as it was at mount.
func TestConfigChecked(t *testing.T) {
	plain := t.TempDir()
	v := newTestView(t, plain, crypt.Options{})
	s := v.suite(t)
	rev, err := crypt.NewReverse(v.master, s)
	if err != nil {
		t.Fatal(err)
	}
	defer rev.Wipe()
	mount := func(conf string) error {
		fsys, err := New(Config{Plain: plain, Config: conf, Reverse: rev, Log: zerolog.Nop()})
		if err == nil {
			fsys.Close()
		}
		return err
	}
	other := filepath.Join(t.TempDir(), "secret")
	write(t, other, []byte("not a config"))
	if err := mount(other); err == nil {
		t.Error("mounted with a file that is not a config")
	}
	det := filepath.Join(t.TempDir(), "det.conf")
	k := config.InsecureTestKDF()
	if _, _, err := config.Create(det, []byte("pw"), config.CreateOptions{DeterministicNames: true, KDF: &k, AllowWeakKDF: true}); err != nil {
		t.Fatal(err)
	}
	if err := mount(det); err == nil {
		t.Error("mounted with a config whose flags are not the keys'")
	}
	if err := mount(filepath.Join(plain, "missing")); err == nil {
		t.Error("mounted without a config")
	}

	fsys := v.mount(t)
	before, _ := os.ReadFile(v.config)
	os.Remove(v.config)
	write(t, v.config, []byte("replaced after the mount"))
	look := &fuseops.LookUpInodeOp{Parent: fuseops.RootInodeID, Name: ViewConfigName}
	if err := fsys.LookUpInode(ctx, look); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, fsys, look.Entry.Child, look.Entry.Attributes.Size); !bytes.Equal(got, before) {
		t.Errorf("the view's cryptfs.conf changed with the file: %q", got)
	}
}
