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

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// Server returns the fuse.Server that dispatches the kernel's requests to
// fs through opTable: cheap requests are answered on the goroutine that
// read them (from the metadata cache where it can, see fast.go; FORGETs
// always), the others in goroutines of their own; each error reaches the
// kernel as a bare errno (jacobsa/fuse turns anything else into EIO), and
// a panic fails that one request with EIO instead of killing the mount.
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
		d := describe(op)
		if d.where == onReader {
			s.handle(c, ctx, op, d)
			continue
		}
		if d.cached != nil {
			start := time.Now()
			if errno, ok := d.cached(s.fs, op); ok {
				s.done(op, d, start, errno)
				s.reply(c, ctx, errno)
				continue
			}
		}
		if d.where == quick && s.inflight.Load() == 0 {
			// Nothing else is being served: a goroutine would add a
			// hand-off and buy no parallelism.
			s.handle(c, ctx, op, d)
			continue
		}
		s.wg.Add(1)
		s.inflight.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.inflight.Add(-1)
			s.handle(c, ctx, op, d)
		}()
	}
	s.wg.Wait()
}

func (s *server) handle(c *fuse.Connection, ctx context.Context, op any, d *opDesc) {
	start := time.Now()
	errno := s.call(ctx, op, d)
	s.done(op, d, start, errno)
	s.reply(c, ctx, errno)
}

// done counts a finished request and, at debug level, logs it: opcode,
// inode, its cipher path (never a plaintext name), errno and duration.
func (s *server) done(op any, d *opDesc, start time.Time, errno syscall.Errno) {
	took := time.Since(start)
	s.fs.stats.record(d.code, took, errno)
	if e := s.fs.log.Debug(); e.Enabled() {
		var id uint64
		if d.inode != nil {
			id = d.inode(op)
		}
		path := ""
		if n := s.fs.getInode(id); n != nil {
			path = s.fs.lowerPath(n, "")
		}
		e.Str("op", d.code.String()).Uint64("inode", id).Str("path", path).
			Int("errno", int(errno)).Dur("took", took).Msg("request")
	}
}

func (s *server) reply(c *fuse.Connection, ctx context.Context, errno syscall.Errno) {
	if errno == 0 {
		c.Reply(ctx, nil)
	} else {
		c.Reply(ctx, errno)
	}
}

// call runs one request's handler and returns the errno for the kernel;
// a panic becomes EIO for this request and an error log line with the
// stack.
func (s *server) call(ctx context.Context, op any, d *opDesc) (errno syscall.Errno) {
	defer func() {
		if r := recover(); r != nil {
			s.fs.log.Error().Str("op", d.code.String()).Str("panic", fmt.Sprint(r)).
				Str("stack", string(debug.Stack())).Msg("request panicked; failing it with EIO")
			errno = syscall.EIO
		}
	}()
	return s.fs.errno(d.code, d.serve(s.fs, ctx, op))
}

// errno turns an operation's error into the errno the kernel gets.
func (fs *FS) errno(code fuseop.Opcode, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	fs.log.Error().Str("op", code.String()).Err(err).Msg("request failed")
	return syscall.EIO
}
