package fusefs

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// SetInodeAttributes handles chmod, chown, utimens and truncate.
func (fs *FS) SetInodeAttributes(ctx context.Context, op *fuseops.SetInodeAttributesOp) error {
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	if fs.readOnly {
		return syscall.EROFS
	}
	n.Lock()
	defer n.Unlock()
	var h *handle
	if op.Handle != nil {
		h, _ = fs.fileHandle(*op.Handle)
	}
	// The reply carries the new attributes; in the ebpf tier they are
	// republished as well (changedAttr), so a chown, chmod or utimes (three
	// per file in an untar) does not leave the next GETATTR to the daemon.
	defer fs.changedAttr(n)

	if op.Size != nil {
		if err := fs.truncate(n, h, *op.Size); err != nil {
			return err
		}
	}
	if op.Mode != nil || op.Uid != nil || op.Gid != nil || op.Atime != nil || op.Mtime != nil {
		if err := fs.changeAttrs(ctx, n, h, op); err != nil {
			if errors.Is(err, syscall.ENOENT) && op.Mode == nil && op.Uid == nil && op.Gid == nil && op.Size == nil {
				// Times on an unlinked inode (the writeback cache
				// flushing mtime after unlink): nothing left to stamp.
				a, _ := fs.cache.Attr(&n.Node)
				op.Attributes, op.AttributesExpiration = a, time.Time{}
				return nil
			}
			return err
		}
	}
	a, err := fs.freshAttrs(n)
	if err != nil {
		return err
	}
	// A truncate by a caller without CAP_FSETID, or a chown (which the
	// lower file system may already have handled). An explicit chmod in
	// the same request has the last word. The reply's stat gives the
	// mode; only a change needs another.
	if op.KillSuidgid && op.Mode == nil {
		killed, err := fs.killSuidgid(n, h, unixMode(a.Mode))
		if err != nil {
			return err
		}
		if killed {
			if a, err = fs.freshAttrs(n); err != nil {
				return err
			}
		}
	}
	op.Attributes = a
	op.AttributesExpiration = fs.cache.AttrExpiration()
	return nil
}

// killSuidgid clears the set-user-ID bit of regular file n, and its
// set-group-ID bit where group execution is allowed, as a local file system
// does when a caller without CAP_FSETID writes or truncates, and when
// anyone chowns a file. The daemon negotiates FUSE_HANDLE_KILLPRIV_V2, so
// the kernel leaves this to it and says in the request when (WRITE and
// SETATTR; atomic O_TRUNC is not negotiated, so OPEN never asks). A
// set-group-ID bit without group execute is a mandatory-locking mark and
// stays: the rule FUSE has always applied, as the daemon does not know the
// caller's groups. mode is n's current mode, from a lower stat the caller
// took. It reports whether the mode changed. Call with n's lock held.
func (fs *FS) killSuidgid(n *inode, h *handle, mode uint32) (bool, error) {
	mode &= 0o7777
	kill := mode & unix.S_ISUID
	if mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP {
		kill |= unix.S_ISGID
	}
	if n.kind != unix.S_IFREG || kill == 0 {
		return false, nil
	}
	fd, release, err := fs.lowerFd(n, h)
	if err != nil {
		return false, err
	}
	fs.ownChanging(n, fd)
	err = chmodFd(fd, mode&^kill)
	fs.ownChanged(n, fd)
	release()
	if err != nil {
		return false, err
	}
	fs.cache.ChangedAttr(&n.Node)
	return true, nil
}

// changeAttrs applies the mode, owner and times of op to n's lower inode,
// through a descriptor whose identity was checked (lowerFd). The root's
// mode is stored apart (rootmode.go). Call with n's lock held.
//
// The kernel has checked the caller's permission (default_permissions)
// against the attributes the daemon reported. For a mode or owner change
// by a caller other than root, a root daemon also checks that the caller
// owns the very inode it is about to change, as the kernel does on a local
// file system: if the lower inode behind n's name is no longer the file
// the kernel saw (its number reused by another file after a change behind
// the daemon's back), the change is refused (EPERM) instead of landing on
// someone else's file. (A caller with CAP_FOWNER or CAP_CHOWN but another
// uid is refused too: FUSE does not tell the daemon its capabilities.)
func (fs *FS) changeAttrs(ctx context.Context, n *inode, h *handle, op *fuseops.SetInodeAttributesOp) error {
	if n.ID == rootID && op.Mode != nil {
		if err := fs.setRootMode(unixMode(*op.Mode) & 0o7777); err != nil {
			return err
		}
		if op.Uid == nil && op.Gid == nil && op.Atime == nil && op.Mtime == nil {
			return nil
		}
		op2 := *op
		op2.Mode = nil
		op = &op2
	}
	fd, release, err := fs.lowerFd(n, h)
	if err != nil {
		return err
	}
	defer release()
	fs.ownChanging(n, fd)
	defer fs.ownChanged(n, fd) // the ctime moved (shared mode)
	if fs.asRoot && (op.Mode != nil || op.Uid != nil || op.Gid != nil) {
		if uid, _ := caller(ctx); uid != 0 {
			var st unix.Stat_t
			if err := ciphertree.Fstat(fd, &st); err != nil {
				return err
			}
			if st.Uid != uid {
				fs.log.Warn().Str("op", "setattr").Uint64("inode", n.ID).Str("path", fs.lowerPath(n, "")).
					Uint32("caller", uid).Uint32("owner", st.Uid).Msg("refusing a mode or owner change: the lower inode is not the caller's (changed behind the daemon's back?)")
				return syscall.EPERM
			}
		}
	}
	if op.Mode != nil && n.kind != unix.S_IFLNK {
		if err := chmodFd(fd, uint32(op.Mode.Perm())|unixMode(*op.Mode)&0o7000); err != nil {
			return err
		}
	}
	if op.Uid != nil || op.Gid != nil {
		uid, gid := -1, -1
		if op.Uid != nil {
			uid = int(*op.Uid)
		}
		if op.Gid != nil {
			gid = int(*op.Gid)
		}
		if err := chownFd(fd, uid, gid); err != nil {
			return err
		}
	}
	if op.Atime != nil || op.Mtime != nil {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if op.Atime != nil {
			ts[0] = unix.NsecToTimespec(op.Atime.UnixNano())
		}
		if op.Mtime != nil {
			ts[1] = unix.NsecToTimespec(op.Mtime.UnixNano())
		}
		if err := utimesFd(fd, ts); err != nil {
			return err
		}
	}
	return nil
}

// truncate changes the plaintext size of a regular file.
func (fs *FS) truncate(n *inode, h *handle, size uint64) error {
	if n.kind == unix.S_IFDIR {
		return syscall.EISDIR
	}
	if n.kind != unix.S_IFREG {
		return syscall.EINVAL
	}
	fd := -1
	if h != nil && h.writable {
		fd = h.fd
	} else {
		var err error
		if fd, err = fs.open(n, unix.O_RDWR); err != nil {
			return err
		}
		defer unix.Close(fd)
	}
	fs.ownChanging(n, fd)
	c, err := fs.contentOf("truncate", &handle{n: n, fd: fd})
	if err != nil {
		return err
	}
	before := pinOf(&c)
	err = c.Truncate(size)
	fs.repinHeader(n, before, &c)
	fs.ownChanged(n, fd)
	return fs.contentFailed("truncate", n, err)
}
