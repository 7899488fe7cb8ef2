//go:build linux

package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Setup flags (io_uring_params.flags).
const (
	SetupCQSize       = 1 << 3
	SetupSubmitAll    = 1 << 7
	SetupCoopTaskrun  = 1 << 8
	SetupSQE128       = 1 << 10
	SetupSingleIssuer = 1 << 12
	SetupDeferTaskrun = 1 << 13
)

// Opcodes used here.
const (
	OpRead     = 22
	OpURingCmd = 46
)

const (
	enterGetEvents = 1 << 0

	featSingleMmap = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// SQE is a 128-byte submission queue entry (IORING_SETUP_SQE128). For
// IORING_OP_URING_CMD, the command opcode lives in the low 32 bits of Off
// and the command's own 80 bytes in Cmd.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Cmd         [80]byte
}

// CQE is a completion queue entry.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

type sqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type cqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type params struct {
	SqEntries, CqEntries, Flags, SqThreadCPU, SqThreadIdle, Features, WqFd uint32
	Resv                                                                   [3]uint32
	SqOff                                                                  sqringOffsets
	CqOff                                                                  cqringOffsets
}

func init() {
	// The kernel rejects anything else; a wrong layout here would be
	// memory corruption, not an error.
	if unsafe.Sizeof(SQE{}) != 128 || unsafe.Sizeof(CQE{}) != 16 || unsafe.Sizeof(params{}) != 120 {
		panic("uring: struct layout does not match the kernel's")
	}
}

// Ring is one io_uring instance with 128-byte SQEs. All methods except
// Close must be called from the OS thread that called New (the ring is
// IORING_SETUP_SINGLE_ISSUER when flags say so).
type Ring struct {
	fd int

	ringMem []byte // SQ and CQ rings (one mapping, IORING_FEAT_SINGLE_MMAP)
	sqeMem  []byte // the SQE array

	sqHead    *uint32 // written by the kernel
	sqTail    *uint32 // written by us
	sqMask    uint32
	sqEntries uint32
	sqArray   []uint32
	sqes      []SQE
	tail      uint32 // our copy of *sqTail, including SQEs not yet published

	cqHead *uint32 // written by us
	cqTail *uint32 // written by the kernel
	cqMask uint32
	cqes   []CQE
}

// New sets up a ring with room for entries SQEs and cqEntries CQEs, with
// SetupSQE128|SetupCQSize and the given extra flags.
func New(entries, cqEntries uint32, flags uint32) (*Ring, error) {
	p := params{Flags: flags | SetupSQE128 | SetupCQSize, CqEntries: cqEntries}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd)}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap(p *params) error {
	if p.Features&featSingleMmap == 0 {
		return errors.New("io_uring: kernel lacks IORING_FEAT_SINGLE_MMAP")
	}
	sqSize := uintptr(p.SqOff.Array) + uintptr(p.SqEntries)*4
	cqSize := uintptr(p.CqOff.Cqes) + uintptr(p.CqEntries)*unsafe.Sizeof(CQE{})
	size := max(sqSize, cqSize)
	mem, err := unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap io_uring rings: %w", err)
	}
	r.ringMem = mem
	sqeSize := int(p.SqEntries) * int(unsafe.Sizeof(SQE{}))
	sqeMem, err := unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	r.sqeMem = sqeMem

	base := unsafe.Pointer(&mem[0])
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }
	r.sqHead = u32(p.SqOff.Head)
	r.sqTail = u32(p.SqOff.Tail)
	r.sqMask = *u32(p.SqOff.RingMask)
	r.sqEntries = *u32(p.SqOff.RingEntries)
	r.sqArray = unsafe.Slice(u32(p.SqOff.Array), p.SqEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&sqeMem[0])), p.SqEntries)
	r.tail = atomic.LoadUint32(r.sqTail)

	r.cqHead = u32(p.CqOff.Head)
	r.cqTail = u32(p.CqOff.Tail)
	r.cqMask = *u32(p.CqOff.RingMask)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Add(base, p.CqOff.Cqes)), p.CqEntries)
	return nil
}

// Fd is the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// GetSQE returns a zeroed SQE to fill in, or nil if the submission queue is
// full. It is handed to the kernel by the next Enter.
func (r *Ring) GetSQE() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.tail-head >= r.sqEntries {
		return nil
	}
	i := r.tail & r.sqMask
	r.sqArray[i] = i
	sqe := &r.sqes[i]
	*sqe = SQE{}
	r.tail++
	return sqe
}

// Pending is the number of SQEs not yet consumed by the kernel.
func (r *Ring) Pending() uint32 {
	return r.tail - atomic.LoadUint32(r.sqHead)
}

// Enter publishes the SQEs taken with GetSQE, submits them and, with
// wait > 0, waits until at least wait completions are in the CQ ring. It
// always passes IORING_ENTER_GETEVENTS, which is what runs deferred task
// work (IORING_SETUP_DEFER_TASKRUN) even with wait == 0. EINTR is returned
// as is: the caller loops.
func (r *Ring) Enter(wait uint32) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	toSubmit := r.Pending()
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(wait),
		enterGetEvents, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// PeekCQE returns the oldest unconsumed completion, or nil. The caller
// copies what it needs and calls SeenCQE.
func (r *Ring) PeekCQE() *CQE {
	head := *r.cqHead // only we write it
	if head == atomic.LoadUint32(r.cqTail) {
		return nil
	}
	return &r.cqes[head&r.cqMask]
}

// SeenCQE gives the oldest completion back to the kernel.
func (r *Ring) SeenCQE() {
	atomic.StoreUint32(r.cqHead, *r.cqHead+1)
}

// Close unmaps the rings and closes the ring's descriptor; the kernel
// cancels whatever is still in flight.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.ringMem != nil {
		unix.Munmap(r.ringMem)
		r.ringMem = nil
	}
	r.sqes, r.cqes, r.sqArray = nil, nil, nil
	if r.fd >= 0 {
		err := syscall.Close(r.fd)
		r.fd = -1
		return err
	}
	return nil
}
