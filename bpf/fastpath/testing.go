package fastpath

import (
	"errors"
	"os"
	"testing"
)

// LoadForTest loads a FastPath for a test and closes it at cleanup. It
// skips the test, saying why, when not running as root or when the kernel
// offers no usable BPF; any other load failure fails the test.
func LoadForTest(t testing.TB) *FastPath {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root (CAP_BPF/CAP_SYS_ADMIN)")
	}
	f, err := Load()
	if errors.Is(err, ErrUnavailable) {
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
