package daemon

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/meta"
)

// Mode is the --fast-path choice: a tier, or Auto (ebpf when the kernel
// has the cryptfs hook and the process may use it, else kernel-cache).
type Mode struct {
	Auto bool
	Tier meta.Tier // when not Auto
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
}

func (t *tierChoice) close() {
	if t.fp != nil {
		t.fp.Close()
		t.fp = nil
	}
}

// chooseTier resolves m to a tier this kernel and process support,
// loading the eBPF program for the ebpf tier. shadow loads it without
// the hook (the maps are filled, the program never runs for real).
func chooseTier(m Mode, shadow bool) (tierChoice, error) {
	if !m.Auto && m.Tier != meta.EBPF {
		return tierChoice{tier: m.Tier, reason: "requested"}, nil
	}
	fallback := func(why string) (tierChoice, error) {
		if m.Auto {
			return tierChoice{tier: meta.KernelCache, reason: "auto: " + why}, nil
		}
		return tierChoice{}, fmt.Errorf("--fast-path=ebpf: %s; use --fast-path=auto or kernel-cache", why)
	}
	if shadow {
		fp, err := loadFastPath()
		if err != nil {
			return tierChoice{}, fmt.Errorf("--bpf-shadow: %w", err)
		}
		return tierChoice{tier: meta.EBPF, reason: "shadow: maps filled, program not attached (testing)", fp: fp}, nil
	}
	if os.Geteuid() != 0 {
		return fallback("the ebpf tier needs root (it mounts with mount(2) and loads BPF programs)")
	}
	if !kernelHasHook() {
		return fallback("the running kernel has no cryptfs fast-path hook (see docs/fast-path.md)")
	}
	fp, err := loadFastPath()
	if err != nil {
		return fallback("cannot load the fast-path program: " + err.Error())
	}
	return tierChoice{tier: meta.EBPF, reason: "the kernel has the cryptfs fast-path hook", fp: fp, attach: true}, nil
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

// kernelHasHook probes for the cryptfs FUSE hook: on a kernel without it
// the attach ioctl is unknown to /dev/fuse (ENOTTY); with it, detaching
// from a descriptor without a connection fails otherwise.
func kernelHasHook() bool {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	err = fastpath.Detach(fd)
	return !errors.Is(err, unix.ENOTTY)
}
