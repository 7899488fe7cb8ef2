package fusefs

import (
	"math/bits"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// Stats counts the requests the daemon answered, per FUSE opcode, with a
// log2 histogram of their service time. It works on every kernel (6.1 has
// no fuse tracepoints) and is what `cryptfs stats` shows next to the eBPF
// figures.
type Stats struct {
	ops [maxOpcode]opCounter
}

const (
	maxOpcode   = 64
	histBuckets = 40 // bucket i: [2^i, 2^(i+1)) ns
)

type opCounter struct {
	count  atomic.Uint64
	errors atomic.Uint64
	hist   [histBuckets]atomic.Uint64
}

// OpStats is a snapshot of one opcode's figures.
type OpStats struct {
	Opcode fuseop.Opcode
	Count  uint64
	Errors uint64
	// Hist[i] counts requests served in [2^i, 2^(i+1)) nanoseconds.
	Hist []uint64
}

func newStats() *Stats { return &Stats{} }

// Stats returns the daemon's request counters.
func (fs *FS) Stats() *Stats { return fs.stats }

func (s *Stats) record(code fuseop.Opcode, d time.Duration, errno syscall.Errno) {
	if code >= maxOpcode {
		return
	}
	c := &s.ops[code]
	c.count.Add(1)
	// A negative lookup, an absent or unsupported xattr or a deliberate
	// ENOSYS (FLUSH) is an answer, not a failure.
	if errno != 0 && errno != syscall.ENOENT && errno != syscall.ENODATA && errno != syscall.ENOSYS &&
		!(errno == syscall.EOPNOTSUPP && code == fuseop.Getxattr) {
		c.errors.Add(1)
	}
	ns := max(uint64(d.Nanoseconds()), 1)
	b := min(bits.Len64(ns)-1, histBuckets-1)
	c.hist[b].Add(1)
}

// Snapshot returns the figures of every opcode seen so far.
func (s *Stats) Snapshot() []OpStats {
	var out []OpStats
	for i := range s.ops {
		c := &s.ops[i]
		n := c.count.Load()
		if n == 0 {
			continue
		}
		o := OpStats{Opcode: fuseop.Opcode(i), Count: n, Errors: c.errors.Load(), Hist: make([]uint64, histBuckets)}
		for b := range c.hist {
			o.Hist[b] = c.hist[b].Load()
		}
		out = append(out, o)
	}
	return out
}
