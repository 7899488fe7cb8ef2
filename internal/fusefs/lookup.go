package fusefs

import (
	"context"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"
)

// LookUpInode answers LOOKUP from the cache or the lower directory.
func (fs *FS) LookUpInode(ctx context.Context, op *fuseops.LookUpInodeOp) error {
	p, err := fs.dirOf(op.Parent)
	if err != nil {
		return err
	}
	p.RLock()
	defer p.RUnlock()
	if done, err := fs.lookupCached(p, op.Name, &op.Entry, true); done {
		return err
	}
	ln, err := fs.lowerName(p, op.Name)
	if err != nil {
		return err
	}
	pfd, err := fs.dirFd(p)
	if err != nil {
		return err
	}
	child, s, err := fs.find(p, pfd, ln.Lower, op.Name)
	if err == syscall.ENOENT {
		// A sync tool's conflict copy in a directory not listed yet
		// (conflict.go).
		if lower, ok := fs.conflictOnMiss(p, op.Name, ln.Lower); ok {
			child, s, err = fs.find(p, pfd, lower, op.Name)
		}
	}
	if err == syscall.ENOENT {
		fs.negative(p, op.Name, &op.Entry)
		return nil
	}
	if err != nil {
		return err
	}
	return fs.entry(p, op.Name, child, s, &op.Entry)
}

// find looks a lower entry up and remembers it with one kernel reference.
func (fs *FS) find(p *inode, pfd int, lower, plain string) (*inode, *seen, error) {
	s := &seen{epoch: fs.cache.Epoch()}
	birth, err := fs.statAt(pfd, lower, &s.st)
	if err != nil {
		return nil, nil, err
	}
	dfd := -1
	if s.st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if dfd, err = openDirAt(pfd, lower, &s.st); err != nil {
			return nil, nil, err
		}
	}
	return fs.remember(p, lower, plain, &s.st, birth, dfd, true, false), s, nil
}

// seen is a lower stat of an inode, taken outside the inode's lock, with
// the cache epoch from before it was taken. fresh marks a stat of an inode
// this request just created, which no other request can have changed.
type seen struct {
	st    unix.Stat_t
	epoch uint64
	fresh bool
}

// lookupCached answers LOOKUP of name in directory p from the cache,
// when the cache holds the entry: a negative entry, or a child node still
// in the table (its kernel reference is taken here). With wait, it waits
// for the child's lock and stats a child whose attributes are not cached
// (the handler); without, it never blocks and answers only from cached
// attributes (the reader goroutine, fast.go). done reports whether it
// answered. Call with p's lock held (either mode).
func (fs *FS) lookupCached(p *inode, name string, out *fuseops.ChildInodeEntry, wait bool) (done bool, err error) {
	id, ok := fs.cache.Child(&p.Node, name)
	if !ok {
		return false, nil
	}
	if id == 0 {
		fs.negative(p, name, out)
		return true, nil
	}
	child := fs.getInode(id)
	if child == nil {
		return false, nil
	}
	if wait {
		if !fs.takeRef(child) {
			return false, nil
		}
		return true, fs.entry(p, name, child, nil, out)
	}
	if !child.TryRLock() {
		return false, nil
	}
	defer child.RUnlock()
	a, ok := fs.cache.ServeAttr(&child.Node)
	if !ok || !fs.takeRef(child) {
		return false, nil
	}
	fs.publishEntry(p, name, child, a, out)
	return true, nil
}

// entry fills a reply entry for child found or created in parent under
// name, and publishes the dentry. The caller holds parent's lock and has
// counted the kernel reference (takeRef or remember). s, if not nil,
// spares a second stat when it is still current.
func (fs *FS) entry(parent *inode, name string, child *inode, s *seen, out *fuseops.ChildInodeEntry) error {
	child.RLock()
	a, ok := fs.cache.ServeAttr(&child.Node)
	var err error
	switch {
	case ok:
	case s != nil && (s.fresh || fs.cache.Epoch() == s.epoch) && s.st.Ino == child.ino && s.st.Mode&unix.S_IFMT == child.kind:
		tlen := 0
		if child.kind == unix.S_IFLNK {
			var t string
			t, err = fs.symlinkTarget(child)
			tlen = len(t)
		}
		if err == nil {
			a = fs.attrsFromStat(child, &s.st, tlen)
			fs.cache.SetAttr(&child.Node, a)
		}
	default:
		a, err = fs.freshAttrs(child)
	}
	if err == nil {
		fs.publishEntry(parent, name, child, a, out)
	}
	child.RUnlock()
	if err != nil {
		fs.forget(child.ID, 1)
	}
	return err
}

// publishEntry caches and publishes the dentry (parent, name) -> child
// whose attributes are a, and fills the reply. The caller holds parent's
// lock and child's (either mode), and has counted the kernel reference.
func (fs *FS) publishEntry(parent *inode, name string, child *inode, a fuseops.InodeAttributes, out *fuseops.ChildInodeEntry) {
	fs.cache.SetChild(&parent.Node, name, child.ID, 0)
	*out = fuseops.ChildInodeEntry{
		Child:                fuseops.InodeID(child.ID),
		Attributes:           a,
		AttributesExpiration: fs.cache.AttrExpiration(),
		EntryExpiration:      fs.cache.EntryExpiration(),
	}
}

// negative fills a negative entry reply and caches it.
func (fs *FS) negative(parent *inode, name string, out *fuseops.ChildInodeEntry) {
	fs.cache.SetChild(&parent.Node, name, 0, 0)
	*out = fuseops.ChildInodeEntry{EntryExpiration: fs.cache.NegativeExpiration()}
}
