//go:build linux

package fuse_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jacobsa/fuse"
)

// configure applies a test's server options to the mount configuration.
func configure(cfg *fuse.MountConfig, o serverOptions) error {
	if o.Transport != "" {
		t, err := fuse.ParseTransport(o.Transport)
		if err != nil {
			return err
		}
		cfg.Transport = t
	}
	cfg.URingQueueDepth = o.Depth
	cfg.EnableAdaptivePolling = o.Poll
	return nil
}

// mountStatus is what the serving process reports about its mount.
func mountStatus(mfs *fuse.MountedFileSystem) map[string]any {
	st := mfs.Transport()
	return map[string]any{
		"transport": st.Transport.String(),
		"queues":    st.Queues,
		"depth":     st.QueueDepth,
		"pinned":    st.Pinned,
		"fallback":  st.Fallback,
		"polling":   st.AdaptivePolling,
		"summary":   st.String(),
	}
}

// sourceOf names where a connection's ops come from: "dev" or "qN".
func sourceOf(c *fuse.Connection) string {
	if q := c.Queue(); q >= 0 {
		return fmt.Sprintf("q%d", q)
	}
	return "dev"
}

const enableURing = "/sys/module/fuse/parameters/enable_uring"

// setEnableURing sets the fuse module's enable_uring parameter for the rest
// of the test and puts the old value back afterwards. It skips the test
// where the kernel has no FUSE over io_uring.
func setEnableURing(t testing.TB, on bool) {
	t.Helper()
	old, err := os.ReadFile(enableURing)
	if err != nil {
		t.Skipf("this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING): %v", err)
	}
	want := "N"
	if on {
		want = "Y"
	}
	if err := os.WriteFile(enableURing, []byte(want), 0); err != nil {
		t.Skipf("cannot set %s: %v", enableURing, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(enableURing, []byte(strings.TrimSpace(string(old))), 0); err != nil {
			t.Errorf("restore %s: %v", enableURing, err)
		}
	})
}
