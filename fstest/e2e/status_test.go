package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/kmod"
)

// TestStatusKernelSide: cryptfs status names the tier, what was wanted,
// the kernel's fuse (built in or a module, its version, the hook) and,
// when the ebpf tier was wanted but not used, why in plain words: the
// same verdict as cryptfs kmod status, probed here independently.
func TestStatusKernelSide(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	k := kmod.Probe() // this test runs as root, like the daemon
	t.Logf("kernel: %s; why not ebpf: %q", k.Describe(), k.Why())
	wantTier, wantReason := "kernel-cache", "auto: "+k.Why()
	if k.Hook == kmod.HookYes {
		wantTier, wantReason = "ebpf", "the kernel's fuse has the cryptfs hook ("+k.Describe()+")"
	}

	for _, tc := range []struct {
		fastPath string
		tier     string
		reason   string
		ebpf     bool
	}{
		{"auto", wantTier, wantReason, true},
		{"off", "off", "requested", false},
	} {
		t.Run(tc.fastPath, func(t *testing.T) {
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{FastPath: tc.fastPath, Background: true})
			st, err := m.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Tier != tc.tier || !strings.HasPrefix(st.TierReason, tc.reason) {
				t.Errorf("tier %q (%s), want %q (%s)", st.Tier, st.TierReason, tc.tier, tc.reason)
			}
			if st.FastPathWanted != tc.fastPath || st.EBPFWanted != tc.ebpf {
				t.Errorf("wanted %q (ebpf %v), want %q (ebpf %v)", st.FastPathWanted, st.EBPFWanted, tc.fastPath, tc.ebpf)
			}
			if st.Kernel == nil {
				t.Fatal("status says nothing about the kernel's fuse")
			}
			if st.Kernel.Form != k.Form.String() || st.Kernel.Version != k.Version || st.Kernel.Hook != k.Hook.String() || st.Kernel.Summary != k.Describe() {
				t.Errorf("kernel %+v, probed here: %s", *st.Kernel, k.Describe())
			}

			out, code := cryptfstest.Run(t, "", "status", m.Dir)
			if code != 0 {
				t.Fatalf("status: exit %d\n%s", code, out)
			}
			for _, line := range []string{
				"Fast path:   " + tc.tier + " (" + st.TierReason + ")",
				"Wanted:      --fast-path=" + tc.fastPath + " (ebpf tier wanted: " + map[bool]string{true: "yes", false: "no"}[tc.ebpf] + ")",
				"Kernel FUSE: " + k.Describe() + " (kernel " + k.Kernel + ")",
			} {
				if !strings.Contains(out, line+"\n") {
					t.Errorf("status output lacks %q:\n%s", line, out)
				}
			}
			t.Logf("cryptfs status:\n%s", out)
		})
	}
}
