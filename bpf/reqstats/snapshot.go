package reqstats

import (
	"math"
	"sort"
	"time"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// OpStats are the counters of one opcode.
type OpStats struct {
	Sent   uint64        // requests sent to user space
	Done   uint64        // of those, ended while counted
	Errors uint64        // ended with an error reply
	Total  time.Duration // summed latency of the Done requests
	// Hist[b] counts Done requests with a latency in [2^b, 2^(b+1)) ns
	// (Hist[0] also holds 0 and 1 ns; the last bucket is open-ended).
	Hist [Buckets]uint64
}

// Snapshot are the counters of one connection at one moment.
type Snapshot struct {
	Device uint32 // major<<20 | minor of the connection
	// Ops holds the opcodes with a non-zero counter; opcodes >= 64 are
	// counted under opcode 0.
	Ops map[fuseop.Opcode]OpStats
}

// Sent returns the requests sent to user space, all opcodes together.
func (s Snapshot) Sent() uint64 {
	var n uint64
	for _, o := range s.Ops {
		n += o.Sent
	}
	return n
}

// Opcodes returns the opcodes of s in increasing order.
func (s Snapshot) Opcodes() []fuseop.Opcode {
	ops := make([]fuseop.Opcode, 0, len(s.Ops))
	for op := range s.Ops {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i] < ops[j] })
	return ops
}

// Sub returns the counters accumulated between prev and s, both taken
// from the same Collector.
func (s Snapshot) Sub(prev Snapshot) Snapshot {
	d := Snapshot{Device: s.Device, Ops: make(map[fuseop.Opcode]OpStats)}
	for op, o := range s.Ops {
		p := prev.Ops[op]
		o.Sent -= p.Sent
		o.Done -= p.Done
		o.Errors -= p.Errors
		o.Total -= p.Total
		for b := range o.Hist {
			o.Hist[b] -= p.Hist[b]
		}
		if o != (OpStats{}) {
			d.Ops[op] = o
		}
	}
	return d
}

// Mean returns the mean latency of the Done requests (0 if none).
func (o OpStats) Mean() time.Duration {
	if o.Done == 0 {
		return 0
	}
	return o.Total / time.Duration(o.Done)
}

// BucketBounds returns the latency range [lo, hi) of histogram bucket b.
// The last bucket is open-ended; its hi is where it would end.
func BucketBounds(b int) (lo, hi time.Duration) {
	if b == 0 {
		return 0, 2
	}
	return time.Duration(1) << b, time.Duration(1) << (b + 1)
}

// Percentile returns an upper bound of the q-quantile (0 < q <= 1, e.g.
// 0.99) of the latencies in the histogram: the end of the bucket that holds
// it, so at most twice the true value. It returns 0 for an empty
// histogram.
func (o OpStats) Percentile(q float64) time.Duration {
	var total uint64
	for _, n := range o.Hist {
		total += n
	}
	if total == 0 || q <= 0 {
		return 0
	}
	if q > 1 {
		q = 1
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for b, n := range o.Hist {
		seen += n
		if seen >= rank {
			_, hi := BucketBounds(b)
			return hi
		}
	}
	_, hi := BucketBounds(Buckets - 1)
	return hi
}
