package daemon

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The daemon's heap grows with the kernel's working set (one inode, its
// names and cached metadata per file the kernel knows), plus short-lived
// garbage from every request. With Go's default GOGC=100 a large tree's
// heap may grow to twice its live size before a collection; a fixed soft
// memory limit instead makes the collector run back to back (up to half
// the CPU) once the live heap approaches it, which a fixed limit of 110 MiB
// did to a tree of 84k files in the --fast-path=off tier: 77% of the
// daemon's CPU in the collector during ls -lR.
//
// So the limit follows the live heap: heapFloor while the live heap is
// small (GOGC=100 still applies below it), and live*3/2 plus the runtime's
// own overhead above that, so each collection always has at least half
// the live heap of headroom (at most about twice as many collections as
// GOGC=100, never back-to-back ones).
const (
	heapFloor    = 110 << 20
	heapOverhead = 16 << 20 // stacks, runtime metadata, buffers outside the heap
	heapInterval = time.Second
)

// heapLimit is the soft memory limit for a live heap of live bytes.
func heapLimit(live uint64) int64 {
	return int64(max(heapFloor, live+live/2+heapOverhead))
}

// governHeap keeps the soft memory limit at heapLimit(live heap) until
// stop is closed.
func governHeap(stop <-chan struct{}) {
	debug.SetMemoryLimit(heapLimit(0))
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	go func() {
		t := time.NewTicker(heapInterval)
		defer t.Stop()
		last := heapLimit(0)
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				return
			}
			if l := heapLimit(sample[0].Value.Uint64()); l != last {
				debug.SetMemoryLimit(l)
				last = l
			}
		}
	}()
}
