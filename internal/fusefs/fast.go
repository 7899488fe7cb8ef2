package fusefs

import (
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
)

// answerInline answers a request from the metadata cache alone, on the
// goroutine that read it, when that can be done without blocking and
// without touching the lower directory: GETATTR and GETXATTR of cached
// facts, LOOKUP of a cached entry. Handing such a request to a goroutine
// of its own costs more than answering it (a wake-up and a hand-off per
// request); everything else, and anything whose lock is busy, goes the
// normal way. ok reports whether the request was answered.
func (fs *FS) answerInline(op any) (errno syscall.Errno, ok bool) {
	switch o := op.(type) {
	case *fuseops.GetInodeAttributesOp:
		n := fs.getInode(uint64(o.Inode))
		if n == nil || !n.TryRLock() {
			return 0, false
		}
		defer n.RUnlock()
		a, ok := fs.cache.ServeAttr(&n.Node)
		if !ok {
			return 0, false
		}
		o.Attributes, o.AttributesExpiration = a, fs.cache.AttrExpiration()
		return 0, true

	case *fuseops.GetXattrOp:
		if unsupportedXattr(o.Name) {
			return syscall.EOPNOTSUPP, true // only user.* is ever stored
		}
		n := fs.getInode(uint64(o.Inode))
		if n == nil || !n.TryRLock() {
			return 0, false
		}
		defer n.RUnlock()
		v, present, ok := fs.cache.ServeXattr(&n.Node, o.Name)
		switch {
		case !ok:
			return 0, false
		case !present:
			return syscall.ENODATA, true
		case len(o.Dst) == 0:
			o.BytesRead = len(v)
		case len(o.Dst) < len(v):
			return syscall.ERANGE, true
		default:
			o.BytesRead = copy(o.Dst, v)
		}
		return 0, true

	case *fuseops.LookUpInodeOp:
		p := fs.getInode(uint64(o.Parent))
		if p == nil || !p.isDir() || !p.TryRLock() {
			return 0, false
		}
		defer p.RUnlock()
		id, ok := fs.cache.Child(&p.Node, o.Name)
		if !ok {
			return 0, false
		}
		if id == 0 {
			fs.negative(p, o.Name, &o.Entry)
			return 0, true
		}
		child := fs.getInode(id)
		if child == nil || !child.TryRLock() {
			return 0, false
		}
		defer child.RUnlock()
		a, ok := fs.cache.ServeAttr(&child.Node)
		if !ok {
			return 0, false
		}
		fs.mu.Lock()
		child.refs++
		if fs.fast != nil {
			child.published = true
		}
		fs.mu.Unlock()
		fs.cache.SetChild(&p.Node, o.Name, child.ID, 0)
		o.Entry = fuseops.ChildInodeEntry{
			Child:                fuseops.InodeID(child.ID),
			Attributes:           a,
			AttributesExpiration: fs.cache.AttrExpiration(),
			EntryExpiration:      fs.cache.EntryExpiration(),
		}
		return 0, true
	}
	return 0, false
}
