package fusefs

import (
	"context"
	"errors"
	"sort"
	"strings"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Extended attributes: only the user namespace is stored (encrypted, as
// user.* attributes of the lower file). Every other namespace (security.*,
// system.* with the POSIX ACLs, trusted.*) is unsupported, for reading as
// for writing: EOPNOTSUPP, what Linux says for a namespace a file system has
// no handler for. Reading them as merely absent (ENODATA) would be just as
// true but far slower: GNU ls -l asks security.selinux and
// system.posix_acl_access of every entry and stops asking on a device
// that says EOPNOTSUPP, and no FUSE kernel caches extended attributes, so
// every ENODATA is a round trip. The fast-path program is told the same
// and answers these names in the kernel. Symlinks carry no user
// attributes, as on Linux's local file systems.

const userPrefix = "user."

// unsupportedXattr reports whether name is outside the user namespace,
// which cryptfs neither stores nor reads (EOPNOTSUPP).
func unsupportedXattr(name string) bool { return !strings.HasPrefix(name, userPrefix) }

// xattrPath runs fn with a path to n's lower inode for the path-based
// xattr calls (O_PATH descriptors refuse the f*xattr calls).
func (fs *FS) xattrPath(n *inode, fn func(path string) error) error {
	if n.isDir() {
		fd, err := fs.dirFd(n)
		if err != nil {
			return err
		}
		return fn(ciphertree.ProcFd(fd))
	}
	fd, err := fs.open(n, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(ciphertree.ProcFd(fd))
}

// checkXattrName refuses what is never stored, so never read from the
// lower file nor cached (the kernel asks for security.capability before
// every write: a cache entry per written file would be most of the
// daemon's memory): names outside the user namespace (EOPNOTSUPP) and
// names too long to store (ERANGE, as the kernel says).
func checkXattrName(name string) error {
	if unsupportedXattr(name) {
		return syscall.EOPNOTSUPP
	}
	if len(name) > crypt.MaxXattrName {
		return syscall.ERANGE
	}
	return nil
}

// getxattrCached returns the value of xattr name of n when the cache
// knows it (ENODATA when known absent); known is false when the lower
// file must be asked. Call with n's lock held (either mode).
func (fs *FS) getxattrCached(n *inode, name string) (v []byte, known bool, err error) {
	v, present, known := fs.cache.ServeXattr(&n.Node, name)
	if known && !present {
		return nil, true, syscall.ENODATA
	}
	return v, known, nil
}

// getXattr returns the plaintext value of name on n (ENODATA if absent,
// EOPNOTSUPP outside the user namespace), from the cache or the lower
// file. Call with n's lock held (either mode).
func (fs *FS) getXattr(n *inode, name string) ([]byte, error) {
	if err := checkXattrName(name); err != nil {
		return nil, err
	}
	if v, known, err := fs.getxattrCached(n, name); known {
		return v, err
	}
	if n.kind == unix.S_IFLNK {
		fs.cache.SetXattr(&n.Node, name, nil, false)
		return nil, syscall.ENODATA
	}
	lname, err := fs.suite.EncryptXattrName(name)
	if err != nil {
		fs.cache.SetXattr(&n.Node, name, nil, false)
		return nil, syscall.ENODATA
	}
	var value []byte
	err = fs.xattrPath(n, func(path string) error {
		sealed, err := ciphertree.Getxattr(path, lname)
		if err != nil {
			return err
		}
		if value, err = fs.suite.OpenXattrValue(lname, sealed); err != nil {
			return fs.authFailed("getxattr", n, "", err)
		}
		return nil
	})
	if errors.Is(err, syscall.ENODATA) {
		fs.cache.SetXattr(&n.Node, name, nil, false)
		return nil, syscall.ENODATA
	}
	if err != nil {
		return nil, err
	}
	fs.cache.SetXattr(&n.Node, name, value, true)
	return value, nil
}

// GetXattr answers GETXATTR (a size query when Dst is empty).
func (fs *FS) GetXattr(ctx context.Context, op *fuseops.GetXattrOp) error {
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	n.RLock()
	defer n.RUnlock()
	v, err := fs.getXattr(n, op.Name)
	if err != nil {
		return err
	}
	return replyXattr(op, v)
}

// replyXattr fills the reply to GETXATTR with value v.
func replyXattr(op *fuseops.GetXattrOp, v []byte) error {
	if len(op.Dst) == 0 {
		op.BytesRead = len(v)
		return nil
	}
	if len(op.Dst) < len(v) {
		return syscall.ERANGE
	}
	op.BytesRead = copy(op.Dst, v)
	return nil
}

// ListXattr answers LISTXATTR.
func (fs *FS) ListXattr(ctx context.Context, op *fuseops.ListXattrOp) error {
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	n.RLock()
	defer n.RUnlock()
	names, ok := fs.cache.XattrNames(&n.Node)
	if !ok {
		all, err := fs.readAllXattrs(n)
		if err != nil {
			return err
		}
		fs.cache.SetXattrList(&n.Node, all)
		names = names[:0]
		for k := range all {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	size := 0
	for _, k := range names {
		size += len(k) + 1
	}
	if len(op.Dst) == 0 {
		op.BytesRead = size
		return nil
	}
	if len(op.Dst) < size {
		return syscall.ERANGE
	}
	for _, k := range names {
		op.BytesRead += copy(op.Dst[op.BytesRead:], k)
		op.Dst[op.BytesRead] = 0
		op.BytesRead++
	}
	return nil
}

// readAllXattrs reads and decrypts every user attribute of n. Lower
// attributes that are not ours are ignored.
func (fs *FS) readAllXattrs(n *inode) (map[string][]byte, error) {
	all := map[string][]byte{}
	if n.kind == unix.S_IFLNK {
		return all, nil
	}
	err := fs.xattrPath(n, func(path string) error {
		xs, err := ciphertree.Xattrs(fs.suite, path)
		if err != nil {
			return err
		}
		for _, x := range xs {
			switch {
			case x.NameErr != nil:
				// Not ours (or damaged): invisible, as fsck reports.
			case x.ValueErr != nil:
				return fs.authFailed("listxattr", n, "", x.ValueErr)
			default:
				all[x.Name] = x.Value
			}
		}
		return nil
	})
	return all, err
}

// SetXattr stores an encrypted user attribute.
func (fs *FS) SetXattr(ctx context.Context, op *fuseops.SetXattrOp) error {
	if fs.readOnly {
		return syscall.EROFS
	}
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	if unsupportedXattr(op.Name) {
		return syscall.EOPNOTSUPP
	}
	if n.kind == unix.S_IFLNK {
		return syscall.EPERM
	}
	lname, err := fs.suite.EncryptXattrName(op.Name)
	if errors.Is(err, crypt.ErrNameTooLong) {
		return syscall.ERANGE // as the kernel says for over-long names
	}
	if err != nil {
		return syscall.EINVAL
	}
	sealed, err := fs.suite.SealXattrValue(lname, op.Value)
	if err != nil {
		return err
	}
	n.Lock()
	defer n.Unlock()
	fs.ownChanging(n, -1)
	err = fs.xattrPath(n, func(path string) error {
		return unix.Setxattr(path, lname, sealed, int(op.Flags))
	})
	fs.ownChanged(n, -1) // the ctime moved (shared mode)
	fs.cache.ChangedXattr(&n.Node, op.Name)
	fs.cache.ChangedAttr(&n.Node) // ctime
	if err != nil {
		return err
	}
	fs.cache.SetXattr(&n.Node, op.Name, append([]byte{}, op.Value...), true)
	return nil
}

// RemoveXattr removes a user attribute.
func (fs *FS) RemoveXattr(ctx context.Context, op *fuseops.RemoveXattrOp) error {
	if fs.readOnly {
		return syscall.EROFS
	}
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	if unsupportedXattr(op.Name) {
		return syscall.EOPNOTSUPP
	}
	if n.kind == unix.S_IFLNK {
		return syscall.ENODATA
	}
	lname, err := fs.suite.EncryptXattrName(op.Name)
	if errors.Is(err, crypt.ErrNameTooLong) {
		return syscall.ERANGE
	}
	if err != nil {
		return syscall.ENODATA
	}
	n.Lock()
	defer n.Unlock()
	fs.ownChanging(n, -1)
	err = fs.xattrPath(n, func(path string) error { return unix.Removexattr(path, lname) })
	fs.ownChanged(n, -1) // the ctime moved (shared mode)
	fs.cache.ChangedXattr(&n.Node, op.Name)
	fs.cache.ChangedAttr(&n.Node)
	if err != nil {
		return err
	}
	fs.cache.SetXattr(&n.Node, op.Name, nil, false)
	return nil
}
