package fusefs

import (
	"errors"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
)

// The answers from the metadata cache alone (opDesc.cached), given on the
// goroutine that read the request when that can be done without blocking
// and without touching the lower directory: GETATTR and GETXATTR of cached
// facts, LOOKUP of a cached entry. Handing such a request to a goroutine
// of its own costs more than answering it (a wake-up and a hand-off per
// request). Each calls the same cache helpers as its handler, only with
// TryRLock instead of RLock; anything not cached, and anything whose lock
// is busy, goes to the handler. ok reports whether the request was
// answered.

func (fs *FS) cachedGetattr(o *fuseops.GetInodeAttributesOp) (errno syscall.Errno, ok bool) {
	n := fs.getInode(uint64(o.Inode))
	if n == nil || !n.TryRLock() {
		return 0, false
	}
	defer n.RUnlock()
	return 0, fs.getattrCached(n, o)
}

func (fs *FS) cachedGetxattr(o *fuseops.GetXattrOp) (errno syscall.Errno, ok bool) {
	if err := checkXattrName(o.Name); err != nil {
		return bare(err), true
	}
	n := fs.getInode(uint64(o.Inode))
	if n == nil || !n.TryRLock() {
		return 0, false
	}
	defer n.RUnlock()
	v, known, err := fs.getxattrCached(n, o.Name)
	if !known {
		return 0, false
	}
	if err == nil {
		err = replyXattr(o, v)
	}
	return bare(err), true
}

func (fs *FS) cachedLookUp(o *fuseops.LookUpInodeOp) (errno syscall.Errno, ok bool) {
	p := fs.getInode(uint64(o.Parent))
	if p == nil || !p.isDir() || !p.TryRLock() {
		return 0, false
	}
	defer p.RUnlock()
	done, err := fs.lookupCached(p, o.Name, &o.Entry, false)
	return bare(err), done
}

// bare returns the errno of an error made of one (the cache helpers
// return nothing else).
func bare(err error) syscall.Errno {
	var e syscall.Errno
	if err == nil || !errors.As(err, &e) {
		return 0
	}
	return e
}
