package fusefs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/rs/zerolog"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/meta"
)

// These helpers drive the file system the way jacobsa/fuse does, without a
// mount: handler methods called with fuseops structs on a temporary lower
// directory. What the kernel would do between requests (counting
// references, sending FORGET) the tests do explicitly.

func testSuite(t testing.TB) *crypt.Suite {
	t.Helper()
	key := bytes.Repeat([]byte{7}, crypt.KeyLen)
	s, err := crypt.New(key, crypt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Wipe)
	return s
}

// testFS is a file system over a fresh lower directory.
type testFS struct {
	*FS
	t     testing.TB
	lower string
	log   *bytes.Buffer
	ctx   context.Context
}

// newTestFS returns a file system in tier over a fresh lower directory.
// In the EBPF tier sink receives the facts (a fakeSink, or the real maps);
// the background withdrawer is stopped, so tests run withdrawals
// themselves (fs.withdrawQueued) and see each step.
func newTestFS(t testing.TB, tier meta.Tier, sink meta.Sink, retain int) *testFS {
	t.Helper()
	lower := t.TempDir()
	f, err := os.Open(lower)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ciphertree.WriteDirIV(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	fsys, err := New(Config{Lower: lower, Suite: testSuite(t), Tier: tier, FastPath: sink, Log: zerolog.New(&log), Retain: retain}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fsys.stopWithdrawer != nil {
		close(fsys.stopWithdrawer)
		<-fsys.withdrawerDone
		fsys.stopWithdrawer = nil
	}
	t.Cleanup(fsys.Close)
	return &testFS{FS: fsys, t: t, lower: lower, log: &log, ctx: context.Background()}
}

// must fails the test on err.
func (f *testFS) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// create creates and releases a regular file holding data: the kernel
// then holds one reference to it.
func (f *testFS) create(parent uint64, name string, data []byte) uint64 {
	f.t.Helper()
	op := &fuseops.CreateFileOp{Parent: fuseops.InodeID(parent), Name: name, Mode: 0o644}
	f.must(f.CreateFile(f.ctx, op))
	if len(data) > 0 {
		f.must(f.WriteFile(f.ctx, &fuseops.WriteFileOp{Inode: op.Entry.Child, Handle: op.Handle, Data: data}))
	}
	f.must(f.ReleaseFileHandle(f.ctx, &fuseops.ReleaseFileHandleOp{Handle: op.Handle}))
	return uint64(op.Entry.Child)
}

// mkdir creates a directory: the kernel then holds one reference to it.
func (f *testFS) mkdir(parent uint64, name string) uint64 {
	f.t.Helper()
	op := &fuseops.MkDirOp{Parent: fuseops.InodeID(parent), Name: name, Mode: os.ModeDir | 0o755}
	f.must(f.MkDir(f.ctx, op))
	return uint64(op.Entry.Child)
}

// lookup looks name up in parent; a positive answer is a kernel
// reference.
func (f *testFS) lookup(parent uint64, name string) (fuseops.ChildInodeEntry, error) {
	op := &fuseops.LookUpInodeOp{Parent: fuseops.InodeID(parent), Name: name}
	err := f.LookUpInode(f.ctx, op)
	return op.Entry, err
}

// read reads the whole file id through an open handle.
func (f *testFS) read(id uint64) []byte {
	f.t.Helper()
	op := &fuseops.OpenFileOp{Inode: fuseops.InodeID(id)}
	f.must(f.OpenFile(f.ctx, op))
	defer func() { f.must(f.ReleaseFileHandle(f.ctx, &fuseops.ReleaseFileHandleOp{Handle: op.Handle})) }()
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		r := &fuseops.ReadFileOp{Inode: fuseops.InodeID(id), Handle: op.Handle, Offset: int64(len(out)), Dst: buf, Size: int64(len(buf))}
		f.must(f.ReadFile(f.ctx, r))
		if r.BytesRead == 0 {
			return out
		}
		out = append(out, buf[:r.BytesRead]...)
	}
}

// inTable reports whether node id is in the inode table.
func (f *testFS) inTable(id uint64) bool { return f.getInode(id) != nil }

// tableSize is the number of inodes in the table.
func (f *testFS) tableSize() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inodes)
}

// refs returns the kernel references the daemon counts for id.
func (f *testFS) refs(id uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.inodes[id]; n != nil {
		return n.refs
	}
	return 0
}

// fakeSink is a fast path that records what it is told, keeps the facts
// like the maps do, and serves a count of lookups the test sets.
type fakeSink struct {
	mu      sync.Mutex
	calls   []string
	attrs   map[uint64]bool
	entries map[string]uint64 // "parent/name" -> child
	served  map[uint64]uint64
	// beforeRead, if set, runs before each ServedLookups read (the test
	// simulates a LOOKUP served at that moment).
	beforeRead func(id uint64)
}

func newFakeSink() *fakeSink {
	return &fakeSink{attrs: map[uint64]bool{}, entries: map[string]uint64{}, served: map[uint64]uint64{}}
}

func (s *fakeSink) log(format string, a ...any) {
	s.mu.Lock()
	s.calls = append(s.calls, fmt.Sprintf(format, a...))
	s.mu.Unlock()
}

// take returns the calls recorded since the last take.
func (s *fakeSink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func (s *fakeSink) PutAttr(id uint64, a *fuseops.InodeAttributes) {
	s.log("PutAttr %d", id)
	s.mu.Lock()
	s.attrs[id] = true
	s.mu.Unlock()
}

func (s *fakeSink) DropAttr(id uint64) {
	s.log("DropAttr %d", id)
	s.mu.Lock()
	delete(s.attrs, id)
	s.mu.Unlock()
}

func (s *fakeSink) PutEntry(parent uint64, name string, child, gen uint64) {
	s.log("PutEntry %d/%s %d", parent, name, child)
	s.mu.Lock()
	s.entries[fmt.Sprintf("%d/%s", parent, name)] = child
	s.mu.Unlock()
}

func (s *fakeSink) DropEntry(parent uint64, name string) {
	s.log("DropEntry %d/%s", parent, name)
	s.mu.Lock()
	delete(s.entries, fmt.Sprintf("%d/%s", parent, name))
	s.mu.Unlock()
}

func (s *fakeSink) PutXattr(id uint64, name string, value []byte, present bool) {
	s.log("PutXattr %d %s %v", id, name, present)
}

func (s *fakeSink) DropXattr(id uint64, name string) { s.log("DropXattr %d %s", id, name) }
func (s *fakeSink) DropXattrs(id uint64)             { s.log("DropXattrs %d", id) }

func (s *fakeSink) Forget(id uint64) {
	s.log("Forget %d", id)
	s.mu.Lock()
	delete(s.attrs, id)
	delete(s.served, id)
	s.mu.Unlock()
}

func (s *fakeSink) ServedLookups(id uint64) (uint64, error) {
	if s.beforeRead != nil {
		s.beforeRead(id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf("ServedLookups %d", id))
	return s.served[id], nil
}

// serve simulates the program answering a LOOKUP of child: allowed only
// while the entry and the attributes are there, like the real program.
func (s *fakeSink) serve(parent uint64, name string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	child, ok := s.entries[fmt.Sprintf("%d/%s", parent, name)]
	if !ok || child == 0 || !s.attrs[child] {
		return 0, false
	}
	s.served[child]++
	return child, true
}

// errnoOf returns the errno of a handler's error (0 for nil).
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}
