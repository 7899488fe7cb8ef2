package daemon

import (
	"errors"
	"time"

	"github.com/cryptfs/cryptfs/internal/holders"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// The idle lock (mount --idle DURATION) unmounts a mount nobody has used
// for DURATION. "Used" is two things, checked separately:
//
//   - requests: the daemon counts every request it serves (and the ebpf
//     tier every request the kernel answered from the maps); the mount is
//     idle once those counts have not moved for DURATION;
//   - references: an open file, a working directory or a memory mapping
//     inside the mount. These need no requests, so they are left to the
//     kernel: the lock tries a normal, non-lazy unmount (umount2 as root,
//     fusermount3 -u as a user), which the kernel refuses with EBUSY while
//     any such reference exists, atomically. A busy mount stays mounted,
//     the refusal is logged with the processes that hold it, and it is
//     tried again after another DURATION without requests.
//
// Unmounting ends the daemon as `cryptfs unmount` does: its keys are wiped.

// idlePoll returns how often the request counts are sampled for an idle
// timeout of d: a quarter of it, between 250 ms and 30 s.
func idlePoll(d time.Duration) time.Duration {
	return min(max(d/4, 250*time.Millisecond), 30*time.Second)
}

// idleLock runs until done is closed or it has unmounted the mount.
func idleLock(done <-chan struct{}, o Options, h *controlHandler) {
	poll := idlePoll(o.Idle)
	last, since := h.activity(), time.Now()
	busy := "" // the holders logged at the last refusal
	for {
		select {
		case <-done:
			return
		case <-time.After(poll):
		}
		if n := h.activity(); n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) < o.Idle {
			continue
		}
		err := mountinfo.Unmount(o.Mountpoint, false)
		if err == nil {
			o.Log.Log().Str("mountpoint", o.Mountpoint).Str("idle", o.Idle.String()).
				Msg("idle lock: no request and nothing open for the idle time; unmounted")
			return
		}
		// Refused: something keeps the mount busy (or the unmount itself
		// failed). Try again after another idle period; log when the
		// reason changes, not at every attempt.
		why := err.Error()
		if errors.Is(err, mountinfo.ErrBusy) {
			why = "busy: " + holders.Describe(o.Mountpoint)
		}
		if why != busy {
			o.Log.Log().Str("mountpoint", o.Mountpoint).Str("idle", o.Idle.String()).Str("reason", why).
				Msg("idle lock: idle, but the unmount was refused; trying again after the next idle period")
			busy = why
		}
		last, since = h.activity(), time.Now()
	}
}

// activity is the number of requests the mount has served: those that
// reached the daemon and, in the ebpf tier, those the kernel answered.
func (h *controlHandler) activity() uint64 {
	var n uint64
	for _, o := range h.fsys.Stats().Snapshot() {
		n += o.Count
	}
	if h.fp != nil {
		if st, err := h.fp.Stats(); err == nil {
			for _, o := range st {
				n += o.Hits
			}
		}
	}
	return n
}
