package fuse

import (
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
// per request, and nothing once requests are further apart than that.
type devPoller struct {
	fd        int
	window    time.Duration
	minWindow time.Duration
	maxWindow time.Duration
	pfd       [1]unix.PollFd
	zero      unix.Timespec
}

const defaultMaxPollWindow = 50 * time.Microsecond

func newDevPoller(fd int, maxWindow time.Duration) *devPoller {
	if maxWindow <= 0 {
		maxWindow = defaultMaxPollWindow
	}
	p := &devPoller{fd: fd, maxWindow: maxWindow, minWindow: min(2*time.Microsecond, maxWindow)}
	p.window = p.minWindow
	p.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	return p
}

// wait returns once a request is waiting (polling for the current window),
// or once the window has passed. It reports whether a request is waiting.
func (p *devPoller) wait() bool {
	if p.window == 0 {
		return false
	}
	deadline := time.Now().Add(p.window)
	for {
		p.pfd[0].Revents = 0
		n, err := unix.Ppoll(p.pfd[:], &p.zero, nil)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && err != unix.EINTR {
			return false // the read will tell
		}
		if !time.Now().Before(deadline) {
			return false
		}
		// Let anything else runnable on this CPU go first: most likely the
		// caller of the request just answered, which is what sends the next
		// one. Polling without yielding kept it off the CPU for the whole
		// window whenever the reader ran on the caller's CPU (an untar with
		// tar pinned to one CPU took 3x as long), and made the window grow.
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// slept adapts the window after the reader slept for d in read(2).
func (p *devPoller) slept(d time.Duration) {
	switch {
	case d <= p.maxWindow:
		p.window = min(max(2*p.window, p.minWindow), p.maxWindow)
	default:
		p.window /= 2
		if p.window < p.minWindow {
			p.window = 0
		}
	}
}
