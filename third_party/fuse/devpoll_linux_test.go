package fuse

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The window doubles while requests come within the maximum, halves while
// they do not, goes off below the minimum, and comes back.
func TestDevPollerAdapts(t *testing.T) {
	p := newDevPoller(-1, 40*time.Microsecond)
	steps := []struct {
		slept time.Duration
		want  time.Duration
	}{
		{10 * time.Microsecond, 4 * time.Microsecond},
		{10 * time.Microsecond, 8 * time.Microsecond},
		{40 * time.Microsecond, 16 * time.Microsecond},
		{1 * time.Microsecond, 32 * time.Microsecond},
		{1 * time.Microsecond, 40 * time.Microsecond}, // capped
		{time.Millisecond, 20 * time.Microsecond},
		{time.Millisecond, 10 * time.Microsecond},
		{time.Millisecond, 5 * time.Microsecond},
		{time.Millisecond, 2500 * time.Nanosecond},
		{time.Millisecond, 0}, // below the minimum: off
		{time.Millisecond, 0},
		{30 * time.Microsecond, 2 * time.Microsecond}, // a short sleep turns it back on
	}
	if p.window.Load() != int64(2*time.Microsecond) {
		t.Fatalf("initial window %v", time.Duration(p.window.Load()))
	}
	for i, s := range steps {
		p.slept(s.slept)
		if got := time.Duration(p.window.Load()); got != s.want {
			t.Fatalf("step %d: after sleeping %v the window is %v, want %v", i, s.slept, got, s.want)
		}
	}
}

// wait reports a readable descriptor at once and gives up on an idle one
// after its window; with the window off it does not poll at all.
func TestDevPollerWait(t *testing.T) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	p := newDevPoller(fds[0], time.Millisecond)
	p.window.Store(int64(time.Millisecond))
	start := time.Now()
	if p.wait() {
		t.Fatal("an empty pipe polled readable")
	}
	// It polls for the whole window, unless a yield ran another thread
	// (a busy machine), which turns polling off.
	if d := time.Since(start); d < time.Millisecond && p.window.Load() != 0 {
		t.Fatalf("gave up after %v, before the window of 1ms, and polling is still on", d)
	}
	p.window.Store(int64(time.Millisecond))
	unix.Write(fds[1], []byte("x"))
	if !p.wait() {
		t.Fatal("a pipe with data did not poll readable")
	}
	p.window.Store(0)
	if p.wait() {
		t.Fatal("polled with the window off")
	}
}

// A reader whose yields run another thread (here a busy loop on the same
// CPU) stops polling at once instead of waiting behind it for time slices,
// and a short sleep afterwards turns polling on again.
func TestDevPollerContended(t *testing.T) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	var cpu unix.CPUSet
	cpu.Set(0)
	pin := func() error {
		runtime.LockOSThread() // never unlocked: the thread exits with its goroutine
		return unix.SchedSetaffinity(0, &cpu)
	}
	var stop atomic.Bool
	spinning := make(chan error, 1)
	go func() {
		err := pin()
		spinning <- err
		for err == nil && !stop.Load() {
		}
	}()
	defer stop.Store(true)
	if err := <-spinning; err != nil {
		t.Skipf("cannot pin to CPU 0: %v", err)
	}

	done := make(chan error, 1)
	go func() {
		if err := pin(); err != nil {
			done <- err
			return
		}
		p := newDevPoller(fds[0], 50*time.Millisecond)
		p.window.Store(int64(50 * time.Millisecond))
		start := time.Now()
		if p.wait() {
			done <- errorString("an empty pipe polled readable")
			return
		}
		if d := time.Since(start); d >= 50*time.Millisecond {
			done <- errorString("polled for the whole window (" + d.String() + ") on a CPU another thread wants")
			return
		}
		if p.window.Load() != 0 {
			done <- errorString("polling still on after a yield ran another thread: " + time.Duration(p.window.Load()).String())
			return
		}
		p.slept(10 * time.Microsecond)
		if p.window.Load() != int64(p.minWindow) {
			done <- errorString("a short sleep did not turn polling on again")
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
