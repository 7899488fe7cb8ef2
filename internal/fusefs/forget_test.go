package fusefs

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/cryptfs/cryptfs/meta"
)

// forget sends the kernel's FORGET for n references of id.
func (f *testFS) forgetN(id, n uint64) {
	f.t.Helper()
	f.must(f.ForgetInode(f.ctx, &fuseops.ForgetInodeOp{Inode: fuseops.InodeID(id), N: n}))
}

// TestForgetFreesAtOnceWithoutFastPath: in the tiers without a fast path
// an inode leaves the table with its last kernel reference.
func TestForgetFreesAtOnceWithoutFastPath(t *testing.T) {
	for _, tier := range []meta.Tier{meta.Off, meta.KernelCache} {
		f := newTestFS(t, tier, nil, 0)
		d := f.mkdir(rootID, "d")
		id := f.create(d, "x", []byte("data"))
		if e, err := f.lookup(d, "x"); err != nil || uint64(e.Child) != id {
			t.Fatalf("%v: lookup: %+v, %v", tier, e, err)
		}
		f.forgetN(id, 1)
		if !f.inTable(id) {
			t.Fatalf("%v: freed with a reference left", tier)
		}
		f.forgetN(id, 1)
		if f.inTable(id) {
			t.Errorf("%v: still in the table after its last FORGET", tier)
		}
		f.forgetN(d, 1) // d's own reference; x no longer pins it
		if f.inTable(d) || f.tableSize() != 1 {
			t.Errorf("%v: table holds %d inodes after every FORGET, want the root only", tier, f.tableSize())
		}
	}
}

// TestForgetCountsServedLookups: a LOOKUP the fast path answered is a
// kernel reference the daemon learns of from the served count at the next
// FORGET.
func TestForgetCountsServedLookups(t *testing.T) {
	sink := newFakeSink()
	f := newTestFS(t, meta.EBPF, sink, 100)
	id := f.create(rootID, "x", nil)
	for i := 0; i < 3; i++ {
		if _, ok := sink.serve(rootID, "x"); !ok {
			t.Fatal("the fast path cannot answer a LOOKUP of a file just created")
		}
	}
	f.forgetN(id, 1) // the CREATE's reference
	if got := f.refs(id); got != 3 {
		t.Fatalf("after FORGET(1) with 3 served lookups: %d references, want 3", got)
	}
	f.forgetN(id, 3)
	if got := f.refs(id); got != 0 {
		t.Fatalf("after every FORGET: %d references", got)
	}
}

// TestForgottenInodesRetainedThenWithdrawn: in the EBPF tier an inode the
// kernel forgot stays published (the program can answer its next LOOKUP)
// until more than Retain are waiting; the oldest is then withdrawn in the
// order of rule 4 (entry, attributes, served count, Forget) and freed.
func TestForgottenInodesRetainedThenWithdrawn(t *testing.T) {
	sink := newFakeSink()
	f := newTestFS(t, meta.EBPF, sink, 2)
	var ids []uint64
	for i := 0; i < 3; i++ {
		id := f.create(rootID, fmt.Sprint("f", i), []byte("x"))
		// The write withdrew the attributes; the kernel's GETATTR after
		// the flush publishes them again.
		f.must(f.GetInodeAttributes(f.ctx, &fuseops.GetInodeAttributesOp{Inode: fuseops.InodeID(id)}))
		ids = append(ids, id)
	}
	for _, id := range ids[:2] {
		f.forgetN(id, 1)
	}
	f.withdrawQueued()
	for _, id := range ids[:2] {
		if !f.inTable(id) {
			t.Fatalf("inode %d withdrawn with only 2 retained (bound 2)", id)
		}
	}
	if _, ok := sink.serve(rootID, "f0"); !ok {
		t.Fatal("a retained inode's LOOKUP cannot be answered by the fast path")
	}
	f.forgetN(ids[0], 1) // that served lookup's reference
	sink.take()
	f.forgetN(ids[2], 1) // a third: f0, the oldest, goes
	f.withdrawQueued()
	if f.inTable(ids[0]) {
		t.Fatal("the oldest retained inode was not withdrawn beyond the bound")
	}
	if !f.inTable(ids[1]) || !f.inTable(ids[2]) {
		t.Fatal("a retained inode within the bound was withdrawn")
	}
	var steps []string
	for _, c := range sink.take() {
		if strings.HasSuffix(c, fmt.Sprint(" ", ids[0])) || strings.Contains(c, "/f0") {
			steps = append(steps, c)
		}
	}
	want := []string{
		"DropEntry 1/f0",
		"DropAttr " + fmt.Sprint(ids[0]),
		"ServedLookups " + fmt.Sprint(ids[0]),
		"DropXattrs " + fmt.Sprint(ids[0]),
		"Forget " + fmt.Sprint(ids[0]),
	}
	if !slices.Equal(steps, want) {
		t.Errorf("withdrawal steps:\n  %s\nwant:\n  %s", strings.Join(steps, "\n  "), strings.Join(want, "\n  "))
	}
	if _, ok := sink.serve(rootID, "f0"); ok {
		t.Error("the fast path still answers a LOOKUP of a freed inode")
	}
	// A LOOKUP through the daemon finds the file again, as a new node.
	e, err := f.lookup(rootID, "f0")
	if err != nil || e.Child == 0 {
		t.Fatalf("lookup after the withdrawal: %+v, %v", e, err)
	}
	if got := string(f.read(uint64(e.Child))); got != "x" {
		t.Errorf("content after the withdrawal: %q", got)
	}
}

// TestWithdrawKeepsInodeServedMeanwhile: a LOOKUP the fast path answers
// while the daemon withdraws the inode (after it counted its references,
// before the attributes are gone) keeps the inode: the kernel holds it.
func TestWithdrawKeepsInodeServedMeanwhile(t *testing.T) {
	sink := newFakeSink()
	f := newTestFS(t, meta.EBPF, sink, 1)
	a := f.create(rootID, "a", nil)
	b := f.create(rootID, "b", nil)
	f.forgetN(a, 1)
	served := false
	sink.beforeRead = func(id uint64) {
		// The read in withdraw step c: the entry is gone by then, so the
		// LOOKUP is one that found it just before (a served lookup in
		// flight while the daemon withdrew).
		if id == a && !served && !sink.attrsHas(a) {
			served = true
			sink.mu.Lock()
			sink.served[a]++
			sink.mu.Unlock()
		}
	}
	f.forgetN(b, 1) // a is over the bound
	f.withdrawQueued()
	if !served {
		t.Fatal("the test did not get to serve during the withdrawal")
	}
	if !f.inTable(a) || f.refs(a) != 1 {
		t.Fatalf("inode served during its withdrawal: in table %v, %d references; want kept with 1", f.inTable(a), f.refs(a))
	}
	// It answers like any other node, and goes with its last FORGET
	// once it has no name (nothing can look it up again).
	op := &fuseops.GetInodeAttributesOp{Inode: fuseops.InodeID(a)}
	f.must(f.GetInodeAttributes(f.ctx, op))
	sink.beforeRead = nil
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: "a"}))
	f.forgetN(a, 1)
	f.withdrawQueued()
	if f.inTable(a) {
		t.Error("not freed after the kernel forgot it")
	}
}

func (s *fakeSink) attrsHas(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attrs[id]
}

// TestTransientServedCountRechecked: a served count read while a LOOKUP
// counted itself and is about to take it back (it found no attributes)
// does not keep the inode for good: it is read again and the inode freed.
func TestTransientServedCountRechecked(t *testing.T) {
	sink := newFakeSink()
	f := newTestFS(t, meta.EBPF, sink, 100)
	id := f.create(rootID, "x", nil)
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: "x"}))
	sink.mu.Lock()
	sink.served[id] = 1 // counted, about to be taken back
	sink.mu.Unlock()
	f.forgetN(id, 1)
	if f.refs(id) != 1 {
		t.Fatalf("%d references after FORGET with a transient count, want 1", f.refs(id))
	}
	sink.mu.Lock()
	sink.served[id] = 0 // taken back
	sink.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for f.inTable(id) && time.Now().Before(deadline) {
		f.withdrawQueued()
		time.Sleep(5 * time.Millisecond)
	}
	if f.inTable(id) {
		t.Error("an inode held only by a transient count stays in the table")
	}
}

// TestUnlinkedInodeWithdrawnAtOnce: an inode without a name left cannot
// be looked up again; it is withdrawn with its last FORGET, retained or
// not.
func TestUnlinkedInodeWithdrawnAtOnce(t *testing.T) {
	sink := newFakeSink()
	f := newTestFS(t, meta.EBPF, sink, 100)
	id := f.create(rootID, "x", nil)
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: "x"}))
	f.forgetN(id, 1)
	f.withdrawQueued()
	if f.inTable(id) {
		t.Error("an unlinked inode the kernel forgot is still in the table")
	}
}

// TestTableBounded: creating and forgetting many files in the EBPF tier
// leaves at most Retain inodes (plus the root and what the kernel holds).
func TestTableBounded(t *testing.T) {
	const files, retain = 300, 20
	sink := newFakeSink()
	f := newTestFS(t, meta.EBPF, sink, retain)
	d := f.mkdir(rootID, "d")
	for i := 0; i < files; i++ {
		id := f.create(d, fmt.Sprint("f", i), nil)
		f.forgetN(id, 1)
		f.withdrawQueued()
		if n := f.tableSize(); n > 2+retain {
			t.Fatalf("after %d files: %d inodes in the table, want at most %d", i+1, n, 2+retain)
		}
	}
	f.forgetN(d, 1)
	f.withdrawQueued()
	if n := f.tableSize(); n != 2+retain {
		t.Errorf("%d inodes in the table at the end, want the root, d (its retained children pin it) and %d", n, retain)
	}
}
