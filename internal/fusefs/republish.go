package fusefs

import "github.com/cryptfs/cryptfs/meta"

// changedAttr records that an operation of the kernel's changed n's
// attributes (a directory's size, link count, mtime and ctime after a
// create, remove or rename in it; a file's link count or ctime after a
// link or rename). Call with n's lock held exclusively.
//
// The cached attributes are dropped (and the epoch moves: see
// meta.Cache.Epoch). In the ebpf tier they are instead read again from the
// lower file and replace the old ones in the cache and the maps (one map
// update: the program never sees a gap), under the same lock, before the
// reply leaves:
// with default_permissions the kernel checks the parent's permissions
// before every create and unlink, and with the zero attribute validity of
// that tier each check is a GETATTR, which the program now answers instead
// of the daemon (issue 17: untar and rm -rf). The kernel-cache tier gains
// nothing from it (the kernel asks the daemon again either way), so it
// keeps the cheaper drop. A failed stat leaves the attributes dropped:
// the daemon answers the next GETATTR.
func (fs *FS) changedAttr(n *inode) {
	if fs.cache.Tier() == meta.EBPF {
		if a, err := fs.lowerAttrs(n); err == nil {
			fs.cache.ReplaceAttr(&n.Node, a)
			return
		}
	}
	fs.cache.ChangedAttr(&n.Node)
}
