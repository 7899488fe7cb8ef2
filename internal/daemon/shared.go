package daemon

import (
	"errors"

	"github.com/cryptfs/cryptfs/meta"
)

// CheckShared checks the options that go with --shared-storage (shared):
// not reverse mode (a read-only view of a plaintext directory, which it
// reads afresh anyway), not the ebpf tier (its maps answer in the kernel
// without asking the daemon, so they would keep what changed outside).
func CheckShared(shared, reverse bool, m Mode, shadow bool) error {
	if !shared {
		return nil
	}
	if reverse {
		return errors.New("--shared-storage does not apply to --reverse")
	}
	if shadow || (!m.Auto && m.Tier == meta.EBPF) {
		return errors.New("--shared-storage cannot use the ebpf fast path (its in-kernel answers would miss outside changes): use --fast-path=auto, kernel-cache or off")
	}
	return nil
}

// sharedTier is the tier of a shared-storage mount: kernel-cache (with
// short validity, meta.NewShared) for auto, else the one requested.
func sharedTier(m Mode) tierChoice {
	if m.Auto {
		return tierChoice{tier: meta.KernelCache, reason: "shared storage: kernel-cache with 1 s validity"}
	}
	return tierChoice{tier: m.Tier, reason: "requested, shared storage"}
}
