package meta_test

import (
	"errors"
	"testing"

	"github.com/cryptfs/cryptfs/bpf/reqstats"
	"github.com/cryptfs/cryptfs/internal/control"
)

// requestCollector opens the tracepoint collector of FUSE requests for the
// mount at dir, or skips the test where the kernel has no fuse tracepoints.
// The caller closes it.
func requestCollector(t *testing.T, dir string) *reqstats.Collector {
	t.Helper()
	dev, err := control.Device(dir)
	if err != nil {
		t.Fatal(err)
	}
	col, err := reqstats.Open(dev)
	if errors.Is(err, reqstats.ErrUnavailable) {
		t.Skipf("skipping: the fuse tracepoints are unavailable: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return col
}

// mustDo fails the test at once on err.
func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
