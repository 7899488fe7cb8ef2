package fusefs

import (
	"context"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Rename moves a name, replacing an existing target as rename(2) does.
func (fs *FS) Rename(ctx context.Context, op *fuseops.RenameOp) error {
	if fs.readOnly {
		return syscall.EROFS
	}
	op1, err := fs.dirOf(op.OldParent)
	if err != nil {
		return err
	}
	np, err := fs.dirOf(op.NewParent)
	if err != nil {
		return err
	}
	// Lock both directories in ID order.
	switch {
	case op1 == np:
		op1.Lock()
		defer op1.Unlock()
	case op1.ID < np.ID:
		op1.Lock()
		np.Lock()
		defer op1.Unlock()
		defer np.Unlock()
	default:
		np.Lock()
		op1.Lock()
		defer np.Unlock()
		defer op1.Unlock()
	}
	oldName, err := fs.lowerName(op1, op.OldName)
	if err != nil {
		return err
	}
	newName, err := fs.lowerName(np, op.NewName)
	if err != nil {
		return err
	}
	oldLower := oldName.Lower
	newLower, newEnc, newLong := newName.Lower, newName.Encoded, newName.Long
	opfd, err := fs.dirFd(op1)
	if err != nil {
		return err
	}
	npfd, err := fs.dirFd(np)
	if err != nil {
		return err
	}
	var src, dst unix.Stat_t
	if err := unix.Fstatat(opfd, oldLower, &src, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	dstExists := true
	if err := unix.Fstatat(npfd, newLower, &dst, unix.AT_SYMLINK_NOFOLLOW); err == unix.ENOENT {
		dstExists = false
	} else if err != nil {
		return err
	}
	if dstExists && dst.Ino == src.Ino && dst.Dev == src.Dev {
		return nil // same file: rename(2) does nothing
	}
	srcDir := src.Mode&unix.S_IFMT == unix.S_IFDIR
	if dstExists {
		dstDir := dst.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case srcDir && !dstDir:
			return syscall.ENOTDIR
		case !srcDir && dstDir:
			return syscall.EISDIR
		case dstDir:
			if err := fs.emptyDirForRemoval(npfd, newLower); err != nil {
				return err
			}
		}
	}
	if newLong {
		if err := ciphertree.WriteSidecar(npfd, newLower, newEnc); err != nil {
			return fs.internalFailed("rename", np, crypt.SidecarName(newLower), err)
		}
	}
	// The ctimes of the file and of the one it replaces move: not
	// another program's change for their open descriptors (shared mode).
	var ownSrc, ownDst *inode
	if fs.shared {
		ownSrc = fs.known(&src)
		if dstExists {
			ownDst = fs.known(&dst)
		}
	}
	fs.ownBegin(ownSrc)
	fs.ownBegin(ownDst)
	err = unix.Renameat(opfd, oldLower, npfd, newLower)
	fs.ownEnd(ownSrc)
	fs.ownEnd(ownDst)
	if err != nil {
		if newLong && !dstExists {
			fs.removeSidecar(npfd, newLower)
		}
		return err
	}
	if op1 != np || oldLower != newLower {
		fs.dropSidecar(opfd, oldLower) // conflict.go
	}

	if dstExists {
		if t := fs.known(&dst); t != nil {
			fs.removeLink(t, np, newLower)
			if dst.Mode&unix.S_IFMT == unix.S_IFDIR || dst.Nlink <= 1 {
				fs.markDead(t)
			}
			t.Lock()
			fs.cache.ChangedAttr(&t.Node)
			if t.isDir() {
				fs.cache.ForgetChildren(&t.Node)
			}
			t.Unlock()
		}
	}
	if s := fs.known(&src); s != nil {
		fs.moveLink(s, op1, oldLower, link{parent: np, lower: newLower, plain: op.NewName})
		s.Lock()
		fs.changedAttr(s) // ctime
		s.Unlock()
	}
	fs.cache.SetChild(&op1.Node, op.OldName, 0, 0)
	fs.cache.ChangedChild(&np.Node, op.NewName)
	fs.changedAttr(op1)
	if np != op1 {
		fs.changedAttr(np)
	}
	return nil
}
