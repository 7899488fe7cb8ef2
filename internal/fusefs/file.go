package fusefs

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// handle is an open regular file: a descriptor of the lower file.
type handle struct {
	n        *inode
	fd       int
	writable bool
}

// lowerOpenFlags maps the flags of an open(2) through the mount to the
// lower open: always read access (partial-block writes and the kernel's
// writeback cache read), never O_APPEND (the kernel passes offsets), never
// O_TRUNC (sent as SETATTR), never O_CREAT here.
func lowerOpenFlags(flags int) int {
	if flags&unix.O_ACCMODE == unix.O_RDONLY {
		return unix.O_RDONLY
	}
	return unix.O_RDWR
}

func (fs *FS) addFileHandle(n *inode, fd int, writable bool) fuseops.HandleID {
	h := &handle{n: n, fd: fd, writable: writable}
	fs.mu.Lock()
	if n.handles == nil {
		n.handles = make(map[*handle]struct{})
	}
	n.handles[h] = struct{}{}
	fs.mu.Unlock()
	return fs.addHandle(h)
}

func (fs *FS) fileHandle(id fuseops.HandleID) (*handle, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h, ok := fs.handles[id].(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	return h, nil
}

// CreateFile creates and opens a regular file. An empty plaintext file is
// an empty lower file: the header is written with the first byte.
func (fs *FS) CreateFile(ctx context.Context, op *fuseops.CreateFileOp) (err error) {
	c, err := fs.beginCreate(op.Parent, op.Name)
	if err != nil {
		return err
	}
	defer func() { fs.endCreate(c, err) }()
	fd, err := ciphertree.Openat(c.pfd, c.lower, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, unixMode(op.Mode)&0o7777)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err = fs.chownNew(ctx, c, unixMode(op.Mode)); err == nil {
		err = ciphertree.Fstat(fd, &st)
	}
	if err != nil {
		unix.Close(fd)
		unix.Unlinkat(c.pfd, c.lower, 0)
		return err
	}
	child := fs.remember(c.p, c.lower, op.Name, &st, -1, true, true)
	if err = fs.entry(c.p, op.Name, child, &seen{st: st, fresh: true}, &op.Entry); err != nil {
		unix.Close(fd)
		return err
	}
	op.Handle = fs.addFileHandle(child, fd, true)
	return nil
}

// OpenFile opens the lower file.
func (fs *FS) OpenFile(ctx context.Context, op *fuseops.OpenFileOp) error {
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	if n.kind != unix.S_IFREG {
		return syscall.EINVAL
	}
	want := lowerOpenFlags(int(op.OpenFlags))
	if want != unix.O_RDONLY && fs.readOnly {
		return syscall.EROFS
	}
	flags := unix.O_RDWR
	if fs.readOnly {
		flags = unix.O_RDONLY
	}
	fd, err := fs.open(n, flags)
	if (err == syscall.EACCES || err == syscall.EROFS) && want == unix.O_RDONLY {
		// A lower file the daemon may not write (not its owner, or the
		// lower file system is read-only): reading is still fine.
		fd, err = fs.open(n, unix.O_RDONLY)
		flags = unix.O_RDONLY
	}
	if err != nil {
		return err
	}
	op.Handle = fs.addFileHandle(n, fd, flags == unix.O_RDWR)
	op.KeepPageCache = true
	return nil
}

// ReleaseFileHandle closes the lower file.
func (fs *FS) ReleaseFileHandle(ctx context.Context, op *fuseops.ReleaseFileHandleOp) error {
	fs.mu.Lock()
	h, ok := fs.handles[op.Handle].(*handle)
	if ok {
		delete(fs.handles, op.Handle)
		delete(h.n.handles, h)
		if len(h.n.handles) == 0 {
			h.n.handles = nil // an empty map still holds its buckets
		}
	}
	fs.mu.Unlock()
	if !ok {
		return syscall.EBADF
	}
	err := unix.Close(h.fd)
	fs.mu.Lock()
	fs.maybeFreeLocked(h.n)
	fs.mu.Unlock()
	return err
}

// contentOf loads the content state of an open file. Call with the inode
// lock held.
func (fs *FS) contentOf(op string, h *handle) (*ciphertree.Content, error) {
	c, err := ciphertree.OpenContent(fs.suite, h.fd)
	if err != nil {
		var e syscall.Errno
		if errors.As(err, &e) {
			return nil, err
		}
		// A header that does not parse (damaged, or a format version
		// this daemon does not read): EIO and one line naming the file.
		return nil, fs.authFailed(op, h.n, "", err)
	}
	return c, nil
}

// ReadFile decrypts the requested range.
func (fs *FS) ReadFile(ctx context.Context, op *fuseops.ReadFileOp) error {
	h, err := fs.fileHandle(op.Handle)
	if err != nil {
		return err
	}
	h.n.RLock()
	defer h.n.RUnlock()
	c, err := fs.contentOf("read", h)
	if err != nil {
		return err
	}
	n, err := c.ReadAt(op.Dst[:min(len(op.Dst), int(op.Size))], uint64(op.Offset))
	if err != nil {
		if errors.Is(err, crypt.ErrAuth) || errors.Is(err, ciphertree.ErrShort) {
			return fs.authFailed("read", h.n, "", err)
		}
		return err
	}
	op.BytesRead = n
	fs.touchAtime(h)
	return nil
}

// touchAtime updates the atime after a read as relatime does: when it is
// not newer than mtime or ctime, or over a day old. Lower files are open
// with O_NOATIME, so this is the only way a read moves the atime.
func (fs *FS) touchAtime(h *handle) {
	a, err := fs.attrs(h.n)
	if err != nil {
		return
	}
	// relatime: update when atime is not after mtime, before ctime, or a
	// day old. (ctime equal to atime is what this very update leaves, as
	// utimensat also sets ctime; the kernel's own atime updates do not.)
	if a.Atime.After(a.Mtime) && !a.Atime.Before(a.Ctime) && time.Since(a.Atime) < 24*time.Hour {
		return
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_OMIT}}
	if unix.UtimesNanoAt(unix.AT_FDCWD, ciphertree.ProcFd(h.fd), ts, 0) == nil {
		// The kernel drops its cached atime after every read it sends
		// (fuse_invalidate_atime), so no notification is needed.
		fs.cache.ChangedAttr(&h.n.Node)
	}
}

// WriteFile encrypts and writes the data.
func (fs *FS) WriteFile(ctx context.Context, op *fuseops.WriteFileOp) error {
	if fs.readOnly {
		return syscall.EROFS
	}
	h, err := fs.fileHandle(op.Handle)
	if err != nil {
		return err
	}
	if !h.writable {
		return syscall.EBADF
	}
	h.n.Lock()
	defer h.n.Unlock()
	if op.KillSuidgid {
		var st unix.Stat_t
		if err := ciphertree.Fstat(h.fd, &st); err != nil {
			return err
		}
		killed, err := fs.killSuidgid(h.n, h, st.Mode)
		if err != nil {
			return err
		}
		if killed {
			// The reply to a WRITE carries no attributes: the kernel
			// must not keep the set-ID bits it cached.
			defer fs.cache.RevokeAttr(&h.n.Node)
		}
	}
	c, err := fs.contentOf("write", h)
	if err != nil {
		return err
	}
	err = c.WriteAt(op.Data, uint64(op.Offset))
	fs.cache.ChangedAttr(&h.n.Node)
	if errors.Is(err, crypt.ErrAuth) || errors.Is(err, ciphertree.ErrShort) {
		return fs.authFailed("write", h.n, "", err)
	}
	return err
}

// SyncFile flushes the lower file (or directory: FSYNCDIR arrives here
// too) to stable storage.
func (fs *FS) SyncFile(ctx context.Context, op *fuseops.SyncFileOp) error {
	fs.mu.Lock()
	h := fs.handles[op.Handle]
	fs.mu.Unlock()
	// What the program makes durable must stay decryptable.
	if err := fs.ivs.flush(); err != nil {
		return err
	}
	switch h := h.(type) {
	case *handle:
		return unix.Fsync(h.fd)
	case *dirHandle:
		fd, err := fs.open(h.n, unix.O_RDONLY)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fsync(fd)
	}
	return syscall.EBADF
}

// FlushFile has nothing to do: writes reach the lower file as they come.
// It answers ENOSYS, which makes the kernel stop sending FLUSH on every
// close(2) of the mount (one request fewer per file opened): the kernel
// still writes dirty pages back and reports their errors at close before
// it would have sent the FLUSH (fuse_flush).
func (fs *FS) FlushFile(ctx context.Context, op *fuseops.FlushFileOp) error {
	return syscall.ENOSYS
}

// Fallocate supports plain allocation and FALLOC_FL_KEEP_SIZE.
func (fs *FS) Fallocate(ctx context.Context, op *fuseops.FallocateOp) error {
	if fs.readOnly {
		return syscall.EROFS
	}
	if op.Mode != 0 && op.Mode != unix.FALLOC_FL_KEEP_SIZE {
		return syscall.EOPNOTSUPP
	}
	h, err := fs.fileHandle(op.Handle)
	if err != nil {
		return err
	}
	h.n.Lock()
	defer h.n.Unlock()
	c, err := fs.contentOf("fallocate", h)
	if err != nil {
		return err
	}
	err = c.Allocate(op.Offset, op.Length, op.Mode == unix.FALLOC_FL_KEEP_SIZE)
	fs.cache.ChangedAttr(&h.n.Node)
	if errors.Is(err, crypt.ErrAuth) || errors.Is(err, ciphertree.ErrShort) {
		return fs.authFailed("fallocate", h.n, "", err)
	}
	return err
}

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
	defer fs.cache.ChangedAttr(&n.Node)

	if op.Size != nil {
		if err := fs.truncate(n, h, *op.Size); err != nil {
			return err
		}
	}
	if op.Mode != nil || op.Uid != nil || op.Gid != nil || op.Atime != nil || op.Mtime != nil {
		err := fs.withLower(n, h, op.Mode != nil, func(dirfd int, name string, flags int) error {
			if op.Mode != nil && n.kind != unix.S_IFLNK {
				if err := unix.Fchmodat(dirfd, name, uint32(op.Mode.Perm())|unixMode(*op.Mode)&0o7000, flags); err != nil {
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
				if err := unix.Fchownat(dirfd, name, uid, gid, flags); err != nil {
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
				if err := unix.UtimesNanoAt(dirfd, name, ts, flags); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
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
	err := fs.withLower(n, h, true, func(dirfd int, name string, flags int) error {
		return unix.Fchmodat(dirfd, name, mode&^kill, flags)
	})
	if err != nil {
		return false, err
	}
	fs.cache.ChangedAttr(&n.Node)
	return true, nil
}

// withLower runs fn on n's lower inode, named so that nothing in the lower
// tree is followed: (directory fd, name, AT_SYMLINK_NOFOLLOW) where the
// call has that flag, or a /proc/self/fd path of a descriptor of the inode
// (which the kernel resolves to exactly that inode) for chmod where the
// kernel has no fchmodat2 (before Linux 6.6: fchmodat takes no flags).
// Symlinks themselves cannot be chmod'ed.
func (fs *FS) withLower(n *inode, h *handle, chmod bool, fn func(dirfd int, name string, flags int) error) error {
	if h != nil {
		return fn(unix.AT_FDCWD, ciphertree.ProcFd(h.fd), 0)
	}
	if n.isDir() {
		fd, err := fs.dirFd(n)
		if err != nil {
			return err
		}
		return fn(unix.AT_FDCWD, ciphertree.ProcFd(fd), 0)
	}
	if !chmod || n.kind == unix.S_IFLNK || haveFchmodat2() {
		for _, l := range fs.linksOf(n) {
			if pfd, err := fs.dirFd(l.parent); err == nil {
				return fn(pfd, l.lower, unix.AT_SYMLINK_NOFOLLOW)
			}
		}
	}
	fd, err := fs.open(n, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(unix.AT_FDCWD, ciphertree.ProcFd(fd), 0)
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
	c, err := fs.contentOf("truncate", &handle{n: n, fd: fd})
	if err != nil {
		return err
	}
	if err := c.Truncate(size); err != nil {
		if errors.Is(err, crypt.ErrAuth) || errors.Is(err, ciphertree.ErrShort) {
			return fs.authFailed("truncate", n, "", err)
		}
		return err
	}
	return nil
}

// haveFchmodat2 reports whether the kernel has fchmodat2, which takes
// AT_SYMLINK_NOFOLLOW: chmod by (directory, name) then needs no O_PATH
// descriptor of its own (an open, an fstat and a close per chmod, three
// of an untar's nineteen lower system calls per entry).
var haveFchmodat2 = sync.OnceValue(func() bool {
	// An empty path: ENOENT from fchmodat2, ENOSYS without it (which
	// x/sys reports as EOPNOTSUPP). Nothing is changed either way.
	err := unix.Fchmodat(unix.AT_FDCWD, "", 0, unix.AT_SYMLINK_NOFOLLOW)
	return err != unix.EOPNOTSUPP && err != unix.ENOSYS
})
