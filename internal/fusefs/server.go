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
// fs through opTable: cheap requests (metadata, and reads and writes of at
// most smallIO bytes) are answered on the goroutine that read them when
// nothing else is being served (from the metadata cache where it can, see
// fast.go; FORGETs always), the others in goroutines of their own; each
// error reaches the kernel as a bare errno (jacobsa/fuse turns anything
// else into EIO), and a panic fails that one request with EIO instead of
// killing the mount.
//
// A request the reader serves itself may touch the lower directory, and
// lower I/O can stall (a hung network file system, a disk spinning up):
// the reader must never keep every other request waiting for it. If such
// a request has not finished after stallAfter, a new reader takes over
// the connection, and the old one stops reading once it has answered its
// request (see reader).
//
// With FUSE over io_uring (fuse.TransportURing) jacobsa/fuse calls
// ServeOps once per CPU queue, each on a goroutine locked to a thread
// pinned to that CPU, and once for /dev/fuse (FORGETs): each call is a
// reader of its own with its own count of requests in flight, so that a
// queue serves its cheap requests on its CPU whatever the other queues
// do. A queue can only be read by the goroutine ServeOps was called on
// (the ring is single-issuer): no reader takes over a stalled queue, and
// a request stalled in the lower file system holds up the later requests
// sent from that CPU (those of the other CPUs go on) until it returns.
func (fs *FS) Server() fuse.Server { return &server{fs: fs} }

// stallAfter is how long a request served on the reader goroutine may
// take before another reader takes over. Metadata requests take
// microseconds; a cold lower stat on a spinning disk a few milliseconds.
var stallAfter = 50 * time.Millisecond

type server struct {
	fs *FS
	// wg counts requests served in goroutines of their own and requests
	// of readers that were replaced while serving them, of every
	// ServeOps call (they return together, once the connection ends).
	wg     sync.WaitGroup
	stalls atomic.Int64 // stalled requests on a reader so far
}

// reader reads the requests of one ServeOps call's connection. Exactly one
// goroutine (the current reader) calls ReadOp at a time: the one ServeOps
// runs on, then each that took over from a stalled one.
type reader struct {
	s *server
	c *fuse.Connection
	// queue is the io_uring queue c reads (-1 for /dev/fuse). A queue is
	// read only by the goroutine ServeOps was called on: never taken over.
	queue int
	// inflight counts the requests of this connection being served off
	// the current reader (in goroutines of their own, or stalled).
	inflight atomic.Int32
	eof      chan struct{} // closed by the reader that saw the connection end
	// inline is the sequence number of the request the current reader
	// is serving itself, 0 while it is not serving one. Whoever swaps
	// it to 0 decides: the reader when it finishes in time, the timer
	// when the request stalled (and a new reader takes over).
	inline atomic.Uint64
	seq    uint64 // touched by the current reader only
	timer  *time.Timer
}

func (s *server) ServeOps(c *fuse.Connection) {
	r := &reader{s: s, c: c, queue: c.Queue(), eof: make(chan struct{})}
	r.timer = time.AfterFunc(time.Hour, r.stalled)
	r.timer.Stop()
	r.loop()
	<-r.eof // when this goroutine was replaced, the last reader closes it
	r.timer.Stop()
	s.wg.Wait()
}

// loop reads and dispatches requests until the connection ends (it then
// closes eof) or until another reader took over.
func (r *reader) loop() {
	s := r.s
	for {
		ctx, op, err := r.c.ReadOp()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.fs.log.Error().Err(err).Msg("reading a request from the kernel failed; stopping")
			break
		}
		d := describe(op)
		if d.where == onReader {
			if !r.serveHere(ctx, op, d) {
				return
			}
			continue
		}
		if d.cached != nil {
			start := time.Now()
			if errno, ok := d.cached(s.fs, op); ok {
				s.done(op, d, start, errno)
				s.reply(r.c, ctx, errno)
				continue
			}
		}
		if d.quickFor(op) && r.inflight.Load() == 0 {
			// Nothing else is being served: a goroutine would add a
			// hand-off and buy no parallelism.
			if !r.serveHere(ctx, op, d) {
				return
			}
			continue
		}
		s.wg.Add(1)
		r.inflight.Add(1)
		go func() {
			defer s.wg.Done()
			defer r.inflight.Add(-1)
			s.handle(r.c, ctx, op, d)
		}()
	}
	close(r.eof)
}

// serveHere serves a request on the reader goroutine, watched by the
// stall timer. It reports whether this goroutine is still the reader.
func (r *reader) serveHere(ctx context.Context, op any, d *opDesc) bool {
	r.seq++
	seq := r.seq
	r.inline.Store(seq)
	r.timer.Reset(stallAfter)
	r.s.handle(r.c, ctx, op, d)
	if r.inline.CompareAndSwap(seq, 0) {
		r.timer.Stop()
		return true
	}
	// Replaced while serving: the request is answered, the new reader
	// reads on; stalled counted this request for us.
	r.inflight.Add(-1)
	r.s.wg.Done()
	return false
}

// stalled runs when a request served on the reader has taken stallAfter:
// it makes that request an ordinary one in flight (so that the next
// reader hands cheap requests to goroutines while it is stuck) and starts
// a new reader. An io_uring queue cannot change readers: it only says so.
func (r *reader) stalled() {
	seq := r.inline.Load()
	if seq == 0 {
		return // finished in time after all
	}
	if r.queue < 0 {
		// Count the request in flight before claiming it: once the swap
		// succeeds, the reader that serves it may finish at once and
		// take it off (serveHere's wg.Done), which must never come
		// before this Add (a negative WaitGroup counter panics; seen
		// under qemu TCG at load 18).
		r.s.wg.Add(1)
		r.inflight.Add(1)
		if !r.inline.CompareAndSwap(seq, 0) {
			r.inflight.Add(-1)
			r.s.wg.Done()
			return // finished in time after all
		}
	}
	e := r.s.fs.log.Debug()
	if r.s.stalls.Add(1) == 1 {
		e = r.s.fs.log.Warn() // once: a slow disk could make it every other request
	}
	if r.queue >= 0 {
		e.Dur("after", stallAfter).Int("queue", r.queue).
			Msg("a request served on an io_uring queue is stalled (slow lower file system?); the requests sent from its CPU wait for it")
		return
	}
	e.Dur("after", stallAfter).
		Msg("a request served on the reader is stalled (slow lower file system?); a new reader serves the others")
	go r.loop()
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
