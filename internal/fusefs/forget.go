package fusefs

import (
	"context"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"
)

// Kernel references and FORGET.
//
// An inode stays in the table while the kernel may name it: while it
// holds references (refs: the LOOKUP-like replies the daemon sent minus
// the FORGETs it received, plus, in the EBPF tier, the LOOKUPs the
// fast-path program answered for it), while another inode in the table
// names it as parent (childLinks), or while it is open (handles). When
// none is left it is freed: at once in the tiers without a fast path;
// in the EBPF tier, where any inode may have facts in the maps, by the
// steps of rule 4 in package meta (withdraw), which this file runs.
//
// An inode the kernel forgot in the EBPF tier is not withdrawn at once,
// though: as long as its entries and attributes are in the maps, the
// program can answer the next LOOKUP of it without the daemon (after the
// kernel dropped its caches, say), which is what the maps are for. Such
// inodes wait in the retained list, oldest first; those beyond retainMax
// are withdrawn, and so is every inode without a name left (nothing can
// look it up again). The table is so bounded by what the kernel holds
// plus retainMax, about the capacity of the maps (more could not be
// answered from them anyway).

// ForgetInode handles FORGET.
func (fs *FS) ForgetInode(ctx context.Context, op *fuseops.ForgetInodeOp) error {
	fs.forget(uint64(op.Inode), op.N)
	return nil
}

// BatchForget handles BATCH_FORGET.
func (fs *FS) BatchForget(ctx context.Context, op *fuseops.BatchForgetOp) error {
	for _, e := range op.Entries {
		fs.forget(uint64(e.Inode), e.N)
	}
	return nil
}

// forget subtracts count kernel references from node id.
func (fs *FS) forget(id uint64, count uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := fs.inodes[id]
	if n == nil {
		return
	}
	delta := fs.syncServedLocked(n)
	if count >= n.refs {
		n.refs = 0
	} else {
		n.refs -= count
	}
	if delta > 0 && n.refs > 0 && n.refs <= uint64(delta) {
		// Only the lookups just counted hold n. One of them may have
		// been a LOOKUP in progress that counted itself and is about to
		// take it back (it found no attributes): read again shortly, or
		// n would stay for good with a reference nobody holds.
		fs.recheckLocked(n)
	}
	fs.maybeFreeLocked(n)
}

// syncServedLocked adds the LOOKUPs the fast path answered for n since
// the last read to n's references and returns how many that was (a
// difference that may be negative: see meta.Sink.ServedLookups). Call
// with fs.mu held.
func (fs *FS) syncServedLocked(n *inode) int64 {
	if fs.fast == nil {
		return 0
	}
	total, ok := fs.cache.ServedLookups(n.ID)
	if !ok {
		return 0
	}
	delta := int64(total - n.served) // wraps: the count may go down by one
	n.served = total
	switch {
	case delta > 0:
		n.refs += uint64(delta)
	case delta < 0:
		n.refs -= min(n.refs, uint64(-delta))
	}
	return delta
}

// recheckAfter is how long a suspect count waits for a second read.
const recheckAfter = 20 * time.Millisecond

// recheckLocked reads n's served count again in a moment and frees n if
// nothing holds it then. Call with fs.mu held.
func (fs *FS) recheckLocked(n *inode) {
	if n.recheck {
		return
	}
	n.recheck = true
	time.AfterFunc(recheckAfter, func() {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		n.recheck = false
		if fs.closed || fs.inodes[n.ID] != n || n.freeing {
			return
		}
		fs.syncServedLocked(n)
		fs.maybeFreeLocked(n)
	})
}

// unpinLocked drops one child link of dir and frees dir if nothing
// references it any more.
func (fs *FS) unpinLocked(dir *inode) {
	dir.childLinks--
	fs.maybeFreeLocked(dir)
}

// maybeFreeLocked frees n, or starts to, if nothing holds it any more.
// Call with fs.mu held.
func (fs *FS) maybeFreeLocked(n *inode) {
	if n.ID == rootID || n.refs > 0 || n.childLinks > 0 || len(n.handles) > 0 || n.freeing {
		return
	}
	if fs.fast == nil {
		fs.freeLocked(n)
		fs.cache.Forget(&n.Node) // no fast path: nothing but the daemon's own cache
		return
	}
	if n.queued {
		return
	}
	if len(n.links) == 0 {
		fs.unretainLocked(n)
		fs.queueLocked(n)
		return
	}
	if n.retained == nil {
		n.retained = fs.retained.PushBack(n)
	}
	for fs.retained.Len() > fs.retainMax {
		old := fs.retained.Front().Value.(*inode)
		fs.unretainLocked(old)
		fs.queueLocked(old)
	}
}

func (fs *FS) unretainLocked(n *inode) {
	if n.retained != nil {
		fs.retained.Remove(n.retained)
		n.retained = nil
	}
}

// queueLocked hands n to the withdrawer.
func (fs *FS) queueLocked(n *inode) {
	n.queued = true
	fs.withdrawals = append(fs.withdrawals, n)
	select {
	case fs.wakeWithdrawer <- struct{}{}:
	default:
	}
}

// freeLocked removes n from the table, closes its descriptor and unpins
// its parents. Its cache entry is the caller's to drop. Call with fs.mu
// held.
func (fs *FS) freeLocked(n *inode) {
	fs.unretainLocked(n)
	if fs.inodes[n.ID] == n {
		delete(fs.inodes, n.ID)
	}
	if k := (devIno{n.dev, n.ino}); fs.ids[k] == n.ID {
		delete(fs.ids, k)
	}
	if n.dirfd >= 0 {
		fs.unwatchDirLocked(n)
		unix.Close(n.dirfd)
		n.dirfd = -1
	}
	links := n.links
	n.links = nil
	for _, l := range links {
		fs.unpinLocked(l.parent)
	}
}

// withdrawer runs the withdrawals, away from the requests: their locks
// (a parent's, the inode's) may be held by a request in progress, and
// forget is called with some held.
func (fs *FS) withdrawer() {
	defer close(fs.withdrawerDone)
	for {
		select {
		case <-fs.wakeWithdrawer:
			fs.withdrawQueued()
		case <-fs.stopWithdrawer:
			return
		}
	}
}

// withdrawQueued runs the queued withdrawals.
func (fs *FS) withdrawQueued() {
	for {
		fs.mu.Lock()
		q := fs.withdrawals
		fs.withdrawals = nil
		fs.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, n := range q {
			fs.withdraw(n)
		}
	}
}

// withdraw runs rule 4 of package meta for an inode nothing held when it
// was queued:
//
//  1. drop the entries naming it, each under its directory's lock, so no
//     new LOOKUP of it can find it in the maps;
//  2. under its own lock, drop its attributes from the maps: the program
//     counts a LOOKUP before it checks the attributes, so once they are
//     gone every LOOKUP it served for n is counted;
//  3. read the served count again: if it moved, the kernel took new
//     references in between and n stays (its facts go to the maps again
//     when a request needs them);
//  4. otherwise free it: take it out of the table (no new reference can
//     be taken from then on), drop everything else the maps and the cache
//     hold about it (its entries as a directory, its xattrs, its served
//     count), and unpin its parents.
func (fs *FS) withdraw(n *inode) {
	fs.mu.Lock()
	n.queued = false
	if fs.inodes[n.ID] != n || n.freeing || n.refs > 0 || n.childLinks > 0 || len(n.handles) > 0 {
		fs.mu.Unlock()
		return // taken again since it was queued
	}
	links := append([]link(nil), n.links...)
	fs.mu.Unlock()

	for _, l := range links {
		l.parent.Lock()
		fs.cache.WithdrawChild(&l.parent.Node, l.plain, n.ID)
		l.parent.Unlock()
	}

	n.Lock()
	defer n.Unlock()
	fs.cache.WithdrawAttr(&n.Node)
	fs.mu.Lock()
	if delta := fs.syncServedLocked(n); delta > 0 {
		fs.recheckLocked(n)
	}
	if fs.inodes[n.ID] != n || n.refs > 0 || n.childLinks > 0 || len(n.handles) > 0 {
		fs.mu.Unlock()
		return
	}
	// From here on takeRef refuses n and remember gives the lower inode a
	// new node: a lookup of it now starts afresh.
	n.freeing = true
	fs.unretainLocked(n)
	if k := (devIno{n.dev, n.ino}); fs.ids[k] == n.ID {
		delete(fs.ids, k)
	}
	fs.mu.Unlock()
	// n keeps its ID in the table until its facts are gone, so that no
	// new node gets the same ID and loses its facts (and served count) to
	// this Forget.
	fs.cache.Forget(&n.Node)
	fs.mu.Lock()
	fs.freeLocked(n)
	fs.mu.Unlock()
}

// takeRef counts one kernel reference of n for a reply about to be sent,
// unless n has left the table or is being freed (then the caller must not
// hand it out).
func (fs *FS) takeRef(n *inode) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.inodes[n.ID] != n || n.freeing {
		return false
	}
	fs.refLocked(n)
	return true
}

// refLocked counts one kernel reference of n. Call with fs.mu held.
func (fs *FS) refLocked(n *inode) {
	n.refs++
	fs.unretainLocked(n)
}
