package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/kmod"
	"github.com/cryptfs/cryptfs/meta"
)

// Kernel trees as /proc, /sys and /lib/modules show them, for kmod.System.
var (
	// builtinTree is this development host: fuse built in, no modules.
	builtinTree = map[string]string{
		"proc/sys/kernel/osrelease":                 "6.18.44-fc-v1272\n",
		"proc/version":                              "Linux version 6.18.44-fc-v1272 (gcc 12) #1 SMP PREEMPT_DYNAMIC\n",
		"proc/filesystems":                          "nodev\tsysfs\nnodev\tfuse\n\tfuseblk\n",
		"sys/module/fuse/parameters/max_user_bgreq": "1179\n",
	}
	// debianTree is Debian 12's stock kernel with its own fuse.ko loaded.
	debianTree = map[string]string{
		"proc/sys/kernel/osrelease":              "6.1.0-57-amd64\n",
		"proc/version":                           "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)\n",
		"proc/modules":                           "fuse 180224 3 - Live 0x0000000000000000\n",
		"proc/filesystems":                       "nodev\tsysfs\nnodev\tfuse\n",
		"etc/os-release":                         "ID=debian\nVERSION_ID=\"12\"\n",
		"sys/module/fuse/initstate":              "live\n",
		"lib/modules/6.1.0-57-amd64/modules.dep": "kernel/fs/fuse/fuse.ko:\n",
	}
)

// withOurModule is debianTree with the cryptfs module loaded.
func withOurModule(version string) map[string]string {
	m := map[string]string{"sys/module/fuse/version": version + "\n", "sys/module/fuse/taint": "OE\n"}
	for k, v := range debianTree {
		m[k] = v
	}
	return m
}

func kernelProbe(t *testing.T, files map[string]string, hook kmod.Hook) func() *kmod.Status {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sys := kmod.System{Root: root, ProbeHook: func() (kmod.Hook, error) { return hook, nil }}
	return sys.Probe
}

// TestChooseTier: tiers asked for by name are taken as they are; ebpf
// needs root, the kernel hook and BPF; auto falls back to kernel-cache
// and says why in words that tell the user what to do; the status shows
// what was wanted and what the kernel's fuse is.
func TestChooseTier(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the ebpf tier needs root; as another user every case is 'needs root'")
	}
	fp, err := fastpath.Load()
	if err != nil {
		t.Skipf("cannot load the fast-path program here: %v", err)
	}
	fp.Close()
	ours := kmod.Probe().Want
	tests := []struct {
		name    string
		mode    Mode
		files   map[string]string
		hook    kmod.Hook
		tier    meta.Tier
		err     string // substring of the error; "" = no error
		reason  string // substring of the reason
		kernel  string // the status's kernel summary
		wantBPF bool
	}{{
		name: "off requested", mode: Mode{Tier: meta.Off}, files: debianTree, hook: kmod.HookNo,
		tier: meta.Off, reason: "requested",
		kernel: "loadable module, loaded, no version (not the cryptfs module), cryptfs hook: no",
	}, {
		name: "kernel-cache requested on our module", mode: Mode{Tier: meta.KernelCache}, files: withOurModule(ours), hook: kmod.HookYes,
		tier: meta.KernelCache, reason: "requested",
		kernel: "loadable module, loaded, " + ours + ", cryptfs hook: yes",
	}, {
		name: "auto on this kind of host (built in, no hook)", mode: Mode{Auto: true}, files: builtinTree, hook: kmod.HookNo,
		tier: meta.KernelCache, wantBPF: true,
		reason: "auto: this kernel's fuse is built in without the cryptfs hook, and a built-in fuse cannot be replaced by a module",
		kernel: "built-in, no version (not the cryptfs module), cryptfs hook: no",
	}, {
		name: "auto on Debian 12's stock module", mode: Mode{Auto: true}, files: debianTree, hook: kmod.HookNo,
		tier: meta.KernelCache, wantBPF: true,
		reason: "auto: this kernel's fuse module has no cryptfs hook; run 'cryptfs kmod install' (Debian 12",
	}, {
		name: "ebpf on Debian 12's stock module", mode: Mode{Tier: meta.EBPF}, files: debianTree, hook: kmod.HookNo,
		err: "--fast-path=ebpf: this kernel's fuse module has no cryptfs hook; run 'cryptfs kmod install'",
	}, {
		name: "auto on our module", mode: Mode{Auto: true}, files: withOurModule(ours), hook: kmod.HookYes,
		tier: meta.EBPF, wantBPF: true,
		reason: "the kernel's fuse has the cryptfs hook (loadable module, loaded, " + ours + ", cryptfs hook: yes)",
		kernel: "loadable module, loaded, " + ours + ", cryptfs hook: yes",
	}, {
		name: "ebpf on an older cryptfs module", mode: Mode{Tier: meta.EBPF}, files: withOurModule("cryptfs-000000000000"), hook: kmod.HookYes,
		tier: meta.EBPF, wantBPF: true,
		reason: "this cryptfs was built for " + ours + ": 'cryptfs kmod install'",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := chooseTierOn(tt.mode, false, kernelProbe(t, tt.files, tt.hook))
			defer c.close()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.tier != tt.tier || !strings.Contains(c.reason, tt.reason) {
				t.Errorf("tier %v (%s), want %v (%s)", c.tier, c.reason, tt.tier, tt.reason)
			}
			if (c.fp != nil) != (tt.tier == meta.EBPF) || c.attach != (tt.tier == meta.EBPF) {
				t.Errorf("program %v, attach %v for tier %v", c.fp != nil, c.attach, c.tier)
			}
			var st control.Status
			c.describe(&st)
			if st.Tier != tt.tier.String() || st.TierReason != c.reason || st.FastPathWanted != tt.mode.String() || st.EBPFWanted != tt.wantBPF {
				t.Errorf("status %+v: want tier %v, wanted %v (ebpf %v)", st, tt.tier, tt.mode, tt.wantBPF)
			}
			if st.Kernel == nil {
				t.Fatal("status without the kernel's fuse")
			}
			if tt.kernel != "" && st.Kernel.Summary != tt.kernel {
				t.Errorf("kernel summary %q, want %q", st.Kernel.Summary, tt.kernel)
			}
			if st.Kernel.Release == "" || st.Kernel.Hook != tt.hook.String() {
				t.Errorf("kernel %+v, want a release and hook %v", *st.Kernel, tt.hook)
			}
		})
	}
}

// TestChooseTierThisHost: on the real kernel, auto picks ebpf exactly
// when kmod's probe finds the hook, and otherwise says why.
func TestChooseTierThisHost(t *testing.T) {
	k := kmod.Probe()
	auto, err := chooseTier(Mode{Auto: true}, false)
	if err != nil {
		t.Fatalf("auto: %v", err)
	}
	defer auto.close()
	hook := os.Geteuid() == 0 && k.Hook == kmod.HookYes
	switch {
	case hook && auto.tier != meta.EBPF && !strings.Contains(auto.reason, "cannot load"):
		t.Errorf("auto with the kernel hook: %+v", auto)
	case !hook && (auto.tier != meta.KernelCache || !strings.HasPrefix(auto.reason, "auto: ")):
		t.Errorf("auto without the kernel hook (or root): tier %v, reason %q; want kernel-cache and why", auto.tier, auto.reason)
	case !hook && os.Geteuid() == 0 && auto.reason != "auto: "+k.Why():
		t.Errorf("auto without the hook: reason %q, want kmod's %q", auto.reason, k.Why())
	}
	shadow, err := chooseTier(Mode{Tier: meta.EBPF}, true)
	if errors.Is(err, fastpath.ErrUnavailable) {
		t.Logf("shadow mode not checked: %v", err)
		return
	}
	defer shadow.close()
	if err != nil || shadow.tier != meta.EBPF || shadow.fp == nil || shadow.attach {
		t.Errorf("shadow: %+v, %v; want the ebpf tier with a program, not attached", shadow, err)
	}
}
