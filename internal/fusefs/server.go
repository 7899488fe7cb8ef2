package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
)

// Server returns the fuse.Server that dispatches the kernel's requests to
// fs: each request runs in its own goroutine (FORGETs inline, they are
// cheap and come in floods), its error reaches the kernel as a bare errno
// (jacobsa/fuse turns anything else into EIO), and a panic fails that one
// request with EIO instead of killing the mount.
func (fs *FS) Server() fuse.Server { return &server{fs: fs} }

type server struct {
	fs       *FS
	wg       sync.WaitGroup
	inflight atomic.Int32 // requests being served by goroutines of their own
}

func (s *server) ServeOps(c *fuse.Connection) {
	for {
		ctx, op, err := c.ReadOp()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.fs.log.Error().Err(err).Msg("reading a request from the kernel failed; stopping")
			break
		}
		switch op.(type) {
		case *fuseops.ForgetInodeOp, *fuseops.BatchForgetOp:
			s.handle(c, ctx, op)
			continue
		case *fuseops.GetInodeAttributesOp, *fuseops.GetXattrOp, *fuseops.LookUpInodeOp:
			start := time.Now()
			if errno, ok := s.fs.answerInline(op); ok {
				s.done(op, start, errno)
				s.reply(c, ctx, errno)
				continue
			}
		}
		if s.inflight.Load() == 0 && quick(op) {
			// Nothing else is being served: a goroutine would add a
			// hand-off and buy no parallelism.
			s.handle(c, ctx, op)
			continue
		}
		s.wg.Add(1)
		s.inflight.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.inflight.Add(-1)
			s.handle(c, ctx, op)
		}()
	}
	s.wg.Wait()
}

// quick reports whether a request is cheap enough to serve on the reader
// goroutine when nothing else is in flight: metadata requests, not data
// transfers or syncs, which may wait for the disk.
func quick(op any) bool {
	switch op.(type) {
	case *fuseops.ReadFileOp, *fuseops.WriteFileOp, *fuseops.SyncFileOp, *fuseops.FallocateOp,
		*fuseops.ReadDirOp, *fuseops.ReadDirPlusOp:
		return false
	}
	return true
}

func (s *server) handle(c *fuse.Connection, ctx context.Context, op any) {
	start := time.Now()
	errno := s.call(ctx, op)
	s.done(op, start, errno)
	s.reply(c, ctx, errno)
}

// done counts a finished request and, at debug level, logs it: opcode,
// inode, its cipher path (never a plaintext name), errno and duration.
func (s *server) done(op any, start time.Time, errno syscall.Errno) {
	d := time.Since(start)
	s.fs.stats.record(op, d, errno)
	if e := s.fs.log.Debug(); e.Enabled() {
		id := opInode(op)
		path := ""
		if n := s.fs.getInode(id); n != nil {
			path = s.fs.lowerPath(n, "")
		}
		e.Str("op", opName(op)).Uint64("inode", id).Str("path", path).
			Int("errno", int(errno)).Dur("took", d).Msg("request")
	}
}

func (s *server) reply(c *fuse.Connection, ctx context.Context, errno syscall.Errno) {
	if errno == 0 {
		c.Reply(ctx, nil)
	} else {
		c.Reply(ctx, errno)
	}
}

// call runs one request and returns the errno for the kernel; a panic
// becomes EIO for this request and an error log line with the stack.
func (s *server) call(ctx context.Context, op any) (errno syscall.Errno) {
	defer func() {
		if r := recover(); r != nil {
			s.fs.log.Error().Str("op", opName(op)).Str("panic", fmt.Sprint(r)).
				Str("stack", string(debug.Stack())).Msg("request panicked; failing it with EIO")
			errno = syscall.EIO
		}
	}()
	return s.fs.errno(op, s.dispatch(ctx, op))
}

// errno turns an operation's error into the errno the kernel gets.
func (fs *FS) errno(op any, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	fs.log.Error().Str("op", opName(op)).Err(err).Msg("request failed")
	return syscall.EIO
}

func (s *server) dispatch(ctx context.Context, op any) error {
	fs := s.fs
	switch o := op.(type) {
	case *fuseops.LookUpInodeOp:
		return fs.LookUpInode(ctx, o)
	case *fuseops.GetInodeAttributesOp:
		return fs.GetInodeAttributes(ctx, o)
	case *fuseops.SetInodeAttributesOp:
		return fs.SetInodeAttributes(ctx, o)
	case *fuseops.ForgetInodeOp:
		return fs.ForgetInode(ctx, o)
	case *fuseops.BatchForgetOp:
		return fs.BatchForget(ctx, o)
	case *fuseops.MkDirOp:
		return fs.MkDir(ctx, o)
	case *fuseops.MkNodeOp:
		return fs.MkNode(ctx, o)
	case *fuseops.CreateFileOp:
		return fs.CreateFile(ctx, o)
	case *fuseops.CreateLinkOp:
		return fs.CreateLink(ctx, o)
	case *fuseops.CreateSymlinkOp:
		return fs.CreateSymlink(ctx, o)
	case *fuseops.RenameOp:
		return fs.Rename(ctx, o)
	case *fuseops.RmDirOp:
		return fs.RmDir(ctx, o)
	case *fuseops.UnlinkOp:
		return fs.Unlink(ctx, o)
	case *fuseops.OpenDirOp:
		return fs.OpenDir(ctx, o)
	case *fuseops.ReadDirOp:
		return fs.ReadDir(ctx, o)
	case *fuseops.ReadDirPlusOp:
		return fs.ReadDirPlus(ctx, o)
	case *fuseops.ReleaseDirHandleOp:
		return fs.ReleaseDirHandle(ctx, o)
	case *fuseops.OpenFileOp:
		return fs.OpenFile(ctx, o)
	case *fuseops.ReadFileOp:
		return fs.ReadFile(ctx, o)
	case *fuseops.WriteFileOp:
		return fs.WriteFile(ctx, o)
	case *fuseops.SyncFileOp:
		return fs.SyncFile(ctx, o)
	case *fuseops.FlushFileOp:
		return fs.FlushFile(ctx, o)
	case *fuseops.ReleaseFileHandleOp:
		return fs.ReleaseFileHandle(ctx, o)
	case *fuseops.ReadSymlinkOp:
		return fs.ReadSymlink(ctx, o)
	case *fuseops.GetXattrOp:
		return fs.GetXattr(ctx, o)
	case *fuseops.ListXattrOp:
		return fs.ListXattr(ctx, o)
	case *fuseops.SetXattrOp:
		return fs.SetXattr(ctx, o)
	case *fuseops.RemoveXattrOp:
		return fs.RemoveXattr(ctx, o)
	case *fuseops.FallocateOp:
		return fs.Fallocate(ctx, o)
	case *fuseops.StatFSOp:
		return fs.StatFS(ctx, o)
	case *fuseops.SyncFSOp:
		return nil
	}
	return syscall.ENOSYS
}
