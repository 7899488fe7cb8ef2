// Package fastpathtest helps tests in other packages use the eBPF fast
// path: load the program, or skip the test saying why it cannot be loaded
// here. It is imported by tests only, so no cryptfs binary links the
// testing package.
package fastpathtest

import (
	"errors"
	"os"
	"testing"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
)

// Load loads a FastPath for a test and closes it at cleanup. It
// skips the test, saying why, when not running as root or when the kernel
// offers no usable BPF; any other load failure fails the test.
func Load(t testing.TB) *fastpath.FastPath {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root (CAP_BPF/CAP_SYS_ADMIN)")
	}
	f, err := fastpath.Load()
	if errors.Is(err, fastpath.ErrUnavailable) {
		t.Skipf("eBPF fast path unavailable on this kernel: %v", err)
	}
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}
