package fusefs

import (
	"context"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Unlink removes a name.
func (fs *FS) Unlink(ctx context.Context, op *fuseops.UnlinkOp) error {
	return fs.remove(op.Parent, op.Name, false)
}

// RmDir removes an empty directory (empty in the plaintext view: its IV
// file and stale sidecars go with it).
func (fs *FS) RmDir(ctx context.Context, op *fuseops.RmDirOp) error {
	return fs.remove(op.Parent, op.Name, true)
}

func (fs *FS) remove(parent fuseops.InodeID, name string, dir bool) error {
	if fs.readOnly {
		return syscall.EROFS
	}
	p, err := fs.dirOf(parent)
	if err != nil {
		return err
	}
	p.Lock()
	defer p.Unlock()
	ln, err := fs.lowerName(p, name)
	if err != nil {
		return err
	}
	lower := ln.Lower
	pfd, err := fs.dirFd(p)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, lower, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if dir {
		if !isDir {
			return syscall.ENOTDIR
		}
		if err := fs.emptyDirForRemoval(pfd, lower); err != nil {
			return err
		}
		if err := unix.Unlinkat(pfd, lower, unix.AT_REMOVEDIR); err != nil {
			return err
		}
	} else {
		if isDir {
			return syscall.EISDIR
		}
		// The ctime of the file moves: not another program's change
		// for its open descriptors (shared mode).
		var own *inode
		if fs.shared {
			own = fs.known(&st)
		}
		fs.ownBegin(own)
		err := unix.Unlinkat(pfd, lower, 0)
		fs.ownEnd(own)
		if err != nil {
			return err
		}
	}
	fs.dropSidecar(pfd, lower) // conflict.go
	if child := fs.known(&st); child != nil {
		fs.removeLink(child, p, lower)
		if isDir || st.Nlink <= 1 {
			fs.markDead(child)
		}
		child.Lock()
		if isDir || st.Nlink <= 1 {
			fs.cache.ChangedAttr(&child.Node)
		} else {
			fs.changedAttr(child) // another name still leads to it
		}
		if dir {
			fs.cache.ForgetChildren(&child.Node)
		}
		child.Unlock()
	}
	fs.changedAttr(p)
	fs.cache.SetChild(&p.Node, name, 0, 0)
	return nil
}

// emptyDirForRemoval checks that a lower directory holds no user entries
// and deletes cryptfs's internal files from it.
func (fs *FS) emptyDirForRemoval(pfd int, lname string) error {
	dfd, err := openDirAt(pfd, lname, nil)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	empty, err := ciphertree.IsEmpty(dfd, false)
	if err != nil {
		return err
	}
	if !empty {
		return syscall.ENOTEMPTY
	}
	return ciphertree.RemoveInternal(dfd)
}
