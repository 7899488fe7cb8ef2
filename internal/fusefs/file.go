package fusefs

import (
	"context"
	"errors"
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
	// Shared mode (shared.go, headerPin): the lower file's header as
	// this descriptor knows it, and whether its change was reported.
	// Guarded by FS.mu.
	pin       headerPin
	staleSeen bool
	// Shared mode (shared.go, ctimeStamp): the descriptor checks the
	// lower file's ctime, and another program changed the file while it
	// was open. Guarded by FS.mu.
	ctimePinned bool
	outdated    bool
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
	fs.pinHeader(op.Handle, fd)
	fs.pinCtime(op.Handle, n, fd)
	// In shared mode the kernel keeps the file's pages only when the
	// lower file did not change since the last open (shared.go).
	op.KeepPageCache = fs.keepPages(n, fd)
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

// contentOf loads the content state of an open file (a value: it stays on
// the caller's stack). Call with the inode lock held: shared for "read",
// exclusive for every other op, which may change the file.
//
// The file ID comes from the inode's header cache when the lower file's
// stat has not moved since its header was read (a READ then costs one
// pread, its block's). An op that may change the file empties the cache
// first: under the exclusive lock no reader can refill it before the
// change is done. In shared mode the header is read every time, since
// another program may rewrite the file (checkHeader).
func (fs *FS) contentOf(op string, h *handle) (c ciphertree.Content, err error) {
	if fs.shared {
		err = ciphertree.LoadContent(&c, fs.suite, h.fd)
	} else {
		err = ciphertree.LoadContentCached(&c, fs.suite, h.fd, &h.n.header)
		if op != "read" {
			h.n.header.Forget()
		}
	}
	if err != nil {
		var e syscall.Errno
		if errors.As(err, &e) {
			return c, err
		}
		// A header that does not parse (damaged, or a format version
		// this daemon does not read): EIO and one line naming the file.
		return c, fs.authFailed(op, h.n, "", err)
	}
	if err := fs.checkHeader(op, h, &c); err != nil {
		return c, err
	}
	if err := fs.checkCtime(op, h); err != nil {
		return c, err
	}
	return c, nil
}

// contentFailed turns an error of the content engine into the request's:
// data that fails authentication (or a lower file shorter than its size
// says) is EIO plus the one log line naming the file; a failed growth
// whose undoing failed too (ciphertree.ErrUndo) keeps its errno for the
// caller and is logged as an error, since the file may have changed.
func (fs *FS) contentFailed(op string, n *inode, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, crypt.ErrAuth) || errors.Is(err, ciphertree.ErrShort):
		return fs.authFailed(op, n, "", err)
	case errors.Is(err, ciphertree.ErrUndo):
		fs.log.Error().Str("op", op).Uint64("inode", n.ID).Str("path", fs.lowerPath(n, "")).Err(err).
			Msg("a failed change could not be undone: the file may be longer than before or its last block unreadable")
	}
	return err
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
		return fs.contentFailed("read", h.n, err)
	}
	op.BytesRead = n
	fs.touchAtime(h)
	return nil
}

// touchAtime updates the atime after a read as relatime does: when it is
// not newer than mtime or ctime, or over a day old. Lower files are open
// with O_NOATIME, so this is the only way a read moves the atime.
//
// Not in shared mode (noatime): a read through the mount must not change
// the cipher file (utimensat also moves its ctime), or every read would
// wake the sync client watching the tree.
func (fs *FS) touchAtime(h *handle) {
	if fs.shared {
		return
	}
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
	before := pinOf(&c)
	err = c.WriteAt(op.Data, uint64(op.Offset))
	fs.repinHeader(h.n, before, &c)
	fs.ownChanged(h.n, h.fd)
	fs.cache.ChangedAttr(&h.n.Node)
	return fs.contentFailed("write", h.n, err)
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
	before := pinOf(&c)
	err = c.Allocate(op.Offset, op.Length, op.Mode == unix.FALLOC_FL_KEEP_SIZE)
	fs.repinHeader(h.n, before, &c)
	fs.ownChanged(h.n, h.fd)
	fs.cache.ChangedAttr(&h.n.Node)
	return fs.contentFailed("fallocate", h.n, err)
}
