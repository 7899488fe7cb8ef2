package fuse

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// devPoller decides how long the reader of /dev/fuse polls the device
// before it sleeps in read(2). A caller that sends its next request soon
// after a reply then finds the reader awake (no wakeup of a sleeping
// thread, which on an idle CPU costs tens of microseconds), and a reader
// that would poll in vain stops doing so.
//
// The window adapts like the kernel's halt polling (KVM's halt_poll_ns):
// when the reader had to sleep but the request came within maxWindow, the
// window doubles (from minWindow); when it slept longer than maxWindow, the
// window halves, down to zero below minWindow. A request found while
// polling leaves it as it is. So the polling costs at most maxWindow of CPU
// per request, and nothing once requests are further apart than that: an
// idle mount's reader sleeps in read(2).
//
// The window is atomic so that readers taking turns (or, with a Server
// that allows it, reading at once) may share the poller; each wait and
// each slept is a self-contained step, so a lost update between two
// readers only makes one adaptation step count once.
type devPoller struct {
	fd        int
	window    atomic.Int64 // time.Duration
	minWindow time.Duration
	maxWindow time.Duration
}

const defaultMaxPollWindow = 50 * time.Microsecond

func newDevPoller(fd int, maxWindow time.Duration) *devPoller {
	if maxWindow <= 0 {
		maxWindow = defaultMaxPollWindow
	}
	p := &devPoller{fd: fd, maxWindow: maxWindow, minWindow: min(2*time.Microsecond, maxWindow)}
	p.window.Store(int64(p.minWindow))
	return p
}

// wait returns once a request is waiting (polling for the current window),
// or once the window has passed. It reports whether a request is waiting.
func (p *devPoller) wait() bool {
	window := time.Duration(p.window.Load())
	if window == 0 {
		return false
	}
	deadline := time.Now().Add(window)
	pfd := [1]unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
	var zero unix.Timespec
	yielded := false
	for {
		pfd[0].Revents = 0
		// POLLERR (the connection was aborted or unmounted) counts too:
		// the read then returns ENODEV at once.
		n, err := unix.Ppoll(pfd[:], &zero, nil)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && err != unix.EINTR {
			return false // the read will tell
		}
		if yielded {
			// The yield gave the CPU away (see below) and nothing came in
			// meanwhile: other work wants this CPU, and a reader that
			// keeps yielding waits behind it for whole time slices, where
			// one sleeping in read(2) would be woken ahead of it. Stop
			// polling until a short sleep turns it on again.
			p.window.Store(0)
			return false
		}
		now := time.Now()
		if !now.Before(deadline) {
			return false
		}
		// Let anything else runnable on this CPU go first: most likely the
		// caller of the request just answered, which is what sends the next
		// one. Polling without yielding kept it off the CPU for the whole
		// window whenever the reader ran on the caller's CPU (an untar with
		// tar pinned to one CPU took 3x as long), and made the window grow.
		// A yield with nothing else runnable returns in well under a
		// microsecond; one that took longer ran someone else.
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		yielded = time.Since(now) > yieldedAway
	}
}

// yieldedAway is how long a sched_yield must take to count as having run
// another thread (an empty one takes well under a microsecond).
const yieldedAway = 20 * time.Microsecond

// slept adapts the window after the reader slept for d in read(2).
func (p *devPoller) slept(d time.Duration) {
	w := time.Duration(p.window.Load())
	switch {
	case d <= p.maxWindow:
		w = min(max(2*w, p.minWindow), p.maxWindow)
	default:
		w /= 2
		if w < p.minWindow {
			w = 0
		}
	}
	p.window.Store(int64(w))
}
