package daemon

import (
	"errors"
	"fmt"
	"os"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/kmod"
	"github.com/cryptfs/cryptfs/meta"
)

// Mode is the --fast-path choice: a tier, or Auto (ebpf when the kernel
// has the cryptfs hook and the process may use it, else kernel-cache).
type Mode struct {
	Auto bool
	Tier meta.Tier // when not Auto
}

// String is the --fast-path value that selects m.
func (m Mode) String() string {
	if m.Auto {
		return "auto"
	}
	return m.Tier.String()
}

// ParseMode parses a --fast-path value: auto, ebpf, kernel-cache or off.
func ParseMode(s string) (Mode, error) {
	if s == "auto" {
		return Mode{Auto: true}, nil
	}
	t, err := meta.ParseTier(s)
	return Mode{Tier: t}, err
}

var errAttachFailed = errors.New("attaching the fast-path program failed")

// tierChoice is the chosen tier and, for ebpf, the loaded program.
type tierChoice struct {
	tier   meta.Tier
	reason string // shown by cryptfs status
	fp     *fastpath.FastPath
	attach bool // attach the program to the connection (the kernel has the hook)
	wanted Mode
	kernel *kmod.Status // the kernel's fuse, as probed when choosing
}

func (t *tierChoice) close() {
	if t.fp != nil {
		t.fp.Close()
		t.fp = nil
	}
}

// describe fills the fields of a mount's status that say what was
// wanted, what the kernel offers and what was chosen.
func (t *tierChoice) describe(st *control.Status) {
	st.Tier, st.TierReason = t.tier.String(), t.reason
	st.FastPathWanted = t.wanted.String()
	st.EBPFWanted = t.wanted.Auto || t.wanted.Tier == meta.EBPF
	if k := t.kernel; k != nil {
		st.Kernel = &control.KernelFuse{
			Release: k.Kernel, Form: k.Form.String(), Version: k.Version,
			Hook: k.Hook.String(), Summary: k.Describe(),
		}
	}
}

// chooseTier resolves m to a tier this kernel and process support,
// loading the eBPF program for the ebpf tier. shadow loads it without
// the hook (the maps are filled, the program never runs for real).
func chooseTier(m Mode, shadow bool) (tierChoice, error) {
	return chooseTierOn(m, shadow, kmod.Probe)
}

// chooseTierOn is chooseTier with the kernel probe given (kmod.Probe on
// a real system, a kmod.System over a fake tree in tests).
func chooseTierOn(m Mode, shadow bool, probe func() *kmod.Status) (tierChoice, error) {
	k := probe()
	if !m.Auto && m.Tier != meta.EBPF {
		return tierChoice{tier: m.Tier, reason: "requested", wanted: m, kernel: k}, nil
	}
	fallback := func(why string) (tierChoice, error) {
		if m.Auto {
			return tierChoice{tier: meta.KernelCache, reason: "auto: " + why, wanted: m, kernel: k}, nil
		}
		return tierChoice{}, fmt.Errorf("--fast-path=ebpf: %s; use --fast-path=auto or kernel-cache", why)
	}
	if shadow {
		fp, err := loadFastPath()
		if err != nil {
			return tierChoice{}, fmt.Errorf("--bpf-shadow: %w", err)
		}
		return tierChoice{tier: meta.EBPF, reason: "shadow: maps filled, program not attached (testing)", fp: fp, wanted: m, kernel: k}, nil
	}
	if os.Geteuid() != 0 {
		return fallback("the ebpf tier needs root (it mounts with mount(2) and loads BPF programs)")
	}
	if why := k.Why(); why != "" {
		return fallback(why)
	}
	fp, err := loadFastPath()
	if err != nil {
		return fallback("cannot load the fast-path program: " + err.Error())
	}
	reason := "the kernel's fuse has the cryptfs hook (" + k.Describe() + ")"
	if kmod.IsCryptfsVersion(k.Version) && k.Version != k.Want {
		reason += "; this cryptfs was built for " + k.Want + ": 'cryptfs kmod install' and a reload of fuse bring the module up to date"
	}
	return tierChoice{tier: meta.EBPF, reason: reason, fp: fp, attach: true, wanted: m, kernel: k}, nil
}

// loadFastPath loads the program and sets cryptfs's policy in it.
func loadFastPath() (*fastpath.FastPath, error) {
	fp, err := fastpath.Load()
	if err != nil {
		return nil, err
	}
	if err := fp.SetUserXattrsOnly(true); err != nil {
		fp.Close()
		return nil, err
	}
	return fp, nil
}
