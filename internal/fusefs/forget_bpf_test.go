package fusefs

import (
	"testing"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/rs/zerolog"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/bpf/fastpath/fastpathtest"
	"github.com/cryptfs/cryptfs/meta"
)

// servingSink is the real sink over the maps that, once, lets the program
// answer a LOOKUP of a name just before the daemon withdraws the entry:
// a LOOKUP served while the daemon forgets the inode.
type servingSink struct {
	*fastpath.Sink
	fp     *fastpath.FastPath
	t      *testing.T
	name   string
	served bool
}

func (s *servingSink) DropEntry(parent uint64, name string) {
	if name == s.name && !s.served {
		s.served = true
		c, err := fastpath.LookupCtx(parent, name)
		if err != nil {
			s.t.Fatal(err)
		}
		if ret, _, err := s.fp.Run(c); err != nil || ret != fastpath.Served {
			s.t.Errorf("LOOKUP %q just before its withdrawal: %d, %v; want served", name, ret, err)
		}
	}
	s.Sink.DropEntry(parent, name)
}

// TestForgetWithTheProgram runs rule 4 against the real maps and the
// real program (BPF_PROG_TEST_RUN, as on a kernel without the hook): the
// program's served lookups become kernel references, a forgotten inode
// stays answerable within the bound, one served during its withdrawal is
// kept, and a withdrawn inode leaves nothing the program could answer.
func TestForgetWithTheProgram(t *testing.T) {
	fp := fastpathtest.Load(t)
	if err := fp.SetUserXattrsOnly(true); err != nil {
		t.Fatal(err)
	}
	sink := &servingSink{Sink: fastpath.NewSink(fp, zerolog.Nop()), fp: fp, t: t, name: "a"}
	f := newTestFS(t, meta.EBPF, sink, 1)
	run := func(c *fastpath.Ctx) (int32, *fastpath.Ctx) {
		t.Helper()
		ret, out, err := fp.Run(c)
		if err != nil {
			t.Fatal(err)
		}
		return ret, out
	}
	lookup := func(name string) (int32, uint64) {
		t.Helper()
		c, err := fastpath.LookupCtx(rootID, name)
		if err != nil {
			t.Fatal(err)
		}
		ret, out := run(c)
		return ret, out.EntryOut().Nodeid
	}
	getattr := func(id uint64) int32 {
		t.Helper()
		ret, _ := run(fastpath.GetattrCtx(id))
		return ret
	}

	a := f.create(rootID, "a", nil)
	if ret, child := lookup("a"); ret != fastpath.Served || child != a {
		t.Fatalf("LOOKUP of a new file: %d, node %d; want served, %d", ret, child, a)
	}
	f.forgetN(a, 1) // the CREATE's reference; the served one remains
	if !f.inTable(a) || f.refs(a) != 1 {
		t.Fatalf("after FORGET(1) with one served lookup: in table %v, %d references", f.inTable(a), f.refs(a))
	}
	f.forgetN(a, 1)
	if ret, _ := lookup("a"); ret != fastpath.Served {
		t.Fatal("the program no longer answers a LOOKUP of a retained inode")
	}
	f.forgetN(a, 1)

	// b pushes a over the bound: a is withdrawn, but a LOOKUP is served
	// just before its entry goes, so it stays with that reference.
	b := f.create(rootID, "b", nil)
	f.forgetN(b, 1)
	f.withdrawQueued()
	if !sink.served {
		t.Fatal("a was not withdrawn beyond the bound")
	}
	if !f.inTable(a) || f.refs(a) != 1 {
		t.Fatalf("a served during its withdrawal: in table %v, %d references; want kept with 1", f.inTable(a), f.refs(a))
	}
	if ret, _ := lookup("a"); ret != fastpath.Upcall {
		t.Error("the program answers a LOOKUP whose entry was withdrawn")
	}
	if getattr(a) != fastpath.Upcall {
		t.Error("the program answers GETATTR of a withdrawn inode")
	}
	// The kernel's GETATTR reaches the daemon, which publishes again.
	f.must(f.GetInodeAttributes(f.ctx, &fuseops.GetInodeAttributesOp{Inode: fuseops.InodeID(a)}))
	if getattr(a) != fastpath.Served {
		t.Error("the attributes were not published again")
	}

	// a forgotten again: b is now the oldest and goes for good.
	f.forgetN(a, 1)
	f.withdrawQueued()
	if f.inTable(b) {
		t.Fatal("b not freed")
	}
	if ret, _ := lookup("b"); ret != fastpath.Upcall {
		t.Error("the program answers a LOOKUP of a freed inode")
	}
	if getattr(b) != fastpath.Upcall {
		t.Error("the program answers GETATTR of a freed inode")
	}
	if n, err := fp.ServedLookups(b); err != nil || n != 0 {
		t.Errorf("served count of a freed inode: %d, %v", n, err)
	}
	// A daemon LOOKUP brings b back as a node the program can serve.
	e, err := f.lookup(rootID, "b")
	if err != nil || e.Child == 0 {
		t.Fatalf("lookup of b: %+v, %v", e, err)
	}
	if ret, child := lookup("b"); ret != fastpath.Served || child != uint64(e.Child) {
		t.Errorf("LOOKUP of b after the daemon's: %d, node %d", ret, child)
	}
}
