package reqstats

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

func openForTest(t *testing.T, dev uint32) *Collector {
	t.Helper()
	c, err := Open(dev)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("request statistics unavailable here: %v", err)
	}
	if err != nil {
		t.Fatalf("Open(%d): %v", dev, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func snapshot(t *testing.T, c *Collector) Snapshot {
	t.Helper()
	s, err := c.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return s
}

func TestDeviceOfRealMount(t *testing.T) {
	mnt := mountTestFS(t)
	dev, err := mountinfo.FUSEDevice(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if want := unix.Major(st.Dev)<<20 | unix.Minor(st.Dev); dev != want {
		t.Errorf("FUSEDevice(%s) = %d, stat says %d", mnt, dev, want)
	}
	if _, err := mountinfo.FUSEDevice(filepath.Dir(mnt)); err == nil {
		t.Errorf("FUSEDevice(%s) of a plain directory succeeded", filepath.Dir(mnt))
	}
}

// TestCountsLookupsOfOneConnection stats a missing name N times on one
// mount and checks that its collector saw N LOOKUPs with their latencies,
// while collectors on a second, idle mount and on an unused device number
// saw nothing.
func TestCountsLookupsOfOneConnection(t *testing.T) {
	const n = 50
	busy, idle := mountTestFS(t), mountTestFS(t)
	busyDev, err := mountinfo.FUSEDevice(busy)
	if err != nil {
		t.Fatal(err)
	}
	idleDev, err := mountinfo.FUSEDevice(idle)
	if err != nil {
		t.Fatal(err)
	}
	if busyDev == idleDev {
		t.Fatalf("two mounts share device %d", busyDev)
	}
	cBusy := openForTest(t, busyDev)
	cIdle := openForTest(t, idleDev)
	cNone := openForTest(t, 0xffffffff)
	before := snapshot(t, cBusy)

	missing := filepath.Join(busy, "missing")
	for i := 0; i < n; i++ {
		var st unix.Stat_t
		if err := unix.Stat(missing, &st); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("stat %s: %v, want ENOENT", missing, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(busy, "file"), &st); err != nil {
		t.Fatalf("stat file: %v", err)
	}

	got := snapshot(t, cBusy).Sub(before)
	if got.Device != busyDev {
		t.Errorf("snapshot device = %d, want %d", got.Device, busyDev)
	}
	lookup := got.Ops[fuseop.Lookup]
	t.Logf("busy mount: %+v", got.Ops)
	// One LOOKUP per stat of the missing name (zero validity), one more for
	// "file"; allow the kernel a few extra requests but not double counting.
	if lookup.Sent < n+1 || lookup.Sent > 2*n {
		t.Errorf("LOOKUPs sent = %d, want %d..%d", lookup.Sent, n+1, 2*n)
	}
	if lookup.Done != lookup.Sent {
		t.Errorf("LOOKUPs done = %d, sent = %d: a synchronous request must end before stat returns", lookup.Done, lookup.Sent)
	}
	if lookup.Errors < n || lookup.Errors >= lookup.Done {
		t.Errorf("LOOKUP errors = %d, want >= %d ENOENT and < %d (one lookup succeeded)", lookup.Errors, n, lookup.Done)
	}
	var inHist uint64
	for _, c := range lookup.Hist {
		inHist += c
	}
	if inHist != lookup.Done {
		t.Errorf("histogram holds %d LOOKUPs, done = %d", inHist, lookup.Done)
	}
	if lookup.Total <= 0 || lookup.Mean() <= 0 {
		t.Errorf("LOOKUP latency total %v, mean %v: want > 0", lookup.Total, lookup.Mean())
	}
	if p50, p100 := lookup.Percentile(0.5), lookup.Percentile(1); p50 <= 0 || p50 > p100 || p100 < lookup.Mean() {
		t.Errorf("LOOKUP p50 %v, max %v, mean %v: inconsistent", p50, p100, lookup.Mean())
	}
	if got.Ops[fuseop.Getattr].Sent == 0 {
		t.Errorf("no GETATTR counted for the stat of an existing file (zero attribute validity)")
	}

	if s := snapshot(t, cIdle); s.Sent() != 0 {
		t.Errorf("collector of the idle mount counted %d requests: %+v", s.Sent(), s.Ops)
	}
	if s := snapshot(t, cNone); s.Sent() != 0 {
		t.Errorf("collector of an unused device counted %d requests: %+v", s.Sent(), s.Ops)
	}
}
