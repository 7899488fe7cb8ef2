package daemon

import "testing"

func TestHeapLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, heapFloor},
		{40 * mib, heapFloor},                     // small trees: GOGC=100 below the floor
		{62 * mib, heapFloor},                     // 62*1.5+16 = 109
		{66 * mib, 115 * mib},                     // the kernel source tree in kernel-cache
		{100 * mib, 166 * mib},                    // the same tree in the off tier
		{1 << 30, 1<<30 + 512*mib + heapOverhead}, // a large home directory
	} {
		got := heapLimit(c.live)
		if got != c.want {
			t.Errorf("heapLimit(%d MiB) = %d MiB, want %d MiB", c.live/mib, got/mib, c.want/mib)
		}
		// The collector always has at least half the live heap of headroom.
		if c.live > 0 && got < int64(c.live+c.live/2) {
			t.Errorf("heapLimit(%d MiB) = %d MiB leaves less than half the live heap of headroom", c.live/mib, got/mib)
		}
	}
}
