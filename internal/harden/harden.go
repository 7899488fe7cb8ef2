package harden

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Process makes the calling process non-dumpable and forbids core dumps
// (RLIMIT_CORE 0, soft and hard). Both apply to the whole process and are
// kept across the process's life (not across execve of a set-ID program,
// which cryptfs does not run with keys).
func Process() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_CORE, 0): %w", err)
	}
	return nil
}

// Dumpable reports the calling process's dumpable flag (for tests).
func Dumpable() (bool, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return v != 0, err
}

// Locked is a buffer for key material outside the Go heap (see the package
// documentation). It is safe for concurrent reads; Close must be called
// once, when no other use is in flight.
type Locked struct {
	mem    []byte // the whole mapping, whole pages
	n      int    // bytes in use
	locked bool

	mu     sync.Mutex
	closed bool
}

// NewLocked returns n zero bytes (n > 0) of locked, undumpable memory. A
// failed mlock (RLIMIT_MEMLOCK exhausted, or not permitted) is not an
// error: the buffer works, only unlocked; Locked says which.
func NewLocked(n int) (*Locked, error) {
	if n <= 0 {
		return nil, fmt.Errorf("harden: NewLocked(%d)", n)
	}
	page := unix.Getpagesize()
	size := (n + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("harden: mmap %d bytes: %w", size, err)
	}
	if err := unix.Madvise(mem, unix.MADV_DONTDUMP); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("harden: madvise(MADV_DONTDUMP): %w", err)
	}
	unix.Madvise(mem, unix.MADV_WIPEONFORK) // Linux 4.14; best effort
	l := &Locked{mem: mem, n: n}
	l.locked = unix.Mlock(mem) == nil
	runtime.SetFinalizer(l, (*Locked).Close)
	return l, nil
}

// Bytes returns the buffer (n bytes). It must not be used after Close.
func (l *Locked) Bytes() []byte { return l.mem[:l.n:l.n] }

// Pointer returns the address of the buffer's first byte, for carving
// fixed-size keys out of it.
func (l *Locked) Pointer() unsafe.Pointer { return unsafe.Pointer(&l.mem[0]) }

// Locked reports whether the pages are locked in RAM.
func (l *Locked) Locked() bool { return l.locked }

// Wipe zeroes the buffer.
func (l *Locked) Wipe() {
	clear(l.mem)
	runtime.KeepAlive(l)
}

// Close wipes the buffer and returns its pages to the system. Closing
// twice is harmless.
func (l *Locked) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	runtime.SetFinalizer(l, nil)
	clear(l.mem)
	if l.locked {
		unix.Munlock(l.mem)
	}
	return unix.Munmap(l.mem)
}
