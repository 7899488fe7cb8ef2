package fusefs

import (
	"context"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"
)

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

// forget subtracts FORGET counts.
func (fs *FS) forget(id uint64, count uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := fs.inodes[id]
	if n == nil {
		return
	}
	if fs.fast != nil && n.published {
		// Served lookups raised the kernel's count without us.
		if total, err := fs.fast.ServedLookups(id); err == nil && total > n.served {
			n.refs += total - n.served
			n.served = total
		}
	}
	if count >= n.refs {
		n.refs = 0
	} else {
		n.refs -= count
	}
	fs.maybeFreeLocked(n)
}

// unpinLocked drops one child link of dir and frees dir if nothing
// references it any more.
func (fs *FS) unpinLocked(dir *inode) {
	dir.childLinks--
	fs.maybeFreeLocked(dir)
}

func (fs *FS) maybeFreeLocked(n *inode) {
	if n.ID == rootID || n.refs > 0 || n.childLinks > 0 || len(n.handles) > 0 || n.published {
		return
	}
	delete(fs.inodes, n.ID)
	if k := (devIno{n.dev, n.ino}); fs.ids[k] == n.ID {
		delete(fs.ids, k)
	}
	if n.dirfd >= 0 {
		unix.Close(n.dirfd)
		n.dirfd = -1
	}
	links := n.links
	n.links = nil
	fs.cache.Forget(&n.Node)
	for _, l := range links {
		fs.unpinLocked(l.parent)
	}
}

func (fs *FS) markPublished(n *inode) {
	if fs.fast != nil {
		fs.mu.Lock()
		n.published = true
		fs.mu.Unlock()
	}
}

// takeRef counts one kernel reference of n for a reply about to be sent,
// unless n has left the table meanwhile (then the caller must not hand
// it out).
func (fs *FS) takeRef(n *inode) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.inodes[n.ID] != n {
		return false
	}
	n.refs++
	return true
}
