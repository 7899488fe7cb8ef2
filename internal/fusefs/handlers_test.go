package fusefs

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/meta"
)

// The handlers, called directly as jacobsa/fuse would (no mount): each
// test checks the replies, the errnos, and what reached the lower
// directory, read back offline through ciphertree where it matters.

// tree opens the test's lower directory offline with the same keys.
func (f *testFS) tree() *ciphertree.Tree {
	f.t.Helper()
	tr, err := ciphertree.Open(f.lower, f.suite)
	f.must(err)
	f.t.Cleanup(func() { tr.Close() })
	return tr
}

func (f *testFS) getattr(id uint64) fuseops.InodeAttributes {
	f.t.Helper()
	op := &fuseops.GetInodeAttributesOp{Inode: fuseops.InodeID(id)}
	f.must(f.GetInodeAttributes(f.ctx, op))
	return op.Attributes
}

// names lists directory id through OPENDIR and READDIR.
func (f *testFS) names(id uint64) []string {
	f.t.Helper()
	op := &fuseops.OpenDirOp{Inode: fuseops.InodeID(id)}
	f.must(f.OpenDir(f.ctx, op))
	defer func() { f.must(f.ReleaseDirHandle(f.ctx, &fuseops.ReleaseDirHandleOp{Handle: op.Handle})) }()
	var names []string
	var off fuseops.DirOffset
	for {
		r := &fuseops.ReadDirOp{Inode: fuseops.InodeID(id), Handle: op.Handle, Offset: off, Dst: make([]byte, 300)}
		f.must(f.ReadDir(f.ctx, r))
		if r.BytesRead == 0 {
			slices.Sort(names)
			return names
		}
		// struct fuse_dirent: ino, off, namelen, type, name (8-aligned).
		for b := r.Dst[:r.BytesRead]; len(b) > 0; {
			off = fuseops.DirOffset(binary.LittleEndian.Uint64(b[8:]))
			n := int(binary.LittleEndian.Uint32(b[16:]))
			names = append(names, string(b[24:24+n]))
			b = b[(24+n+7)&^7:]
		}
	}
}

func TestCreateWriteReadLookup(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	data := bytes.Repeat([]byte("plaintext "), 1000)
	id := f.create(rootID, "file.txt", data)
	if got := f.read(id); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want the %d written", len(got), len(data))
	}
	e, err := f.lookup(rootID, "file.txt")
	if err != nil || uint64(e.Child) != id || e.Attributes.Size != uint64(len(data)) || e.Attributes.Mode.Perm() != 0o644 {
		t.Fatalf("lookup: %+v, %v", e, err)
	}
	if e, err := f.lookup(rootID, "missing"); err != nil || e.Child != 0 || e.EntryExpiration.IsZero() {
		t.Errorf("lookup of a missing name: %+v, %v; want a cacheable negative entry", e, err)
	}
	// On disk: one lower file under an encrypted name, holding no plaintext.
	lower, err := f.tree().LowerPath("file.txt")
	f.must(err)
	raw, err := os.ReadFile(filepath.Join(f.lower, lower))
	f.must(err)
	if bytes.Contains(raw, []byte("plaintext")) || strings.Contains(lower, "file") {
		t.Error("plaintext name or content in the lower directory")
	}
	if len(raw) != int(crypt.CipherSize(uint64(len(data)))) {
		t.Errorf("lower size %d, want %d", len(raw), crypt.CipherSize(uint64(len(data))))
	}
}

func TestCreateErrors(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	file := f.create(rootID, "x", nil)
	for _, c := range []struct {
		desc   string
		parent uint64
		name   string
		want   syscall.Errno
	}{
		{"existing name", rootID, "x", syscall.EEXIST},
		{"name of 256 bytes", rootID, strings.Repeat("n", 256), syscall.ENAMETOOLONG},
		{"parent is a file", file, "y", syscall.ENOTDIR},
		{"unknown parent", 1 << 40, "y", syscall.ESTALE},
	} {
		op := &fuseops.CreateFileOp{Parent: fuseops.InodeID(c.parent), Name: c.name, Mode: 0o644}
		if got := errnoOf(f.CreateFile(f.ctx, op)); got != c.want {
			t.Errorf("%s: %v, want %v", c.desc, got, c.want)
		}
		mk := &fuseops.MkDirOp{Parent: fuseops.InodeID(c.parent), Name: c.name, Mode: os.ModeDir | 0o755}
		if got := errnoOf(f.MkDir(f.ctx, mk)); got != c.want {
			t.Errorf("mkdir, %s: %v, want %v", c.desc, got, c.want)
		}
	}
	if n := f.names(rootID); !slices.Equal(n, []string{".", "..", "x"}) {
		t.Errorf("after the failed creations the root lists %q", n)
	}
}

func TestReadOnly(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	f.readOnly = true
	if got := errnoOf(f.CreateFile(f.ctx, &fuseops.CreateFileOp{Parent: rootID, Name: "x", Mode: 0o644})); got != syscall.EROFS {
		t.Errorf("create on a read-only mount: %v", got)
	}
	if got := errnoOf(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: "x"})); got != syscall.EROFS {
		t.Errorf("unlink on a read-only mount: %v", got)
	}
}

// TestLongNames: names too long for the lower directory are stored
// hashed with a sidecar; they list, look up, rename and unlink like any
// other, and leave no sidecar behind.
func TestLongNames(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	long := strings.Repeat("l", 240)
	longer := strings.Repeat("m", 250)
	id := f.create(rootID, long, []byte("x"))
	if n := f.names(rootID); !slices.Equal(n, []string{".", "..", long}) {
		t.Fatalf("listing %q", n)
	}
	f.must(f.Rename(f.ctx, &fuseops.RenameOp{OldParent: rootID, OldName: long, NewParent: rootID, NewName: longer}))
	if e, _ := f.lookup(rootID, longer); uint64(e.Child) != id {
		t.Fatalf("lookup after rename: %+v", e)
	}
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: longer}))
	entries, err := os.ReadDir(f.lower)
	f.must(err)
	for _, e := range entries {
		if e.Name() != crypt.DirIVFile {
			t.Errorf("left in the lower directory: %s", e.Name())
		}
	}
}

func TestMkdirReaddir(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	d := f.mkdir(rootID, "d")
	for _, n := range []string{"a", "b", "c"} {
		f.create(d, n, nil)
	}
	f.mkdir(d, "sub")
	if n := f.names(d); !slices.Equal(n, []string{".", "..", "a", "b", "c", "sub"}) {
		t.Fatalf("listing %q", n)
	}
	// A file dropped into the lower directory from outside is skipped, with
	// one warning however often it is listed.
	lower, err := f.tree().LowerPath("d")
	f.must(err)
	f.must(os.WriteFile(filepath.Join(f.lower, lower, "conflict copy.txt"), nil, 0o600))
	f.names(d)
	if n := f.names(d); len(n) != 6 {
		t.Errorf("listing with a foreign file: %q", n)
	}
	if c := strings.Count(f.log.String(), "does not decrypt"); c != 1 {
		t.Errorf("%d warnings about the foreign file, want 1:\n%s", c, f.log.String())
	}

	// READDIRPLUS: every entry but . and .. is a kernel reference.
	op := &fuseops.OpenDirOp{Inode: fuseops.InodeID(d)}
	f.must(f.OpenDir(f.ctx, op))
	plus := &fuseops.ReadDirPlusOp{ReadDirOp: fuseops.ReadDirOp{Inode: fuseops.InodeID(d), Handle: op.Handle, Dst: make([]byte, 1<<16)}}
	f.must(f.ReadDirPlus(f.ctx, plus))
	if plus.BytesRead == 0 {
		t.Fatal("READDIRPLUS returned nothing")
	}
	e, _ := f.lookup(d, "a")
	if r := f.refs(uint64(e.Child)); r != 3 { // create, READDIRPLUS, this lookup
		t.Errorf("%d kernel references to a after create, READDIRPLUS and LOOKUP, want 3", r)
	}
}

func TestUnlinkRmdir(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	d := f.mkdir(rootID, "d")
	f.create(d, "x", nil)
	for _, c := range []struct {
		desc string
		err  error
		want syscall.Errno
	}{
		{"rmdir of a non-empty directory", f.RmDir(f.ctx, &fuseops.RmDirOp{Parent: rootID, Name: "d"}), syscall.ENOTEMPTY},
		{"unlink of a directory", f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: "d"}), syscall.EISDIR},
		{"rmdir of a file", f.RmDir(f.ctx, &fuseops.RmDirOp{Parent: fuseops.InodeID(d), Name: "x"}), syscall.ENOTDIR},
		{"unlink of a missing name", f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: fuseops.InodeID(d), Name: "y"}), syscall.ENOENT},
	} {
		if got := errnoOf(c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.desc, got, c.want)
		}
	}
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: fuseops.InodeID(d), Name: "x"}))
	if e, err := f.lookup(d, "x"); err != nil || e.Child != 0 {
		t.Errorf("lookup after unlink: %+v, %v", e, err)
	}
	f.must(f.RmDir(f.ctx, &fuseops.RmDirOp{Parent: rootID, Name: "d"}))
	if n := f.names(rootID); len(n) != 2 {
		t.Errorf("root lists %q after rmdir", n)
	}
	entries, _ := os.ReadDir(f.lower)
	if len(entries) != 1 {
		t.Errorf("lower root holds %d entries after rmdir, want the IV file only", len(entries))
	}
}

func TestRename(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	a, b := f.mkdir(rootID, "a"), f.mkdir(rootID, "b")
	x := f.create(a, "x", []byte("x"))
	y := f.create(b, "y", []byte("y"))
	f.mkdir(b, "full")
	f.create(b+0, "full-file", nil)
	full, _ := f.lookup(b, "full")
	f.create(uint64(full.Child), "inside", nil)
	empty := f.mkdir(b, "empty")

	rename := func(op, oldName uint64, on string, np uint64, nn string) syscall.Errno {
		return errnoOf(f.Rename(f.ctx, &fuseops.RenameOp{OldParent: fuseops.InodeID(op), OldName: on, NewParent: fuseops.InodeID(np), NewName: nn}))
	}
	if got := rename(a, 0, "x", b, "full"); got != syscall.EISDIR {
		t.Errorf("file over directory: %v", got)
	}
	if got := rename(b, 0, "empty", b, "y"); got != syscall.ENOTDIR {
		t.Errorf("directory over file: %v", got)
	}
	if got := rename(b, 0, "empty", b, "full"); got != syscall.ENOTEMPTY {
		t.Errorf("directory over a non-empty one: %v", got)
	}
	if got := rename(a, 0, "missing", b, "z"); got != syscall.ENOENT {
		t.Errorf("missing source: %v", got)
	}
	// Across directories, replacing y.
	if got := rename(a, 0, "x", b, "y"); got != 0 {
		t.Fatalf("rename over a file: %v", got)
	}
	if e, _ := f.lookup(b, "y"); uint64(e.Child) != x {
		t.Errorf("b/y is node %d, want x's %d", e.Child, x)
	}
	if e, _ := f.lookup(a, "x"); e.Child != 0 {
		t.Errorf("a/x still found after the rename")
	}
	if got := string(f.read(x)); got != "x" {
		t.Errorf("content after rename: %q", got)
	}
	if f.getInode(y) != nil && !f.getInode(y).dead {
		t.Error("the replaced file's node is not marked gone")
	}
	// A directory over an empty one.
	if got := rename(b, 0, "full", b, "empty"); got != 0 {
		t.Fatalf("directory over an empty one: %v", got)
	}
	if n := f.names(uint64(full.Child)); !slices.Equal(n, []string{".", "..", "inside"}) {
		t.Errorf("moved directory lists %q", n)
	}
	_ = empty
	if n := f.names(b); !slices.Equal(n, []string{".", "..", "empty", "full-file", "y"}) {
		t.Errorf("b lists %q", n)
	}
}

func TestSetattr(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	id := f.create(rootID, "x", bytes.Repeat([]byte("a"), 10000))
	set := func(op fuseops.SetInodeAttributesOp) (fuseops.InodeAttributes, syscall.Errno) {
		op.Inode = fuseops.InodeID(id)
		err := f.SetInodeAttributes(f.ctx, &op)
		return op.Attributes, errnoOf(err)
	}
	size := uint64(5000)
	if a, err := set(fuseops.SetInodeAttributesOp{Size: &size}); err != 0 || a.Size != size {
		t.Fatalf("truncate down: %+v, %v", a, err)
	}
	size = 3*crypt.BlockSize + 7
	if a, err := set(fuseops.SetInodeAttributesOp{Size: &size}); err != 0 || a.Size != size {
		t.Fatalf("truncate up: %+v, %v", a, err)
	}
	want := append(bytes.Repeat([]byte("a"), 5000), make([]byte, size-5000)...)
	if got := f.read(id); !bytes.Equal(got, want) {
		t.Error("content after truncates differs")
	}
	mode := os.FileMode(0o600)
	mtime := time.Unix(1234567890, 5)
	if a, err := set(fuseops.SetInodeAttributesOp{Mode: &mode, Mtime: &mtime}); err != 0 || a.Mode.Perm() != mode || !a.Mtime.Equal(mtime) {
		t.Errorf("chmod and mtime: %+v, %v", a, err)
	}
	if a := f.getattr(id); a.Mode.Perm() != mode || !a.Mtime.Equal(mtime) {
		t.Errorf("GETATTR after setattr: %+v", a)
	}
	dir := f.mkdir(rootID, "d")
	if err := errnoOf(f.SetInodeAttributes(f.ctx, &fuseops.SetInodeAttributesOp{Inode: fuseops.InodeID(dir), Size: &size})); err != syscall.EISDIR {
		t.Errorf("truncate of a directory: %v", err)
	}
}

func TestXattrs(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	id := f.create(rootID, "x", nil)
	set := func(name string, v []byte) syscall.Errno {
		return errnoOf(f.SetXattr(f.ctx, &fuseops.SetXattrOp{Inode: fuseops.InodeID(id), Name: name, Value: v}))
	}
	get := func(name string, size int) ([]byte, syscall.Errno) {
		op := &fuseops.GetXattrOp{Inode: fuseops.InodeID(id), Name: name, Dst: make([]byte, size)}
		err := f.GetXattr(f.ctx, op)
		if size == 0 {
			return make([]byte, op.BytesRead), errnoOf(err)
		}
		return op.Dst[:op.BytesRead], errnoOf(err)
	}
	if err := set("user.colour", []byte("blue")); err != 0 {
		t.Fatal(err)
	}
	if v, err := get("user.colour", 100); err != 0 || string(v) != "blue" {
		t.Errorf("get: %q, %v", v, err)
	}
	if v, err := get("user.colour", 0); err != 0 || len(v) != 4 {
		t.Errorf("size query: %d, %v", len(v), err)
	}
	if _, err := get("user.colour", 2); err != syscall.ERANGE {
		t.Errorf("small buffer: %v", err)
	}
	if _, err := get("user.none", 100); err != syscall.ENODATA {
		t.Errorf("absent: %v", err)
	}
	for _, name := range []string{"security.capability", "system.posix_acl_access", "trusted.x"} {
		if _, err := get(name, 100); err != syscall.EOPNOTSUPP {
			t.Errorf("get %s: %v", name, err)
		}
		if err := set(name, []byte("v")); err != syscall.EOPNOTSUPP {
			t.Errorf("set %s: %v", name, err)
		}
	}
	if err := set("user."+strings.Repeat("n", 200), nil); err != syscall.ERANGE {
		t.Errorf("over-long name: %v", err)
	}
	list := &fuseops.ListXattrOp{Inode: fuseops.InodeID(id), Dst: make([]byte, 100)}
	f.must(f.ListXattr(f.ctx, list))
	if got := string(list.Dst[:list.BytesRead]); got != "user.colour\x00" {
		t.Errorf("list: %q", got)
	}
	// Stored encrypted on the lower file, and read back offline.
	xs, err := f.tree().Xattrs("x")
	if err != nil || len(xs) != 1 || xs[0].Name != "user.colour" || string(xs[0].Value) != "blue" {
		t.Errorf("offline: %+v, %v", xs, err)
	}
	f.must(f.RemoveXattr(f.ctx, &fuseops.RemoveXattrOp{Inode: fuseops.InodeID(id), Name: "user.colour"}))
	if _, err := get("user.colour", 100); err != syscall.ENODATA {
		t.Errorf("after remove: %v", err)
	}
	sym := &fuseops.CreateSymlinkOp{Parent: rootID, Name: "l", Target: "x"}
	f.must(f.CreateSymlink(f.ctx, sym))
	if err := errnoOf(f.SetXattr(f.ctx, &fuseops.SetXattrOp{Inode: sym.Entry.Child, Name: "user.a", Value: []byte("v")})); err != syscall.EPERM {
		t.Errorf("xattr on a symlink: %v", err)
	}
}

func TestSymlinkAndHardLink(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	id := f.create(rootID, "x", []byte("data"))
	sym := &fuseops.CreateSymlinkOp{Parent: rootID, Name: "l", Target: "../some/where"}
	f.must(f.CreateSymlink(f.ctx, sym))
	rl := &fuseops.ReadSymlinkOp{Inode: sym.Entry.Child}
	f.must(f.ReadSymlink(f.ctx, rl))
	if rl.Target != "../some/where" || sym.Entry.Attributes.Size != uint64(len(rl.Target)) {
		t.Errorf("readlink %q, size %d", rl.Target, sym.Entry.Attributes.Size)
	}
	if got, err := f.tree().Readlink("l"); err != nil || got != rl.Target {
		t.Errorf("offline readlink: %q, %v", got, err)
	}
	ln := &fuseops.CreateLinkOp{Parent: rootID, Name: "y", Target: fuseops.InodeID(id)}
	f.must(f.CreateLink(f.ctx, ln))
	if uint64(ln.Entry.Child) != id || ln.Entry.Attributes.Nlink != 2 {
		t.Errorf("hard link entry %+v: want node %d with 2 links", ln.Entry, id)
	}
	if a := f.getattr(id); a.Nlink != 2 {
		t.Errorf("nlink %d after link", a.Nlink)
	}
	d := f.mkdir(rootID, "d")
	if err := errnoOf(f.CreateLink(f.ctx, &fuseops.CreateLinkOp{Parent: rootID, Name: "z", Target: fuseops.InodeID(d)})); err != syscall.EPERM {
		t.Errorf("hard link to a directory: %v", err)
	}
	if rl := (&fuseops.ReadSymlinkOp{Inode: fuseops.InodeID(id)}); errnoOf(f.ReadSymlink(f.ctx, rl)) != syscall.EINVAL {
		t.Error("readlink of a file did not fail with EINVAL")
	}
}

// TestTamperedBlock: a block changed in the lower file reads as EIO, with
// exactly one log line naming the cipher path.
func TestTamperedBlock(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	id := f.create(rootID, "x", bytes.Repeat([]byte("z"), 3*crypt.BlockSize))
	lower, err := f.tree().LowerPath("x")
	f.must(err)
	path := filepath.Join(f.lower, lower)
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	f.must(err)
	var b [1]byte // inverted, so that it changes whatever it was
	_, err = fd.ReadAt(b[:], int64(crypt.BlockOffset(1))+40)
	f.must(err)
	_, err = fd.WriteAt([]byte{^b[0]}, int64(crypt.BlockOffset(1))+40)
	fd.Close()
	f.must(err)
	op := &fuseops.OpenFileOp{Inode: fuseops.InodeID(id)}
	f.must(f.OpenFile(f.ctx, op))
	read := func(off int64) syscall.Errno {
		r := &fuseops.ReadFileOp{Inode: fuseops.InodeID(id), Handle: op.Handle, Offset: off, Dst: make([]byte, 100), Size: 100}
		return errnoOf(f.ReadFile(f.ctx, r))
	}
	if err := read(0); err != 0 {
		t.Errorf("intact block 0: %v", err)
	}
	if err := read(crypt.BlockSize + 10); err != syscall.EIO {
		t.Errorf("tampered block 1: %v, want EIO", err)
	}
	lines := strings.Count(f.log.String(), "authentication failed")
	if lines != 1 || !strings.Contains(f.log.String(), path) {
		t.Errorf("%d log lines, want 1 naming %s:\n%s", lines, path, f.log.String())
	}
}

// TestFailedUndoLogged: a write that grows a file, fails, and cannot be
// undone keeps its errno for the caller and leaves an error log line.
func TestFailedUndoLogged(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	id := f.create(rootID, "x", []byte("partial last block"))
	op := &fuseops.OpenFileOp{Inode: fuseops.InodeID(id), OpenFlags: unix.O_RDWR}
	f.must(f.OpenFile(f.ctx, op))
	h, err := f.fileHandle(op.Handle)
	f.must(err)
	lower, err := f.tree().LowerPath("x")
	f.must(err)
	ro, err := unix.Open(filepath.Join(f.lower, lower), unix.O_RDONLY, 0)
	f.must(err)
	unix.Close(h.fd)
	h.fd = ro // the growth's write and its undoing ftruncate both fail
	err = f.WriteFile(f.ctx, &fuseops.WriteFileOp{Inode: fuseops.InodeID(id), Handle: op.Handle, Offset: 3 * crypt.BlockSize, Data: []byte("x")})
	if !strings.Contains(f.log.String(), "could not be undone") {
		t.Errorf("no log line about the failed undo:\n%s", f.log.String())
	}
	if errnoOf(f.errno(0, err)) != syscall.EBADF {
		t.Errorf("errno %v, want the write's own EBADF", f.errno(0, err))
	}
}

// TestCachedAnswersMatchHandlers: the answers from the cache alone (given
// on the reader goroutine) are the handlers' answers, reference counting
// included.
func TestCachedAnswersMatchHandlers(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	id := f.create(rootID, "x", []byte("abc"))
	f.must(f.SetXattr(f.ctx, &fuseops.SetXattrOp{Inode: fuseops.InodeID(id), Name: "user.a", Value: []byte("v")}))
	if e, _ := f.lookup(rootID, "missing"); e.Child != 0 {
		t.Fatal("missing name found")
	}
	f.getattr(id) // cached from here on

	ga, gb := &fuseops.GetInodeAttributesOp{Inode: fuseops.InodeID(id)}, &fuseops.GetInodeAttributesOp{Inode: fuseops.InodeID(id)}
	if errno, ok := f.cachedGetattr(ga); !ok || errno != 0 {
		t.Fatal("GETATTR of a cached inode not answered from the cache")
	}
	f.must(f.GetInodeAttributes(f.ctx, gb))
	if ga.Attributes != gb.Attributes {
		t.Errorf("GETATTR: cache %+v, handler %+v", ga.Attributes, gb.Attributes)
	}

	for _, name := range []string{"x", "missing"} {
		before := f.refs(id)
		la, lb := &fuseops.LookUpInodeOp{Parent: rootID, Name: name}, &fuseops.LookUpInodeOp{Parent: rootID, Name: name}
		if errno, ok := f.cachedLookUp(la); !ok || errno != 0 {
			t.Fatalf("LOOKUP %s not answered from the cache", name)
		}
		f.must(f.LookUpInode(f.ctx, lb))
		la.Entry.AttributesExpiration, lb.Entry.AttributesExpiration = time.Time{}, time.Time{}
		la.Entry.EntryExpiration, lb.Entry.EntryExpiration = time.Time{}, time.Time{}
		if la.Entry != lb.Entry {
			t.Errorf("LOOKUP %s: cache %+v, handler %+v", name, la.Entry, lb.Entry)
		}
		if name == "x" && f.refs(id) != before+2 {
			t.Errorf("two positive LOOKUPs added %d references, want 2", f.refs(id)-before)
		}
	}

	for _, c := range []struct {
		name string
		size int
	}{{"user.a", 10}, {"user.a", 0}, {"user.a", 0}, {"security.capability", 10}} {
		xa := &fuseops.GetXattrOp{Inode: fuseops.InodeID(id), Name: c.name, Dst: make([]byte, c.size)}
		xb := &fuseops.GetXattrOp{Inode: fuseops.InodeID(id), Name: c.name, Dst: make([]byte, c.size)}
		errno, ok := f.cachedGetxattr(xa)
		if !ok {
			t.Fatalf("GETXATTR %s not answered from the cache", c.name)
		}
		herr := errnoOf(f.GetXattr(f.ctx, xb))
		if errno != herr || xa.BytesRead != xb.BytesRead || !bytes.Equal(xa.Dst, xb.Dst) {
			t.Errorf("GETXATTR %s (%d): cache %v %q, handler %v %q", c.name, c.size, errno, xa.Dst[:xa.BytesRead], herr, xb.Dst[:xb.BytesRead])
		}
	}
	// Not cached: the handler's business.
	if _, ok := f.cachedGetxattr(&fuseops.GetXattrOp{Inode: fuseops.InodeID(id), Name: "user.unknown"}); ok {
		t.Error("an uncached xattr answered from the cache")
	}
}
