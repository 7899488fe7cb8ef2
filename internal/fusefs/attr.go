package fusefs

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/filemode"
)

// attrsFromStat converts a lower stat to plaintext attributes. Symlink
// sizes need the decrypted target, which the caller supplies.
func (fs *FS) attrsFromStat(n *inode, st *unix.Stat_t, symlinkLen int) fuseops.InodeAttributes {
	mode := st.Mode
	if n.ID == rootID {
		mode = fs.rootAttrMode(mode)
	}
	a := fuseops.InodeAttributes{
		Size:  uint64(st.Size),
		Nlink: uint32(st.Nlink),
		Mode:  filemode.FromUnix(mode),
		Rdev:  uint32(st.Rdev),
		Atime: time.Unix(st.Atim.Sec, st.Atim.Nsec),
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		Uid:   st.Uid,
		Gid:   st.Gid,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		// A size that cannot be a cipher file's is reported rounded down;
		// reading its last block then fails authentication (EIO + log).
		a.Size, _ = crypt.PlainSize(uint64(st.Size))
	case unix.S_IFLNK:
		a.Size = uint64(symlinkLen)
	}
	return a
}

// unixMode converts an os.FileMode back to unix mode bits (type included).
func unixMode(m os.FileMode) uint32 {
	out := uint32(m.Perm())
	switch {
	case m&os.ModeDir != 0:
		out |= unix.S_IFDIR
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice != 0:
		out |= unix.S_IFCHR
	case m&os.ModeDevice != 0:
		out |= unix.S_IFBLK
	case m&os.ModeNamedPipe != 0:
		out |= unix.S_IFIFO
	case m&os.ModeSymlink != 0:
		out |= unix.S_IFLNK
	case m&os.ModeSocket != 0:
		out |= unix.S_IFSOCK
	default:
		out |= unix.S_IFREG
	}
	if m&os.ModeSetuid != 0 {
		out |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		out |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		out |= unix.S_ISVTX
	}
	return out
}

// symlinkTarget returns the decrypted target of symlink n.
func (fs *FS) symlinkTarget(n *inode) (string, error) {
	fs.mu.Lock()
	t, ok := n.target, n.targetOK
	fs.mu.Unlock()
	if ok {
		return t, nil
	}
	for _, l := range fs.linksOf(n) {
		pfd, err := fs.dirFd(l.parent)
		if err != nil {
			continue
		}
		stored, err := ciphertree.Readlinkat(pfd, l.lower)
		if err != nil {
			continue
		}
		t, err := fs.suite.DecryptSymlink(stored)
		if err != nil {
			return "", fs.authFailed("readlink", l.parent, l.lower, err)
		}
		fs.mu.Lock()
		n.target, n.targetOK = t, true
		fs.mu.Unlock()
		return t, nil
	}
	return "", syscall.ENOENT
}

// freshAttrs stats n's lower file and caches the result. Call with n's
// lock held (either mode), so the cached value cannot be older than a
// change that finished before.
func (fs *FS) freshAttrs(n *inode) (fuseops.InodeAttributes, error) {
	a, err := fs.lowerAttrs(n)
	if err != nil {
		return a, err
	}
	fs.cache.SetAttr(&n.Node, a)
	return a, nil
}

// lowerAttrs stats n's lower file and returns its plaintext attributes.
func (fs *FS) lowerAttrs(n *inode) (fuseops.InodeAttributes, error) {
	var st unix.Stat_t
	if err := fs.stat(n, &st); err != nil {
		return fuseops.InodeAttributes{}, err
	}
	tlen := 0
	if n.kind == unix.S_IFLNK {
		t, err := fs.symlinkTarget(n)
		if err != nil {
			return fuseops.InodeAttributes{}, err
		}
		tlen = len(t)
	}
	return fs.attrsFromStat(n, &st, tlen), nil
}

// attrs returns n's attributes, from the cache when possible. Call with
// n's lock held (either mode).
func (fs *FS) attrs(n *inode) (fuseops.InodeAttributes, error) {
	if a, ok := fs.cache.ServeAttr(&n.Node); ok {
		return a, nil
	}
	return fs.freshAttrs(n)
}

// GetInodeAttributes answers GETATTR.
func (fs *FS) GetInodeAttributes(ctx context.Context, op *fuseops.GetInodeAttributesOp) error {
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	n.RLock()
	defer n.RUnlock()
	if fs.getattrCached(n, op) {
		return nil
	}
	a, err := fs.freshAttrs(n)
	if err != nil {
		return err
	}
	op.Attributes = a
	op.AttributesExpiration = fs.cache.AttrExpiration()
	return nil
}

// getattrCached answers GETATTR of n from the cache and reports whether
// it could. Call with n's lock held (either mode).
func (fs *FS) getattrCached(n *inode, op *fuseops.GetInodeAttributesOp) bool {
	a, ok := fs.cache.ServeAttr(&n.Node)
	if !ok {
		return false
	}
	op.Attributes, op.AttributesExpiration = a, fs.cache.AttrExpiration()
	return true
}

// ReadSymlink answers READLINK.
func (fs *FS) ReadSymlink(ctx context.Context, op *fuseops.ReadSymlinkOp) error {
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	if n.kind != unix.S_IFLNK {
		return syscall.EINVAL
	}
	n.RLock()
	defer n.RUnlock()
	op.Target, err = fs.symlinkTarget(n)
	return err
}
