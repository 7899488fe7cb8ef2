package fuse

// FUSE over io_uring (Linux 6.14; fs/fuse/dev_uring.c).
//
// After FUSE_INIT, the daemon registers buffers with the kernel as
// IORING_OP_URING_CMD commands on /dev/fuse: REGISTER hands one entry (a
// header buffer and a payload buffer) to queue qid, and the command
// completes when the kernel has copied a request into the entry. The daemon
// answers with COMMIT_AND_FETCH, which delivers the reply from the same
// entry and hands the entry back for the next request. The kernel has one
// queue per possible CPU and puts each request on the queue of the CPU its
// caller runs on; until every queue has an entry, requests wait (or go
// through /dev/fuse if a REGISTER failed). FORGET, BATCH_FORGET and
// INTERRUPT always come through /dev/fuse, and notifications are written to
// /dev/fuse.
//
// Here, each queue is served by one goroutine locked to an OS thread pinned
// to the queue's CPU. That thread creates the queue's ring
// (IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN: the kernel copies
// requests into our buffers only while this thread waits in io_uring_enter,
// so nothing else runs on another CPU for it), submits every command, and
// runs the Server's ServeOps for the queue: an op served on that goroutine
// is answered with one io_uring_enter that commits the reply and waits for
// the next request. Replies from other goroutines are queued for the queue's
// thread, which an eventfd wakes if it sleeps.
//
// Memory: the kernel keeps the addresses of the registered buffers for as
// long as the connection lives, so they are mapped outside the Go heap and
// unmapped only after the connection has ended and the rings are closed
// (startup failures before the rings were registered unmap right away: the
// kernel never saw those buffers).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/jacobsa/fuse/internal/buffer"
	"github.com/jacobsa/fuse/internal/fusekernel"
	"github.com/jacobsa/fuse/internal/uring"
	"golang.org/x/sys/unix"
)

// Test hooks (set by export_test.go): queue threads left unpinned, and a
// payload buffer registered as shorter than it is (the kernel refuses it).
var (
	testNoPin      bool
	testPayloadLen int
)

const (
	defaultQueueDepth = 16

	// Per entry in the queue's header area: the header buffer, then the
	// two iovecs REGISTER points at.
	headerSlot = 512
	iovOffset  = 320

	eventfdTag = ^uint64(0) // the user data of the eventfd read
)

func init() {
	if unsafe.Sizeof(fusekernel.URingReqHeader{}) > iovOffset || unsafe.Sizeof(fusekernel.URingCmdReq{}) > 80 {
		panic("fuse: io_uring layouts do not fit")
	}
}

// ringSet is the connection's queues.
type ringSet struct {
	queues []*ringQueue
	active bool // every queue registered: requests come over the rings
}

// ringQueue is one io_uring queue: its ring, its entries and the goroutine
// that owns them. Fields without a comment are the goroutine's.
type ringQueue struct {
	c      *Connection // the connection
	handle *Connection // what ServeOps gets for this queue
	qid    int
	pinned bool
	depth  int
	devFd  int32

	ring *uring.Ring
	evfd int
	mem  []byte // headers, eventfd buffer, then each entry's area
	ents []ringEntry
	live int // entries the kernel has not failed

	ready    []*ringEntry // requests received, not yet handed out
	evArmed  bool
	resubmit []*ringEntry
	err      error // the first failure of an entry
	ended    bool  // ReadOp has returned io.EOF

	// Replies waiting to be committed, filled by any goroutine.
	mu       sync.Mutex
	replies  []*ringEntry
	spare    []*ringEntry
	sleeping atomic.Bool // in io_uring_enter waiting, or about to

	work   chan func() // run on the queue's goroutine; closed to stop it
	exited chan struct{}
}

// ringEntry is one registered pair of buffers.
type ringEntry struct {
	q        *ringQueue
	idx      int
	hdr      *fusekernel.URingReqHeader
	iov      *[2]unix.Iovec
	area     []byte // a page for the reassembled headers, then the payload
	payload  []byte
	in       buffer.InMessage
	commitID uint64
	lastCmd  uint32
	dead     bool
}

// possibleCPUs is the number of CPUs the kernel may ever run, which is its
// number of FUSE queues (num_possible_cpus()).
func possibleCPUs() int {
	data, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(data)), ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || b < a {
			return runtime.NumCPU()
		}
		n += b - a + 1
	}
	return n
}

// uringEnabledParam reads /sys/module/fuse/parameters/enable_uring.
func uringEnabledParam() string {
	data, err := os.ReadFile("/sys/module/fuse/parameters/enable_uring")
	if err != nil {
		return "absent"
	}
	return strings.TrimSpace(string(data))
}

// uringAvailable says why the kernel will not offer FUSE over io_uring at
// the next mount, if it will not: it offers it exactly while the fuse
// module's enable_uring parameter is set.
func uringAvailable() error {
	switch p := uringEnabledParam(); p {
	case "Y":
		return nil
	case "absent":
		return errors.New("FUSE over io_uring: this kernel does not have it (Linux 6.14+ with CONFIG_FUSE_IO_URING)")
	default:
		return fmt.Errorf("FUSE over io_uring: the kernel does not offer it (fuse enable_uring is %s; set /sys/module/fuse/parameters/enable_uring to Y)", p)
	}
}

// startRings sets up one queue per possible CPU, each on its own pinned
// thread, before the INIT reply offers FUSE_OVER_IO_URING: if any queue
// cannot be set up, the kernel is never told, and nothing is left behind.
func (c *Connection) startRings() (*ringSet, error) {
	depth := c.cfg.URingQueueDepth
	if depth <= 0 {
		depth = defaultQueueDepth
	}
	maxPayload := max(8192, int(c.cfg.MaxWrite), int(c.cfg.MaxPages)*buffer.GetPageSize())
	rs := &ringSet{}
	errs := make(chan error)
	for qid := range possibleCPUs() {
		q := &ringQueue{
			c:      c,
			qid:    qid,
			depth:  depth,
			devFd:  int32(c.dev.Fd()),
			evfd:   -1,
			work:   make(chan func()),
			exited: make(chan struct{}),
		}
		q.handle = &Connection{main: c, queue: q}
		rs.queues = append(rs.queues, q)
		go q.run(maxPayload, errs)
	}
	var first error
	for range rs.queues {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		rs.stop()
		return nil, first
	}
	return rs, nil
}

// register has every queue register its entries (after the INIT reply, so
// the kernel knows its buffer sizes) and reports the first failure.
func (rs *ringSet) register() error {
	errs := make(chan error, len(rs.queues))
	for _, q := range rs.queues {
		q.work <- func() { errs <- q.register() }
	}
	var first error
	for range rs.queues {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	rs.active = first == nil
	return first
}

// stop ends every queue's goroutine, which closes its ring, and unmaps the
// buffers once all are gone.
func (rs *ringSet) stop() {
	for _, q := range rs.queues {
		close(q.work)
	}
	for _, q := range rs.queues {
		<-q.exited
		if q.mem != nil {
			unix.Munmap(q.mem)
			q.mem = nil
		}
	}
}

// do runs f on the queue's goroutine.
func (q *ringQueue) do(f func()) { q.work <- f }

func (q *ringQueue) id() int         { return q.qid }
func (q *ringQueue) queueDepth() int { return q.depth }

func (rs *ringSet) pinned() int {
	n := 0
	for _, q := range rs.queues {
		if q.pinned {
			n++
		}
	}
	return n
}

// run is the queue's goroutine: it pins its thread, sets the queue up,
// and then runs what it is given until stopped.
func (q *ringQueue) run(maxPayload int, setupErr chan<- error) {
	// Never unlocked: the thread is pinned and must not serve other
	// goroutines; it exits with this goroutine.
	runtime.LockOSThread()
	defer close(q.exited)
	if !testNoPin {
		var set unix.CPUSet
		set.Set(q.qid)
		q.pinned = unix.SchedSetaffinity(0, &set) == nil
	}
	err := q.setup(maxPayload)
	setupErr <- err
	if err == nil {
		for f := range q.work {
			f()
		}
	} else {
		for range q.work {
		}
	}
	if q.ring != nil {
		q.ring.Close()
	}
	if q.evfd >= 0 {
		unix.Close(q.evfd)
	}
}

func (q *ringQueue) setup(maxPayload int) error {
	entries := uint32(q.depth + 2) // the entries, the eventfd read, one spare
	r, err := uring.New(entries, 2*entries, uring.SetupSingleIssuer|uring.SetupDeferTaskrun|uring.SetupSubmitAll)
	if err != nil {
		return fmt.Errorf("queue %d: %w", q.qid, err)
	}
	q.ring = r
	// A blocking eventfd: io_uring polls it for the read (a non-blocking one
	// would complete the read with EAGAIN at once).
	if q.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
		return fmt.Errorf("queue %d: eventfd: %w", q.qid, err)
	}

	page := buffer.GetPageSize()
	roundUp := func(n int) int { return (n + page - 1) / page * page }
	headers := roundUp(q.depth*headerSlot + 8)
	areaSize := page + roundUp(maxPayload)
	q.mem, err = unix.Mmap(-1, 0, headers+q.depth*areaSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("queue %d: mmap %d bytes: %w", q.qid, headers+q.depth*areaSize, err)
	}
	q.ents = make([]ringEntry, q.depth)
	for i := range q.ents {
		e := &q.ents[i]
		slot := q.mem[i*headerSlot : (i+1)*headerSlot]
		e.q, e.idx = q, i
		e.hdr = (*fusekernel.URingReqHeader)(unsafe.Pointer(&slot[0]))
		e.iov = (*[2]unix.Iovec)(unsafe.Pointer(&slot[iovOffset]))
		off := headers + i*areaSize
		e.area = q.mem[off : off+areaSize : off+areaSize]
		e.payload = e.area[page:]
		e.iov[0].Base = &slot[0]
		e.iov[0].SetLen(int(unsafe.Sizeof(fusekernel.URingReqHeader{})))
		e.iov[1].Base = &e.payload[0]
		e.iov[1].SetLen(len(e.payload))
		if testPayloadLen > 0 {
			e.iov[1].SetLen(testPayloadLen)
		}
	}
	q.live = q.depth
	return nil
}

func (q *ringQueue) eventfdBuf() *byte { return &q.mem[q.depth*headerSlot] }

// register submits a REGISTER for every entry and the eventfd read, and
// reports the first REGISTER the kernel refused. A successful REGISTER does
// not complete until a request arrives; requests that arrive already (once
// the last queue has registered) wait in q.ready.
func (q *ringQueue) register() error {
	for i := range q.ents {
		q.submit(&q.ents[i], fusekernel.URingCmdRegister)
	}
	q.armEventfd()
	for {
		err := q.ring.Enter(0)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return fmt.Errorf("queue %d: io_uring_enter: %w", q.qid, err)
		}
	}
	q.reap()
	if q.err != nil {
		return fmt.Errorf("queue %d: FUSE_IO_URING_CMD_REGISTER: %w", q.qid, q.err)
	}
	return nil
}

// submit queues a command for e.
func (q *ringQueue) submit(e *ringEntry, cmd uint32) {
	sqe := q.ring.GetSQE()
	for sqe == nil {
		// Cannot happen (the ring has room for every entry and the eventfd
		// read), but a full ring only needs emptying.
		q.ring.Enter(0)
		sqe = q.ring.GetSQE()
	}
	e.lastCmd = cmd
	sqe.Opcode = uring.OpURingCmd
	sqe.Fd = q.devFd
	sqe.Off = uint64(cmd) // cmd_op
	sqe.UserData = uint64(e.idx)
	req := (*fusekernel.URingCmdReq)(unsafe.Pointer(&sqe.Cmd[0]))
	req.Qid = uint16(q.qid)
	if cmd == fusekernel.URingCmdRegister {
		sqe.Addr = uint64(uintptr(unsafe.Pointer(e.iov)))
		sqe.Len = 2
	} else {
		req.CommitID = e.commitID
	}
}

func (q *ringQueue) armEventfd() {
	sqe := q.ring.GetSQE()
	if sqe == nil {
		return // armed on the next round
	}
	sqe.Opcode = uring.OpRead
	sqe.Fd = int32(q.evfd)
	sqe.Addr = uint64(uintptr(unsafe.Pointer(q.eventfdBuf())))
	sqe.Len = 8
	sqe.UserData = eventfdTag
	q.evArmed = true
}

// reap handles every completion in the ring.
func (q *ringQueue) reap() {
	for {
		cqe := q.ring.PeekCQE()
		if cqe == nil {
			return
		}
		ud, res := cqe.UserData, cqe.Res
		q.ring.SeenCQE()
		if ud == eventfdTag {
			q.evArmed = false
			continue
		}
		if ud >= uint64(len(q.ents)) {
			continue // not ours; cannot happen
		}
		e := &q.ents[ud]
		switch {
		case res == 0:
			q.ready = append(q.ready, e)
		case res == -int32(unix.EINTR) || res == -int32(unix.EAGAIN):
			q.resubmit = append(q.resubmit, e)
		default:
			// ENOTCONN, ECONNABORTED: the connection is gone; anything else
			// (EOPNOTSUPP from a REGISTER: enable_uring is off) ends the
			// entry too.
			if !e.dead {
				e.dead = true
				q.live--
			}
			if q.err == nil && res != -int32(unix.ENOTCONN) && res != -int32(unix.ECONNABORTED) {
				q.err = syscall.Errno(-res)
			}
		}
	}
}

// flush turns replies into COMMIT_AND_FETCH commands.
func (q *ringQueue) flush() {
	q.mu.Lock()
	replies := q.replies
	q.replies = q.spare[:0]
	q.mu.Unlock()
	for _, e := range replies {
		q.submit(e, fusekernel.URingCmdCommitAndFetch)
	}
	q.spare = replies[:0]
	for _, e := range q.resubmit {
		q.submit(e, e.lastCmd)
	}
	q.resubmit = q.resubmit[:0]
	if !q.evArmed {
		q.armEventfd()
	}
}

// next returns the next entry holding a request, or io.EOF once every entry
// has ended (the connection is gone).
func (q *ringQueue) next() (*ringEntry, error) {
	for {
		q.flush()
		if len(q.ready) > 0 {
			// Send the replies of the ops served so far before serving
			// another: their callers are waiting.
			if q.ring.Pending() > 0 {
				if err := q.enter(0); err != nil {
					return nil, err
				}
			}
			e := q.ready[0]
			q.ready = q.ready[1:]
			if err := e.parse(); err != nil {
				if q.c.errorLogger != nil {
					q.c.errorLogger.Printf("io_uring queue %d: %v", q.qid, err)
				}
				e.reply(-int32(unix.EIO), nil)
				continue
			}
			return e, nil
		}
		if q.ring.PeekCQE() != nil {
			q.reap()
			continue
		}
		if q.live == 0 {
			return nil, io.EOF
		}
		// Sleep until a completion, unless a reply came in meanwhile (its
		// goroutine saw sleeping false, so it did not write the eventfd).
		q.sleeping.Store(true)
		q.mu.Lock()
		pending := len(q.replies)
		q.mu.Unlock()
		var err error
		if pending == 0 {
			err = q.enter(1)
		} else {
			err = q.enter(0)
		}
		q.sleeping.Store(false)
		if err != nil {
			return nil, err
		}
	}
}

// enter submits what flush queued and waits for wait completions, which it
// reaps.
func (q *ringQueue) enter(wait uint32) error {
	err := q.ring.Enter(wait)
	if err != nil && err != unix.EINTR {
		if err == unix.EEXIST {
			return fmt.Errorf("io_uring queue %d: ReadOp called from a goroutine other than the one ServeOps was called on", q.qid)
		}
		return fmt.Errorf("io_uring queue %d: io_uring_enter: %w", q.qid, err)
	}
	q.reap()
	return nil
}

// parse turns the request the kernel wrote into e into an InMessage: the
// kernel splits it into the fuse_in_header, the op's fixed-size argument
// (OpIn) and the rest (the payload); the first two are copied in front of
// the payload, so that the message is contiguous without copying data.
func (e *ringEntry) parse() error {
	io := e.hdr.RingEntInOut
	h := (*fusekernel.InHeader)(unsafe.Pointer(&e.hdr.InOut[0]))
	total, payload := int(h.Len), int(io.PayloadSz)
	opSize := total - fusekernel.InHeaderSize - payload
	if payload > len(e.payload) || opSize < 0 || opSize > fusekernel.URingOpInOutSize {
		e.commitID = io.CommitID
		return fmt.Errorf("request of %d bytes with a payload of %d", total, payload)
	}
	start := len(e.area) - len(e.payload) - fusekernel.InHeaderSize - opSize
	copy(e.area[start:], e.hdr.InOut[:fusekernel.InHeaderSize])
	copy(e.area[start+fusekernel.InHeaderSize:], e.hdr.OpIn[:opSize])
	e.commitID = io.CommitID
	return e.in.InitFromBuffer(e.area[start:], total)
}

// reply answers e's request.
func (e *ringEntry) reply(errno int32, out *buffer.OutMessage) {
	e.fill(errno, out)
	e.commit()
}

// fill stores a reply in e's buffers.
func (e *ringEntry) fill(errno int32, out *buffer.OutMessage) {
	n := 0
	if out != nil && errno == 0 && len(out.Sglist) > 1 {
		for _, seg := range out.Sglist[1:] {
			if len(seg) == 0 {
				continue
			}
			if n+len(seg) > len(e.payload) {
				errno, n = -int32(unix.EIO), 0
				break
			}
			// A READ's data is usually already in place (ReadFileOp.Dst is
			// the payload buffer).
			if &seg[0] != &e.payload[n] {
				copy(e.payload[n:], seg)
			}
			n += len(seg)
		}
	}
	oh := (*fusekernel.OutHeader)(unsafe.Pointer(&e.hdr.InOut[0]))
	oh.Len = uint32(buffer.OutMessageHeaderSize + n)
	oh.Error = errno
	oh.Unique = e.commitID
	e.hdr.RingEntInOut.PayloadSz = uint32(n)
}

// commit has the queue's goroutine send e's reply (COMMIT_AND_FETCH), waking
// it if it sleeps. Any goroutine may call it, once per request; e belongs to
// the kernel again afterwards.
func (e *ringEntry) commit() {
	q := e.q
	q.mu.Lock()
	q.replies = append(q.replies, e)
	q.mu.Unlock()
	if q.sleeping.Load() {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(q.evfd, one[:])
	}
}

// readOp is ReadOp for a queue's Connection.
func (q *ringQueue) readOp() (context.Context, any, error) {
	c := q.c
	if q.ended {
		return nil, nil, io.EOF
	}
	for {
		e, err := q.next()
		if err != nil {
			q.ended = true
			c.sourceEnded()
			return nil, nil, err
		}
		outMsg := c.getOutMessage()
		op, err := convertInMessage(&c.cfg, &e.in, outMsg, c.protocol)
		if err != nil {
			c.putOutMessage(outMsg)
			if c.errorLogger != nil {
				c.errorLogger.Printf("io_uring queue %d: convertInMessage: %v", q.qid, err)
			}
			e.reply(-int32(unix.EIO), nil)
			continue
		}
		if c.debugLogger != nil {
			c.debugLog(e.in.Header().Unique, 1, "<- %s (queue %d)", describeRequest(op), q.qid)
		}
		ctx := c.beginOp(e.in.Header().Opcode, e.in.Header().Unique)
		var wlog *WireLogRecord
		if c.wireLogger != nil {
			wlog = NewWireLogRecord()
		}
		ctx = context.WithValue(ctx, contextKey, opState{&e.in, outMsg, op, wlog, e})
		return ctx, op, nil
	}
}

// drain answers EIO to anything that still arrives on a queue whose
// ServeOps returned before io.EOF, so that its CPU's requests do not
// stall; it returns at the end of the connection.
func (q *ringQueue) drain() {
	for !q.ended {
		ctx, _, err := q.readOp()
		if err != nil {
			return
		}
		q.c.Reply(ctx, syscall.EIO)
	}
}
