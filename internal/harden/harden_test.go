package harden

import (
	"os"
	"os/signal"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestProcess: after Process the process is not dumpable and may not dump
// core (soft and hard limit 0). Both are process-wide; this test binary
// keeps them, which changes nothing for the other tests.
func TestProcess(t *testing.T) {
	if err := Process(); err != nil {
		t.Fatal(err)
	}
	d, err := Dumpable()
	if err != nil {
		t.Fatal(err)
	}
	if d {
		t.Error("still dumpable after Process")
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != 0 || lim.Max != 0 {
		t.Errorf("RLIMIT_CORE %d/%d after Process, want 0/0", lim.Cur, lim.Max)
	}
}

// TestLocked: the buffer is its own mapping, excluded from core dumps
// (VmFlags "dd"), locked ("lo") when Locked says so, usable, found by
// FindInProcess only there, and gone after Close.
func TestLocked(t *testing.T) {
	l, err := NewLocked(100)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := l.Bytes()
	if len(b) != 100 || cap(b) != 100 {
		t.Fatalf("Bytes: len %d cap %d, want 100", len(b), cap(b))
	}
	for i := range b {
		if b[i] != 0 {
			t.Fatal("new buffer is not zero")
		}
		b[i] = byte(0xc3 ^ i*13)
	}
	addr := uint64(uintptr(l.Pointer()))
	if addr != uint64(uintptr(unsafe.Pointer(&b[0]))) {
		t.Fatal("Pointer is not the first byte of Bytes")
	}
	maps, err := Mappings(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var m *Mapping
	for i := range maps {
		if maps[i].Start <= addr && addr < maps[i].End {
			m = &maps[i]
		}
	}
	if m == nil {
		t.Fatalf("no mapping holds %#x", addr)
	}
	if !m.HasFlag("dd") {
		t.Errorf("the buffer's mapping has flags %v, want dd (not dumped)", m.Flags)
	}
	if l.Locked() != m.HasFlag("lo") {
		t.Errorf("Locked() = %v but the mapping has flags %v", l.Locked(), m.Flags)
	}
	t.Logf("locked: %v, flags %v", l.Locked(), m.Flags)

	// The needle is built on the stack byte by byte, so the only other
	// copy is the needle slice itself, which FindInProcess sees too.
	needle := append([]byte(nil), b[:32]...)
	hits, err := FindInProcess(os.Getpid(), [][]byte{needle})
	if err != nil {
		t.Fatal(err)
	}
	inBuffer := 0
	for _, h := range hits {
		if h.Addr == addr {
			inBuffer++
		}
	}
	if inBuffer != 1 {
		t.Errorf("FindInProcess found the buffer's bytes at %v, want once at %#x", hits, addr)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	maps, err = Mappings(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Start <= addr && addr < m.End && m.HasFlag("dd") {
			t.Errorf("the buffer is still mapped after Close: %+v", m)
		}
	}
}

// threadMask returns the calling thread's signal mask.
func threadMask(t *testing.T) unix.Sigset_t {
	t.Helper()
	var cur unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, nil, &cur); err != nil {
		t.Fatal(err)
	}
	return cur
}

// blocked reports whether sig is in mask.
func blocked(mask unix.Sigset_t, sig unix.Signal) bool {
	n := uint(sig) - 1
	return mask.Val[n/64]&(1<<(n%64)) != 0
}

// TestNoSignals: f runs on a thread that blocks the runtime's preemption
// signal and the usual asynchronous ones; afterwards the thread's mask is
// what it was, and a signal sent to the process meanwhile is delivered
// afterwards (to some thread), not lost.
func TestNoSignals(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadMask(t)
	if blocked(before, unix.SIGURG) {
		t.Fatal("SIGURG blocked before NoSignals")
	}
	got := make(chan os.Signal, 1)
	signal.Notify(got, unix.SIGUSR1)
	defer signal.Stop(got)
	var inside unix.Sigset_t
	ran := false
	NoSignals(func() {
		ran = true
		inside = threadMask(t)
		unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGUSR1) // to this very thread: held back
		select {
		case <-got:
			t.Error("SIGUSR1 delivered while blocked")
		case <-time.After(50 * time.Millisecond):
		}
	})
	if !ran {
		t.Fatal("f did not run")
	}
	for _, sig := range []unix.Signal{unix.SIGURG, unix.SIGPROF, unix.SIGCHLD, unix.SIGUSR1, unix.SIGINT, unix.SIGTERM, unix.SIGALRM} {
		if !blocked(inside, sig) {
			t.Errorf("%v not blocked inside NoSignals", sig)
		}
	}
	if after := threadMask(t); after != before {
		t.Errorf("signal mask after NoSignals %v, want %v", after.Val[0], before.Val[0])
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Error("SIGUSR1 sent while blocked was never delivered")
	}
}
