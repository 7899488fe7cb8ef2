package meta

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jacobsa/fuse/fuseops"
)

// Tier is the fast-path tier of a mount.
type Tier int

// The tiers, from no caching to the in-kernel fast path.
const (
	Off Tier = iota
	KernelCache
	EBPF
)

func (t Tier) String() string {
	switch t {
	case Off:
		return "off"
	case KernelCache:
		return "kernel-cache"
	case EBPF:
		return "ebpf"
	}
	return fmt.Sprintf("tier(%d)", int(t))
}

// ParseTier parses a tier name as given to --fast-path (without "auto").
func ParseTier(s string) (Tier, error) {
	for _, t := range []Tier{Off, KernelCache, EBPF} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown fast-path tier %q (want off, kernel-cache or ebpf)", s)
}

// Policy is the validity the daemon's replies carry.
type Policy struct {
	Entry    time.Duration // positive dentries
	Negative time.Duration // negative dentries
	Attr     time.Duration // attributes
}

// KernelCacheValidity is how long the kernel may keep what the daemon told
// it in the kernel-cache tier. The daemon revokes facts that change behind
// the kernel's back, so this can be long.
const KernelCacheValidity = 24 * time.Hour

// SharedValidity is how long the kernel may keep an entry or attributes
// the daemon replied with in shared-storage mode (NewShared): the bound
// on how late a change made to the lower directory by anything else shows
// through the mount.
const SharedValidity = time.Second

// Policy returns the reply validity for the tier.
func (t Tier) Policy() Policy {
	if t == KernelCache {
		return Policy{Entry: KernelCacheValidity, Negative: KernelCacheValidity, Attr: KernelCacheValidity}
	}
	// Off: no caching. EBPF: the maps decide, so kernel timers must not.
	return Policy{}
}

// Sink is a fast path that answers requests in the kernel from the facts
// the cache publishes (the eBPF maps: fastpath.Sink). It receives every
// fact the cache stores (Put*) and every withdrawal (Drop*, Forget), and
// counts the positive LOOKUPs it answered per node (see rule 4 of the
// package documentation). Calls for one inode are serialised by that
// inode's lock (for a dentry, the directory's lock). Errors are reported
// by the sink itself; a sink that cannot store a fact must make sure it
// no longer answers for it.
type Sink interface {
	PutAttr(id uint64, a *fuseops.InodeAttributes)
	DropAttr(id uint64)
	PutEntry(parent uint64, name string, child, gen uint64) // child 0: negative
	DropEntry(parent uint64, name string)
	PutXattr(id uint64, name string, value []byte, present bool)
	DropXattr(id uint64, name string)
	DropXattrs(id uint64)
	// Forget drops everything about a node the daemon forgets: its
	// attributes, xattrs and served-lookup count (not the entries naming
	// it: they are dropped first, see rule 4).
	Forget(id uint64)
	// ServedLookups returns how many positive LOOKUPs of id the fast path
	// answered since the node was last forgotten. It only grows, but for
	// a LOOKUP in progress that counted itself and then found no
	// attributes to answer with: it takes its count back at once.
	ServedLookups(id uint64) (uint64, error)
}

// Notifier sends invalidations to the kernel (a *fuse.Notifier in the daemon).
type Notifier interface {
	InvalidateEntry(parent fuseops.InodeID, name string) error
	InvalidateInode(inode fuseops.InodeID, offset, length int64) error
}

// Node is the cached metadata of one inode and its lock. The file system
// embeds it in its own inode type.
type Node struct {
	ID uint64

	// mu is the per-inode operation lock (see the coherence rules).
	mu sync.RWMutex

	c        sync.Mutex // guards the fields below
	attr     fuseops.InodeAttributes
	attrOK   bool
	xattrs   map[string][]byte // nil value: known absent
	xattrAll bool              // xattrs holds every present name
	children map[string]uint64 // directories: name -> child ID, 0 = absent
	negative int               // how many of children are 0
}

// Lock takes the inode lock exclusively (changes, read-modify-write).
func (n *Node) Lock() { n.mu.Lock() }

// Unlock releases the exclusive inode lock.
func (n *Node) Unlock() { n.mu.Unlock() }

// RLock takes the inode lock shared (reads that must not see a half-done change).
func (n *Node) RLock() { n.mu.RLock() }

// TryRLock takes the inode lock shared if that does not block.
func (n *Node) TryRLock() bool { return n.mu.TryRLock() }

// RUnlock releases the shared inode lock.
func (n *Node) RUnlock() { n.mu.RUnlock() }

// maxNegativePerDir bounds the negative entries cached per directory.
const maxNegativePerDir = 4096

// Cache holds the tier policy and the sinks facts are published to.
type Cache struct {
	epoch   atomic.Uint64 // bumped by every attribute invalidation
	tier    Tier
	policy  Policy
	sink    Sink // nil unless EBPF
	revoker *revoker
	shared  bool // shared storage: nothing is stored (NewShared)
}

// New returns a cache for the tier. sink receives every fact (the eBPF
// maps; nil otherwise); notifier, when not nil, receives revocations.
func New(t Tier, sink Sink, notifier Notifier) *Cache {
	c := &Cache{tier: t, policy: t.Policy(), sink: sink}
	if notifier != nil {
		c.revoker = newRevoker(notifier)
	}
	return c
}

// NewShared returns the cache of a shared-storage mount, whose lower
// directory may change behind the daemon's back (sync clients, another
// machine): it stores no fact, so every LOOKUP, GETATTR and GETXATTR that
// reaches the daemon reads the lower directory, and its replies let the
// kernel keep what they say for SharedValidity at most (nothing in the
// Off tier). The EBPF tier, whose maps answer without asking the daemon,
// is not offered. The coherence rules then need no exclusive owner: the
// only copy of a fact that can be stale is the kernel's, and only until
// its validity runs out.
func NewShared(t Tier, notifier Notifier) *Cache {
	c := New(t, nil, notifier)
	c.shared = true
	if t != Off {
		c.policy = Policy{Entry: SharedValidity, Negative: SharedValidity, Attr: SharedValidity}
	}
	return c
}

// Shared reports whether the cache is a shared-storage mount's (NewShared).
func (c *Cache) Shared() bool { return c.shared }

// Tier returns the cache's tier.
func (c *Cache) Tier() Tier { return c.tier }

// Close stops the revocation queue. Pending revocations are dropped: after
// unmount there is no kernel cache left to revoke.
func (c *Cache) Close() {
	if c.revoker != nil {
		c.revoker.close()
	}
}

// EntryExpiration is the expiration for a positive dentry reply.
func (c *Cache) EntryExpiration() time.Time { return expire(c.policy.Entry) }

// NegativeExpiration is the expiration for a negative dentry reply.
func (c *Cache) NegativeExpiration() time.Time { return expire(c.policy.Negative) }

// AttrExpiration is the expiration for an attribute reply.
func (c *Cache) AttrExpiration() time.Time { return expire(c.policy.Attr) }

func expire(d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// Attr returns the cached attributes of n.
func (c *Cache) Attr(n *Node) (fuseops.InodeAttributes, bool) {
	n.c.Lock()
	defer n.c.Unlock()
	return n.attr, n.attrOK
}

// ServeAttr is Attr for a reply to the kernel. In the EBPF tier a request
// that reaches the daemon means the program did not find the fact (an LRU
// map evicted it), so a cached fact is published again.
func (c *Cache) ServeAttr(n *Node) (fuseops.InodeAttributes, bool) {
	a, ok := c.Attr(n)
	if ok && c.sink != nil {
		c.publishAttr(n.ID, a)
	}
	return a, ok
}

// publishAttr hands a copy of a to the sink. The copy is made here, not
// by the callers, because whatever goes to the interface escapes: taking
// the address of a caller's variable would put it on the heap on every
// call, sink or not. Not inlined, for the same reason.
//
//go:noinline
func (c *Cache) publishAttr(id uint64, a fuseops.InodeAttributes) {
	c.sink.PutAttr(id, &a)
}

// SetAttr caches a and publishes it. Call with n's lock held (either mode).
func (c *Cache) SetAttr(n *Node, a fuseops.InodeAttributes) {
	if c.shared {
		return
	}
	n.c.Lock()
	n.attr, n.attrOK = a, true
	n.c.Unlock()
	if c.sink != nil {
		c.publishAttr(n.ID, a)
	}
}

// Epoch returns a number that changes whenever any cached attributes are
// dropped. A lower stat taken before reading it and still current when the
// inode's lock is held (Epoch unchanged) can be cached without a second
// stat: no change of any inode finished in between.
func (c *Cache) Epoch() uint64 { return c.epoch.Load() }

// ChangedAttr drops n's attributes after a change the kernel made.
func (c *Cache) ChangedAttr(n *Node) {
	c.epoch.Add(1)
	n.c.Lock()
	n.attrOK = false
	n.c.Unlock()
	if c.sink != nil {
		c.sink.DropAttr(n.ID)
	}
}

// ReplaceAttr caches and publishes n's attributes after a change the
// kernel made, a read the caller made after the change: ChangedAttr
// followed by SetAttr, without the moment in between when the fast path
// has nothing to answer with. The epoch moves as with ChangedAttr, so a
// stat taken before the change is not cached. Call with n's lock held
// exclusively.
func (c *Cache) ReplaceAttr(n *Node, a fuseops.InodeAttributes) {
	c.epoch.Add(1)
	c.SetAttr(n, a)
}

// RevokeAttr drops n's attributes everywhere, the kernel's cache included.
func (c *Cache) RevokeAttr(n *Node) {
	c.ChangedAttr(n)
	if c.revoker != nil {
		c.revoker.inode(n.ID)
	}
}

// Child returns the cached entry name of directory dir: the child's ID, or
// 0 for a known absent name; ok is false when nothing is cached.
func (c *Cache) Child(dir *Node, name string) (id uint64, ok bool) {
	dir.c.Lock()
	defer dir.c.Unlock()
	id, ok = dir.children[name]
	return id, ok
}

// SetChild caches and publishes a dentry (child 0: negative). The child's
// attributes must have been set first, so the fast path never finds a
// dentry without attributes it could answer. Call with dir's lock held.
func (c *Cache) SetChild(dir *Node, name string, child, gen uint64) {
	if c.shared {
		return
	}
	dir.c.Lock()
	if dir.children == nil {
		dir.children = make(map[string]uint64)
	}
	old, had := dir.children[name]
	if had && old == 0 {
		dir.negative--
	}
	if child == 0 {
		if dir.negative >= maxNegativePerDir {
			// Keep the cache bounded: forget negatives, keep positives.
			// Counted apart from the positives, so that a directory with
			// many files does not pay a walk of them for every new name
			// (creating 10,000 files in one directory walked the map on
			// each of the last 5,904 creates).
			for k, v := range dir.children {
				if v == 0 {
					delete(dir.children, k)
					if c.sink != nil {
						c.sink.DropEntry(dir.ID, k)
					}
				}
			}
			dir.negative = 0
		}
		dir.negative++
	}
	dir.children[name] = child
	dir.c.Unlock()
	if c.sink != nil {
		c.sink.PutEntry(dir.ID, name, child, gen)
	}
}

// ChangedChild drops a dentry after a change the kernel made.
func (c *Cache) ChangedChild(dir *Node, name string) {
	dir.c.Lock()
	if v, had := dir.children[name]; had {
		if v == 0 {
			dir.negative--
		}
		delete(dir.children, name)
	}
	dir.c.Unlock()
	if c.sink != nil {
		c.sink.DropEntry(dir.ID, name)
	}
}

// RevokeChild drops a dentry everywhere, the kernel's cache included.
func (c *Cache) RevokeChild(dir *Node, name string) {
	c.ChangedChild(dir, name)
	if c.revoker != nil {
		c.revoker.entry(dir.ID, name)
	}
}

// ServedLookups returns how many positive LOOKUPs of id the fast path
// answered (rule 4); ok is false without a fast path, or when the count
// cannot be read.
func (c *Cache) ServedLookups(id uint64) (n uint64, ok bool) {
	if c.sink == nil {
		return 0, false
	}
	n, err := c.sink.ServedLookups(id)
	return n, err == nil
}

// WithdrawChild drops the entry name of dir, from the cache and the fast
// path, if it still leads to child: the first step of forgetting child
// (rule 4). Call with dir's lock held exclusively.
func (c *Cache) WithdrawChild(dir *Node, name string, child uint64) {
	dir.c.Lock()
	id, had := dir.children[name]
	if had && id == child {
		delete(dir.children, name)
	}
	dir.c.Unlock()
	if had && id == child && c.sink != nil {
		c.sink.DropEntry(dir.ID, name)
	}
}

// WithdrawAttr withdraws n's attributes from the fast path, which then
// can no longer answer a LOOKUP that leads to n: the second step of
// forgetting n (rule 4). The cache keeps them (they are still true);
// ServeAttr publishes them again when a request needs them. Call with
// n's lock held exclusively.
func (c *Cache) WithdrawAttr(n *Node) {
	if c.sink != nil {
		c.sink.DropAttr(n.ID)
	}
}

// Xattr returns a cached extended attribute: value and present, or ok
// false when nothing is cached.
func (c *Cache) Xattr(n *Node, name string) (value []byte, present, ok bool) {
	n.c.Lock()
	defer n.c.Unlock()
	v, ok := n.xattrs[name]
	if !ok && n.xattrAll {
		return nil, false, true // the full list is known: absent
	}
	return v, v != nil, ok
}

// ServeXattr is Xattr for a reply to the kernel; like ServeAttr it
// publishes a cached fact again in the EBPF tier.
func (c *Cache) ServeXattr(n *Node, name string) (value []byte, present, ok bool) {
	value, present, ok = c.Xattr(n, name)
	if ok && c.sink != nil {
		c.sink.PutXattr(n.ID, name, value, present)
	}
	return value, present, ok
}

// SetXattr caches and publishes a value (present false: known absent).
func (c *Cache) SetXattr(n *Node, name string, value []byte, present bool) {
	if c.shared {
		return
	}
	n.c.Lock()
	if n.xattrs == nil {
		n.xattrs = make(map[string][]byte)
	}
	if present {
		if value == nil {
			value = []byte{}
		}
		n.xattrs[name] = value
	} else {
		n.xattrs[name] = nil
	}
	n.c.Unlock()
	if c.sink != nil {
		c.sink.PutXattr(n.ID, name, value, present)
	}
}

// XattrNames returns every present name when the full list is cached.
func (c *Cache) XattrNames(n *Node) ([]string, bool) {
	n.c.Lock()
	defer n.c.Unlock()
	if !n.xattrAll {
		return nil, false
	}
	var names []string
	for k, v := range n.xattrs {
		if v != nil {
			names = append(names, k)
		}
	}
	return names, true
}

// SetXattrList caches the complete set of n's extended attributes.
func (c *Cache) SetXattrList(n *Node, all map[string][]byte) {
	if c.shared {
		return
	}
	n.c.Lock()
	n.xattrs = make(map[string][]byte, len(all))
	for k, v := range all {
		if v == nil {
			v = []byte{}
		}
		n.xattrs[k] = v
	}
	n.xattrAll = true
	n.c.Unlock()
	if c.sink != nil {
		c.sink.DropXattrs(n.ID)
		for k, v := range all {
			c.sink.PutXattr(n.ID, k, v, true)
		}
	}
}

// ChangedXattr drops one cached name after a change of it.
func (c *Cache) ChangedXattr(n *Node, name string) {
	n.c.Lock()
	delete(n.xattrs, name)
	n.xattrAll = false
	n.c.Unlock()
	if c.sink != nil {
		c.sink.DropXattr(n.ID, name)
	}
}

// Forget drops everything cached about n (the kernel forgot it; in the
// EBPF tier, only after the steps of rule 4).
func (c *Cache) Forget(n *Node) {
	c.epoch.Add(1)
	n.c.Lock()
	n.attrOK = false
	n.xattrs, n.xattrAll = nil, false
	children := n.children
	n.children, n.negative = nil, 0
	n.c.Unlock()
	if c.sink != nil {
		for name := range children {
			c.sink.DropEntry(n.ID, name)
		}
		c.sink.DropXattrs(n.ID)
		c.sink.Forget(n.ID)
	}
}

// ForgetChildren drops the cached entries of a directory (it was removed
// or replaced).
func (c *Cache) ForgetChildren(dir *Node) {
	dir.c.Lock()
	children := dir.children
	dir.children, dir.negative = nil, 0
	dir.c.Unlock()
	if c.sink != nil {
		for name := range children {
			c.sink.DropEntry(dir.ID, name)
		}
	}
}
