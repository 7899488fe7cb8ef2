package fuse

import (
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
	if p.window != 2*time.Microsecond {
		t.Fatalf("initial window %v", p.window)
	}
	for i, s := range steps {
		p.slept(s.slept)
		if p.window != s.want {
			t.Fatalf("step %d: after sleeping %v the window is %v, want %v", i, s.slept, p.window, s.want)
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
	p.window = time.Millisecond
	start := time.Now()
	if p.wait() {
		t.Fatal("an empty pipe polled readable")
	}
	if d := time.Since(start); d < time.Millisecond {
		t.Fatalf("gave up after %v, before the window of 1ms", d)
	}
	unix.Write(fds[1], []byte("x"))
	if !p.wait() {
		t.Fatal("a pipe with data did not poll readable")
	}
	p.window = 0
	if p.wait() {
		t.Fatal("polled with the window off")
	}
}
