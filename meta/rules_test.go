package meta_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/cryptfs/cryptfs/meta"
)

// recorder is a fake fast path (meta.Sink) and kernel (meta.Notifier):
// it records every call in order.
type recorder struct {
	mu     sync.Mutex
	calls  []string
	served map[uint64]uint64
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

// take returns the calls since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func (r *recorder) PutAttr(id uint64, a *fuseops.InodeAttributes) {
	r.add("PutAttr %d size=%d", id, a.Size)
}
func (r *recorder) DropAttr(id uint64) { r.add("DropAttr %d", id) }
func (r *recorder) PutEntry(parent uint64, name string, child, gen uint64) {
	r.add("PutEntry %d/%s=%d", parent, name, child)
}
func (r *recorder) DropEntry(parent uint64, name string) { r.add("DropEntry %d/%s", parent, name) }
func (r *recorder) PutXattr(id uint64, name string, value []byte, present bool) {
	if present {
		r.add("PutXattr %d %s=%q", id, name, value)
	} else {
		r.add("PutXattr %d %s absent", id, name)
	}
}
func (r *recorder) DropXattr(id uint64, name string) { r.add("DropXattr %d %s", id, name) }
func (r *recorder) DropXattrs(id uint64)             { r.add("DropXattrs %d", id) }
func (r *recorder) Forget(id uint64)                 { r.add("Forget %d", id) }
func (r *recorder) ServedLookups(id uint64) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.served[id], nil
}

func (r *recorder) InvalidateEntry(parent fuseops.InodeID, name string) error {
	r.add("InvalidateEntry %d/%s", parent, name)
	return nil
}

func (r *recorder) InvalidateInode(inode fuseops.InodeID, offset, length int64) error {
	r.add("InvalidateInode %d %d", inode, offset)
	return nil
}

func expect(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n  got  %s\n  want %s", what, strings.Join(got, "; "), strings.Join(want, "; "))
	}
}

// TestRulesReachTheSink: every fact the cache stores is published, every
// change withdraws it, in the order the calls were made (rules 1 and 2),
// and cached facts served to the kernel are published again (the maps may
// have evicted them).
func TestRulesReachTheSink(t *testing.T) {
	r := &recorder{}
	c := meta.New(meta.EBPF, r, nil)
	dir, file := &meta.Node{ID: 1}, &meta.Node{ID: 7}

	c.SetAttr(file, fuseops.InodeAttributes{Size: 10})
	c.SetChild(dir, "f", 7, 0)
	c.SetChild(dir, "gone", 0, 0)
	expect(t, "set", r.take(), "PutAttr 7 size=10", "PutEntry 1/f=7", "PutEntry 1/gone=0")

	if a, ok := c.ServeAttr(file); !ok || a.Size != 10 {
		t.Fatalf("ServeAttr: %+v, %v", a, ok)
	}
	expect(t, "serve publishes again", r.take(), "PutAttr 7 size=10")

	c.ChangedAttr(file)
	if _, ok := c.Attr(file); ok {
		t.Error("attributes still cached after ChangedAttr")
	}
	if _, ok := c.ServeAttr(file); ok {
		t.Error("ServeAttr answers after ChangedAttr")
	}
	c.ChangedChild(dir, "f")
	if _, ok := c.Child(dir, "f"); ok {
		t.Error("entry still cached after ChangedChild")
	}
	expect(t, "changes withdraw", r.take(), "DropAttr 7", "DropEntry 1/f")

	// ReplaceAttr: a change the caller re-read at once replaces the fact
	// in one update (no DropAttr, so the program never misses in
	// between) and moves the epoch like ChangedAttr.
	epoch := c.Epoch()
	c.ReplaceAttr(file, fuseops.InodeAttributes{Size: 12})
	if a, ok := c.Attr(file); !ok || a.Size != 12 {
		t.Errorf("after ReplaceAttr: %+v, %v", a, ok)
	}
	if c.Epoch() == epoch {
		t.Error("ReplaceAttr did not move the epoch: a stat taken before the change could be cached")
	}
	expect(t, "replace", r.take(), "PutAttr 7 size=12")

	c.SetXattr(file, "user.a", []byte("v"), true)
	c.SetXattr(file, "user.b", nil, false)
	c.ServeXattr(file, "user.b")
	c.ChangedXattr(file, "user.a")
	if _, _, ok := c.Xattr(file, "user.a"); ok {
		t.Error("xattr still cached after ChangedXattr")
	}
	c.SetXattrList(file, map[string][]byte{"user.c": []byte("w")})
	if names, ok := c.XattrNames(file); !ok || !slices.Equal(names, []string{"user.c"}) {
		t.Errorf("XattrNames: %q, %v", names, ok)
	}
	if _, present, ok := c.Xattr(file, "user.d"); !ok || present {
		t.Error("with the full list cached, an unlisted name is not known absent")
	}
	expect(t, "xattrs", r.take(),
		`PutXattr 7 user.a="v"`, "PutXattr 7 user.b absent", "PutXattr 7 user.b absent",
		"DropXattr 7 user.a", "DropXattrs 7", `PutXattr 7 user.c="w"`)

	c.SetChild(dir, "x", 7, 0)
	r.take()
	c.ForgetChildren(dir)
	expect(t, "ForgetChildren", sorted(r.take()), "DropEntry 1/gone", "DropEntry 1/x")

	c.SetChild(dir, "y", 7, 0)
	c.SetXattr(dir, "user.a", []byte("v"), true)
	r.take()
	c.Forget(dir)
	expect(t, "Forget: the entries under it, its xattrs, then the node", r.take(),
		"DropEntry 1/y", "DropXattrs 1", "Forget 1")
	if _, ok := c.Child(dir, "y"); ok {
		t.Error("entries survive Forget")
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

// TestRevocations: Revoke* withdraws like Changed* and also tells the
// kernel (rule 3), from a goroutine of its own.
func TestRevocations(t *testing.T) {
	r := &recorder{}
	c := meta.New(meta.EBPF, r, r)
	defer c.Close()
	dir, file := &meta.Node{ID: 1}, &meta.Node{ID: 7}
	c.SetAttr(file, fuseops.InodeAttributes{})
	c.SetChild(dir, "f", 7, 0)
	r.take()
	c.RevokeAttr(file)
	c.RevokeChild(dir, "f")
	deadline := time.Now().Add(10 * time.Second)
	var got []string
	for len(got) < 4 && time.Now().Before(deadline) {
		got = append(got, r.take()...)
		time.Sleep(time.Millisecond)
	}
	// The withdrawals happen in the calls; the notifications after them, in order.
	expect(t, "revocations", got, "DropAttr 7", "DropEntry 1/f", "InvalidateInode 7 -1", "InvalidateEntry 1/f")
}

// TestWithdraw: the steps of rule 4 touch only the fast path's copy of
// the facts they withdraw, and an entry only while it still names the
// node being forgotten.
func TestWithdraw(t *testing.T) {
	r := &recorder{served: map[uint64]uint64{7: 3}}
	c := meta.New(meta.EBPF, r, nil)
	dir, file := &meta.Node{ID: 1}, &meta.Node{ID: 7}
	c.SetAttr(file, fuseops.InodeAttributes{Size: 1})
	c.SetChild(dir, "a", 7, 0)
	c.SetChild(dir, "b", 8, 0)
	r.take()
	c.WithdrawChild(dir, "a", 7)
	c.WithdrawChild(dir, "b", 7) // names another node now: kept
	c.WithdrawAttr(file)
	expect(t, "withdraw", r.take(), "DropEntry 1/a", "DropAttr 7")
	if _, ok := c.Child(dir, "a"); ok {
		t.Error("withdrawn entry still cached")
	}
	if id, ok := c.Child(dir, "b"); !ok || id != 8 {
		t.Error("an entry naming another node was withdrawn")
	}
	if _, ok := c.Attr(file); !ok {
		t.Error("WithdrawAttr dropped the cache's attributes, which are still true")
	}
	if n, ok := c.ServedLookups(7); !ok || n != 3 {
		t.Errorf("ServedLookups: %d, %v", n, ok)
	}
	if _, ok := meta.New(meta.KernelCache, nil, nil).ServedLookups(7); ok {
		t.Error("ServedLookups without a fast path reports a count")
	}
}

// TestEpoch: the epoch moves with every dropped attribute (ChangedAttr,
// Forget) and with nothing else, so a stat taken before it was read can be
// cached only if no change finished meanwhile.
func TestEpoch(t *testing.T) {
	c := meta.New(meta.KernelCache, nil, nil)
	n := &meta.Node{ID: 5}
	e := c.Epoch()
	c.SetAttr(n, fuseops.InodeAttributes{})
	c.SetChild(n, "x", 6, 0)
	c.SetXattr(n, "user.a", nil, false)
	if c.Epoch() != e {
		t.Error("the epoch moved on a Set")
	}
	c.ChangedAttr(n)
	if c.Epoch() == e {
		t.Error("the epoch did not move on ChangedAttr")
	}
	e = c.Epoch()
	c.Forget(n)
	if c.Epoch() == e {
		t.Error("the epoch did not move on Forget")
	}
}

// TestNegativeBoundReachesTheSink: when the bound on cached negative
// entries forgets them, the fast path forgets them too, before the new
// negative is published; positives stay.
func TestNegativeBoundReachesTheSink(t *testing.T) {
	const bound = 4096
	r := &recorder{}
	c := meta.New(meta.EBPF, r, nil)
	dir := &meta.Node{ID: 1}
	c.SetChild(dir, "file", 9, 0)
	for i := range bound {
		c.SetChild(dir, fmt.Sprint("n", i), 0, 0)
	}
	r.take()
	c.SetChild(dir, "one-more", 0, 0)
	calls := r.take()
	if len(calls) != bound+1 || calls[bound] != "PutEntry 1/one-more=0" {
		t.Fatalf("%d calls, last %q: want %d drops, then the new negative", len(calls), calls[len(calls)-1], bound)
	}
	for _, call := range calls[:bound] {
		if !strings.HasPrefix(call, "DropEntry 1/n") {
			t.Fatalf("unexpected call %q while forgetting negatives", call)
		}
	}
	if id, ok := c.Child(dir, "file"); !ok || id != 9 {
		t.Error("a positive entry was forgotten with the negatives")
	}
}

// TestPolicy: the validity replies carry per tier.
func TestPolicy(t *testing.T) {
	for _, c := range []struct {
		tier meta.Tier
		long bool
	}{{meta.Off, false}, {meta.KernelCache, true}, {meta.EBPF, false}} {
		m := meta.New(c.tier, nil, nil)
		for what, exp := range map[string]time.Time{"entry": m.EntryExpiration(), "negative": m.NegativeExpiration(), "attr": m.AttrExpiration()} {
			if c.long != !exp.IsZero() || (c.long && time.Until(exp) < time.Hour) {
				t.Errorf("%v: %s expiration %v", c.tier, what, exp)
			}
		}
	}
}
