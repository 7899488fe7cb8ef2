package fastpath_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/bpf/fastpath/fastpathtest"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// garbage fills the output part of c with 0xff, so a test notices any
// output field the program fails to write.
func garbage(c *fastpath.Ctx) *fastpath.Ctx {
	x := c.XattrOut()
	x.Size, x.Padding = 0xffffffff, 0xffffffff
	for i := range x.Value {
		x.Value[i] = 0xff
	}
	return c
}

func mustLookupCtx(t *testing.T, parent uint64, name string) *fastpath.Ctx {
	t.Helper()
	c, err := fastpath.LookupCtx(parent, name)
	if err != nil {
		t.Fatalf("fastpath.LookupCtx(%d, %q): %v", parent, name, err)
	}
	return garbage(c)
}

func mustGetxattrCtx(t *testing.T, nodeid uint64, name string, size uint32) *fastpath.Ctx {
	t.Helper()
	c, err := fastpath.GetxattrCtx(nodeid, name, size)
	if err != nil {
		t.Fatalf("fastpath.GetxattrCtx(%d, %q, %d): %v", nodeid, name, size, err)
	}
	return garbage(c)
}

func run(t *testing.T, f *fastpath.FastPath, in *fastpath.Ctx) (int32, *fastpath.Ctx) {
	t.Helper()
	ret, out, err := f.Run(in)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return ret, out
}

// testAttr returns distinct attributes for nodeid, every field set.
func testAttr(nodeid uint64) fastpath.Attr {
	return fastpath.Attr{
		Ino: nodeid, Size: 1000 + nodeid, Blocks: 3,
		Atime: 1700000001, Mtime: 1700000002, Ctime: 1700000003,
		Atimensec: 11, Mtimensec: 22, Ctimensec: 33,
		Mode: unix.S_IFREG | 0o640, Nlink: 2, Uid: 1000, Gid: 100,
		Rdev: 0, Blksize: 4096, Flags: 0,
	}
}

func TestLoadIsSleepableSyscallProgram(t *testing.T) {
	f := fastpathtest.Load(t)
	info, err := f.Program().Info()
	if err != nil {
		t.Fatalf("Program().Info: %v", err)
	}
	if info.Type != ebpf.Syscall {
		t.Errorf("program type = %v, want %v", info.Type, ebpf.Syscall)
	}
	if f.Program().FD() < 0 {
		t.Errorf("program has no fd")
	}
}

func TestLookup(t *testing.T) {
	f := fastpathtest.Load(t)
	const parent = 1
	long := strings.Repeat("n", fastpath.NameMax)

	// Published facts.
	for _, child := range []uint64{10, 11} {
		if err := f.PutAttr(child, testAttr(child), 2250*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	puts := []struct {
		parent uint64
		name   string
		child  uint64
		gen    uint64
		valid  time.Duration
	}{
		{parent, "a", 10, 7, 1500 * time.Millisecond},
		{parent, long, 11, 8, 3 * time.Second},
		{parent, "gone", 0, 0, 500 * time.Millisecond}, // negative
		{parent, "noattr", 12, 1, time.Second},         // child without attributes
		{parent, "ab", 10, 7, time.Second},             // "a" must not match "ab"
		{2, "other", 11, 8, time.Second},               // other parent
		{parent, "neg-novalid", 0, 0, 0},               // negative, no caching
		{parent, "expired", 10, 7, -time.Second},       // negative duration = 0
	}
	for _, p := range puts {
		if err := f.PutEntry(p.parent, p.name, p.child, p.gen, p.valid); err != nil {
			t.Fatalf("PutEntry(%d, %q): %v", p.parent, p.name, err)
		}
	}

	attr10, attr11 := testAttr(10), testAttr(11)
	tests := []struct {
		desc       string
		in         *fastpath.Ctx
		wantRet    int32
		want       fastpath.EntryOut // checked when wantRet == fastpath.Served
		wantServed map[uint64]uint64
	}{
		{
			desc: "positive, name of 1 byte", in: mustLookupCtx(t, parent, "a"), wantRet: fastpath.Served,
			want: fastpath.EntryOut{Nodeid: 10, Generation: 7, EntryValid: 1, EntryValidNsec: 500000000,
				AttrValid: 2, AttrValidNsec: 250000000, Attr: attr10},
			wantServed: map[uint64]uint64{10: 1},
		},
		{
			desc: "positive, name of 255 bytes", in: mustLookupCtx(t, parent, long), wantRet: fastpath.Served,
			want: fastpath.EntryOut{Nodeid: 11, Generation: 8, EntryValid: 3, EntryValidNsec: 0,
				AttrValid: 2, AttrValidNsec: 250000000, Attr: attr11},
			wantServed: map[uint64]uint64{11: 1},
		},
		{
			desc: "negative dentry", in: mustLookupCtx(t, parent, "gone"), wantRet: fastpath.Served,
			want: fastpath.EntryOut{Nodeid: 0, EntryValid: 0, EntryValidNsec: 500000000},
		},
		{
			desc: "negative dentry without validity", in: mustLookupCtx(t, parent, "neg-novalid"), wantRet: fastpath.Served,
			want: fastpath.EntryOut{},
		},
		{
			desc: "positive, negative duration gives zero validity", in: mustLookupCtx(t, parent, "expired"), wantRet: fastpath.Served,
			want:       fastpath.EntryOut{Nodeid: 10, Generation: 7, AttrValid: 2, AttrValidNsec: 250000000, Attr: attr10},
			wantServed: map[uint64]uint64{10: 1},
		},
		{desc: "dentry without attributes", in: mustLookupCtx(t, parent, "noattr"), wantRet: fastpath.Upcall},
		{desc: "no dentry", in: mustLookupCtx(t, parent, "missing"), wantRet: fastpath.Upcall},
		{desc: "longer than a dentry name", in: mustLookupCtx(t, parent, "abc"), wantRet: fastpath.Upcall},
		{desc: "same name, other parent", in: mustLookupCtx(t, 3, "a"), wantRet: fastpath.Upcall},
		{
			desc: "name bytes after name_len", wantRet: fastpath.Upcall,
			in: func() *fastpath.Ctx {
				c := mustLookupCtx(t, parent, "ab")
				c.NameLen = 1 // "a" followed by 'b' instead of NUL padding
				return c
			}(),
		},
		{
			desc: "name_len 0", wantRet: fastpath.Upcall,
			in: func() *fastpath.Ctx {
				c := mustLookupCtx(t, parent, "a")
				c.NameLen = 0
				return c
			}(),
		},
		{
			desc: "name_len 256", wantRet: fastpath.Upcall,
			in: func() *fastpath.Ctx {
				c := mustLookupCtx(t, parent, long)
				c.NameLen = 256
				return c
			}(),
		},
		{
			desc: "name_len huge", wantRet: fastpath.Upcall,
			in: func() *fastpath.Ctx {
				c := mustLookupCtx(t, parent, "a")
				c.NameLen = 1 << 31
				return c
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			before := map[uint64]uint64{}
			for _, n := range []uint64{10, 11, 12} {
				before[n] = servedLookups(t, f, n)
			}
			ret, out := run(t, f, tt.in)
			if ret != tt.wantRet {
				t.Fatalf("ret = %d, want %d", ret, tt.wantRet)
			}
			if ret == fastpath.Served {
				if got := *out.EntryOut(); got != tt.want {
					t.Errorf("entry out:\n got %+v\nwant %+v", got, tt.want)
				}
			} else if *out.XattrOut() != *tt.in.XattrOut() {
				t.Errorf("program wrote the output of a request it did not serve")
			}
			if out.Opcode != tt.in.Opcode || out.NameLen != tt.in.NameLen || out.Nodeid != tt.in.Nodeid || out.Name != tt.in.Name {
				t.Errorf("program changed the input part of the context")
			}
			for _, n := range []uint64{10, 11, 12} {
				if got, want := servedLookups(t, f, n)-before[n], tt.wantServed[n]; got != want {
					t.Errorf("served lookups of %d grew by %d, want %d", n, got, want)
				}
			}
		})
	}
}

func servedLookups(t *testing.T, f *fastpath.FastPath, nodeid uint64) uint64 {
	t.Helper()
	n, err := f.ServedLookups(nodeid)
	if err != nil {
		t.Fatalf("ServedLookups(%d): %v", nodeid, err)
	}
	return n
}

func TestServedLookupsCountOnlyServedPositiveLookups(t *testing.T) {
	f := fastpathtest.Load(t)
	const parent, child = 1, 20
	if err := f.PutAttr(child, testAttr(child), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.PutEntry(parent, "f", child, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.PutEntry(parent, "neg", 0, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := servedLookups(t, f, child); got != 0 {
		t.Fatalf("fresh counter = %d, want 0", got)
	}
	steps := []struct {
		desc string
		in   *fastpath.Ctx
		want uint64 // counter of child after the step
	}{
		{"positive lookup", mustLookupCtx(t, parent, "f"), 1},
		{"positive lookup again", mustLookupCtx(t, parent, "f"), 2},
		{"negative lookup", mustLookupCtx(t, parent, "neg"), 2},
		{"missed lookup", mustLookupCtx(t, parent, "nothing"), 2},
		{"getattr", fastpath.GetattrCtx(child), 2},
		{"positive lookup a third time", mustLookupCtx(t, parent, "f"), 3},
	}
	for _, s := range steps {
		run(t, f, s.in)
		if got := servedLookups(t, f, child); got != s.want {
			t.Fatalf("after %s: served lookups = %d, want %d", s.desc, got, s.want)
		}
	}
	// Attributes withdrawn: the lookup goes upcall and the count stays.
	if err := f.DropAttr(child); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, f, mustLookupCtx(t, parent, "f")); ret != fastpath.Upcall {
		t.Fatalf("lookup after DropAttr: ret = %d, want fastpath.Upcall", ret)
	}
	if got := servedLookups(t, f, child); got != 3 {
		t.Fatalf("after an upcall: served lookups = %d, want 3", got)
	}
	// Forget drops the counter; a new one starts at zero.
	if err := f.Forget(child); err != nil {
		t.Fatal(err)
	}
	if got := servedLookups(t, f, child); got != 0 {
		t.Fatalf("after Forget: served lookups = %d, want 0", got)
	}
	if err := f.PutAttr(child, testAttr(child), time.Second); err != nil {
		t.Fatal(err)
	}
	run(t, f, mustLookupCtx(t, parent, "f"))
	if got := servedLookups(t, f, child); got != 1 {
		t.Fatalf("after re-publishing: served lookups = %d, want 1", got)
	}
}

func TestGetattr(t *testing.T) {
	f := fastpathtest.Load(t)
	a := testAttr(30)
	a.Mode, a.Rdev = unix.S_IFCHR|0o600, 0x0801
	if err := f.PutAttr(30, a, 1234567891*time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if err := f.PutAttr(31, testAttr(31), 0); err != nil {
		t.Fatal(err)
	}
	withFH := fastpath.GetattrCtx(30)
	withFH.GetattrFlags, withFH.Fh = 1, 99 // FUSE_GETATTR_FH: same attributes

	tests := []struct {
		desc    string
		in      *fastpath.Ctx
		wantRet int32
		want    fastpath.AttrOut
	}{
		{"hit", fastpath.GetattrCtx(30), fastpath.Served, fastpath.AttrOut{AttrValid: 1, AttrValidNsec: 234567891, Attr: a}},
		{"hit with file handle", withFH, fastpath.Served, fastpath.AttrOut{AttrValid: 1, AttrValidNsec: 234567891, Attr: a}},
		{"hit without validity", fastpath.GetattrCtx(31), fastpath.Served, fastpath.AttrOut{Attr: testAttr(31)}},
		{"miss", fastpath.GetattrCtx(32), fastpath.Upcall, fastpath.AttrOut{}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			ret, out := run(t, f, garbage(tt.in))
			if ret != tt.wantRet {
				t.Fatalf("ret = %d, want %d", ret, tt.wantRet)
			}
			if ret == fastpath.Served {
				if got := *out.AttrOut(); got != tt.want {
					t.Errorf("attr out:\n got %+v\nwant %+v", got, tt.want)
				}
			}
		})
	}

	if err := f.DropAttr(30); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, f, fastpath.GetattrCtx(30)); ret != fastpath.Upcall {
		t.Errorf("getattr after DropAttr: ret = %d, want fastpath.Upcall", ret)
	}
	if err := f.DropAttr(30); err != nil {
		t.Errorf("deleting absent attributes: %v", err)
	}
}

func TestGetxattr(t *testing.T) {
	f := fastpathtest.Load(t)
	const node = 40
	longName := "user." + strings.Repeat("x", fastpath.NameMax-len("user."))
	max := bytes.Repeat([]byte{0x5a}, fastpath.XattrMax)
	over := bytes.Repeat([]byte{0xa5}, fastpath.XattrMax+44)
	puts := []struct {
		name  string
		value []byte
	}{
		{"user.v", []byte("hello")},
		{"security.capability", nil},
		{"user.empty", []byte{}},
		{"user.max", max},
		{"user.over", over},
		{longName, []byte("long")},
		{"u", []byte("1")},
	}
	for _, p := range puts {
		if err := f.PutXattr(node, p.name, p.value); err != nil {
			t.Fatalf("PutXattr(%q): %v", p.name, err)
		}
	}
	padded := func(b []byte) (v [fastpath.XattrMax]uint8) {
		copy(v[:], b)
		return v
	}
	tests := []struct {
		desc     string
		node     uint64
		name     string
		size     uint32
		wantRet  int32
		wantSize uint32
		wantVal  []byte // nil: value not checked (size query)
	}{
		{"value", node, "user.v", 100, fastpath.Served, 5, []byte("hello")},
		{"value, exact buffer", node, "user.v", 5, fastpath.Served, 5, []byte("hello")},
		{"size query", node, "user.v", 0, fastpath.Served, 5, nil},
		{"buffer too small", node, "user.v", 4, -int32(unix.ERANGE), 0, nil},
		{"negative", node, "security.capability", 0, -int32(unix.ENODATA), 0, nil},
		{"negative with buffer", node, "security.capability", 256, -int32(unix.ENODATA), 0, nil},
		{"empty value, size query", node, "user.empty", 0, fastpath.Served, 0, nil},
		{"empty value", node, "user.empty", 10, fastpath.Served, 0, []byte{}},
		{"value of fastpath.XattrMax bytes", node, "user.max", 4096, fastpath.Served, fastpath.XattrMax, max},
		{"oversize, size query", node, "user.over", 0, fastpath.Served, uint32(len(over)), nil},
		{"oversize, buffer too small", node, "user.over", fastpath.XattrMax, -int32(unix.ERANGE), 0, nil},
		{"oversize value goes upcall", node, "user.over", 65536, fastpath.Upcall, 0, nil},
		{"name of 255 bytes", node, longName, 10, fastpath.Served, 4, []byte("long")},
		{"name of 1 byte", node, "u", 10, fastpath.Served, 1, []byte("1")},
		{"missing name", node, "user.none", 10, fastpath.Upcall, 0, nil},
		{"other inode", node + 1, "user.v", 10, fastpath.Upcall, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			in := mustGetxattrCtx(t, tt.node, tt.name, tt.size)
			ret, out := run(t, f, in)
			if ret != tt.wantRet {
				t.Fatalf("ret = %d, want %d", ret, tt.wantRet)
			}
			x := out.XattrOut()
			if ret != fastpath.Served {
				if *x != *in.XattrOut() {
					t.Errorf("program wrote the output of a request it did not serve")
				}
				return
			}
			if x.Size != tt.wantSize || x.Padding != 0 {
				t.Errorf("size, padding = %d, %d; want %d, 0", x.Size, x.Padding, tt.wantSize)
			}
			if tt.wantVal != nil && x.Value != padded(tt.wantVal) {
				t.Errorf("value = %q, want %q zero-padded", x.Value[:], tt.wantVal)
			}
		})
	}
}

func TestDeleteThenMiss(t *testing.T) {
	f := fastpathtest.Load(t)
	const parent, child, other = 1, 50, 51
	for _, n := range []uint64{child, other} {
		if err := f.PutAttr(n, testAttr(n), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.PutEntry(parent, "d", child, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	names := []string{"user.a", "user.b", "security.selinux"}
	for _, n := range names {
		if err := f.PutXattr(child, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.PutXattr(other, "user.a", []byte("keep")); err != nil {
		t.Fatal(err)
	}

	lookup := func() *fastpath.Ctx { return mustLookupCtx(t, parent, "d") }
	xattr := func(node uint64, name string) func() *fastpath.Ctx {
		return func() *fastpath.Ctx { return mustGetxattrCtx(t, node, name, 100) }
	}
	steps := []struct {
		desc   string
		do     func() error
		checks map[string]struct {
			in   func() *fastpath.Ctx
			want int32
		}
	}{
		{
			desc: "all published",
			do:   func() error { return nil },
			checks: map[string]struct {
				in   func() *fastpath.Ctx
				want int32
			}{
				"lookup": {lookup, fastpath.Served}, "getattr": {func() *fastpath.Ctx { return fastpath.GetattrCtx(child) }, fastpath.Served},
				"user.a": {xattr(child, "user.a"), fastpath.Served}, "user.b": {xattr(child, "user.b"), fastpath.Served},
				"other user.a": {xattr(other, "user.a"), fastpath.Served},
			},
		},
		{
			desc: "DropEntry",
			do:   func() error { return f.DropEntry(parent, "d") },
			checks: map[string]struct {
				in   func() *fastpath.Ctx
				want int32
			}{
				"lookup": {lookup, fastpath.Upcall}, "getattr": {func() *fastpath.Ctx { return fastpath.GetattrCtx(child) }, fastpath.Served},
			},
		},
		{
			desc: "DropXattr",
			do:   func() error { return f.DropXattr(child, "user.a") },
			checks: map[string]struct {
				in   func() *fastpath.Ctx
				want int32
			}{
				"user.a": {xattr(child, "user.a"), fastpath.Upcall}, "user.b": {xattr(child, "user.b"), fastpath.Served},
				"other user.a": {xattr(other, "user.a"), fastpath.Served},
			},
		},
		{
			desc: "DropXattrs",
			do:   func() error { return f.DropXattrs(child) },
			checks: map[string]struct {
				in   func() *fastpath.Ctx
				want int32
			}{
				"user.b": {xattr(child, "user.b"), fastpath.Upcall}, "security.selinux": {xattr(child, "security.selinux"), fastpath.Upcall},
				"other user.a": {xattr(other, "user.a"), fastpath.Served},
			},
		},
		{
			desc: "Forget",
			do:   func() error { return f.Forget(other) },
			checks: map[string]struct {
				in   func() *fastpath.Ctx
				want int32
			}{
				"getattr other": {func() *fastpath.Ctx { return fastpath.GetattrCtx(other) }, fastpath.Upcall},
				"other user.a":  {xattr(other, "user.a"), fastpath.Upcall},
				"getattr":       {func() *fastpath.Ctx { return fastpath.GetattrCtx(child) }, fastpath.Served},
			},
		},
		{
			desc: "deleting absent keys",
			do: func() error {
				return errors.Join(f.DropEntry(parent, "d"), f.DropXattr(child, "user.a"),
					f.DropXattrs(child), f.DropAttr(999), f.Forget(other), f.Forget(12345))
			},
		},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.desc, err)
		}
		for name, c := range s.checks {
			if ret, _ := run(t, f, c.in()); ret != c.want {
				t.Errorf("after %s: %s: ret = %d, want %d", s.desc, name, ret, c.want)
			}
		}
	}
}

func TestOtherOpcodesGoUpcall(t *testing.T) {
	f := fastpathtest.Load(t)
	if err := f.PutAttr(60, testAttr(60), time.Second); err != nil {
		t.Fatal(err)
	}
	for _, op := range []fuseop.Opcode{fuseop.Open, fuseop.Setattr, fuseop.Readdirplus, fuseop.Listxattr, fuseop.Statx, 0, 63, 64, fuseop.CuseInit} {
		in := garbage(&fastpath.Ctx{Opcode: uint32(op), Nodeid: 60})
		ret, out := run(t, f, in)
		if ret != fastpath.Upcall {
			t.Errorf("opcode %v: ret = %d, want fastpath.Upcall", op, ret)
		}
		if *out != *in {
			t.Errorf("opcode %v: program changed the context", op)
		}
	}
}

func TestStats(t *testing.T) {
	f := fastpathtest.Load(t)
	if err := f.PutAttr(70, testAttr(70), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.PutEntry(1, "p", 70, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.PutEntry(1, "n", 0, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.PutXattr(70, "security.capability", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.PutXattr(70, "user.v", []byte("v")); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 0 {
		t.Fatalf("fresh fastpath.Stats() = %v, want empty", st)
	}
	ins := []*fastpath.Ctx{
		mustLookupCtx(t, 1, "p"), mustLookupCtx(t, 1, "p"), mustLookupCtx(t, 1, "n"), mustLookupCtx(t, 1, "x"),
		fastpath.GetattrCtx(70), fastpath.GetattrCtx(71), fastpath.GetattrCtx(72),
		mustGetxattrCtx(t, 70, "security.capability", 0), mustGetxattrCtx(t, 70, "user.v", 0),
		mustGetxattrCtx(t, 70, "user.v", 100), mustGetxattrCtx(t, 70, "user.x", 100),
		{Opcode: uint32(fuseop.Open)}, {Opcode: uint32(fuseop.CuseInit)}, {Opcode: 1000},
	}
	for _, in := range ins {
		run(t, f, in)
	}
	want := fastpath.Stats{
		fuseop.Lookup:   {Hits: 3, Misses: 1},
		fuseop.Getattr:  {Hits: 1, Misses: 2},
		fuseop.Getxattr: {Hits: 3, Misses: 1},
		fuseop.Open:     {Misses: 1},
		0:               {Misses: 2},
	}
	st, err = f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != len(want) {
		t.Errorf("fastpath.Stats() has %d opcodes, want %d: %v", len(st), len(want), st)
	}
	for op, w := range want {
		if st[op] != w {
			t.Errorf("fastpath.Stats()[%v] = %+v, want %+v", op, st[op], w)
		}
	}
}

func TestPutRejectsBadInput(t *testing.T) {
	f := fastpathtest.Load(t)
	tests := []struct {
		desc string
		err  error
	}{
		{"attr of another inode", f.PutAttr(1, testAttr(2), time.Second)},
		{"empty dentry name", f.PutEntry(1, "", 2, 0, time.Second)},
		{"dentry name of 256 bytes", f.PutEntry(1, strings.Repeat("a", 256), 2, 0, time.Second)},
		{"dentry name with NUL", f.PutEntry(1, "a\x00b", 2, 0, time.Second)},
		{"xattr name of 256 bytes", f.PutXattr(1, strings.Repeat("a", 256), []byte("v"))},
		{"empty xattr name", f.PutXattr(1, "", nil)},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.desc)
		}
	}
	if _, err := fastpath.LookupCtx(1, strings.Repeat("a", 256)); err == nil {
		t.Errorf("fastpath.LookupCtx with a 256-byte name: no error")
	}
}

func TestAttachWithoutConnection(t *testing.T) {
	f := fastpathtest.Load(t)
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	defer dev.Close()
	// A /dev/fuse fd without a mount has no connection: a patched kernel
	// must refuse, a stock kernel does not know the ioctl (ENOTTY).
	err = f.Attach(int(dev.Fd()))
	if err == nil {
		t.Fatal("Attach to an unmounted /dev/fuse fd succeeded")
	}
	if errors.Is(err, unix.ENOTTY) && !errors.Is(err, fastpath.ErrUnavailable) {
		t.Errorf("ENOTTY not reported as ErrUnavailable: %v", err)
	}
	t.Logf("Attach: %v", err)
}

// TestUserXattrsOnly: with the setting on, names outside "user." are
// unsupported (EOPNOTSUPP) without any map entry; user names, the bare
// prefix among them, still need one; off again, everything unknown goes to
// the daemon.
func TestUserXattrsOnly(t *testing.T) {
	f := fastpathtest.Load(t)
	const node = 77
	if err := f.PutXattr(node, "user.known", []byte("v")); err != nil {
		t.Fatal(err)
	}
	run := func(name string) int32 {
		t.Helper()
		c, err := fastpath.GetxattrCtx(node, name, 100)
		if err != nil {
			t.Fatal(err)
		}
		ret, _, err := f.Run(c)
		if err != nil {
			t.Fatal(err)
		}
		return ret
	}
	names := []string{"security.capability", "security.selinux", "system.posix_acl_access", "trusted.x", "user", "usex.y"}
	for _, on := range []bool{true, false} {
		if err := f.SetUserXattrsOnly(on); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			want := int32(fastpath.Upcall)
			if on {
				want = -int32(unix.EOPNOTSUPP)
			}
			if got := run(name); got != want {
				t.Errorf("setting %v: GETXATTR %q returned %d, want %d", on, name, got, want)
			}
		}
		for _, name := range []string{"user.unknown", "user."} {
			if got := run(name); got != fastpath.Upcall {
				t.Errorf("setting %v: GETXATTR of unpublished user name %q returned %d, want upcall", on, name, got)
			}
		}
		if got := run("user.known"); got != fastpath.Served {
			t.Errorf("setting %v: GETXATTR of a published user name returned %d, want served", on, got)
		}
	}
}
