package kmod

import (
	"fmt"
	"regexp"
	"strings"
)

// Advice is what a user can do about the ebpf tier on this system.
type Advice struct {
	// Available: cryptfs mount --fast-path=auto picks the ebpf tier now.
	Available bool `json:"available"`
	// Summary is one sentence: the verdict and why.
	Summary string `json:"summary"`
	// Command, when set, is the one command (run as root) that gets the
	// tier on this kernel.
	Command string `json:"command,omitempty"`
	// Notes are conditions around the command (Secure Boot, unmounting).
	Notes []string `json:"notes,omitempty"`
}

// debianStock matches the release of Debian 12's generic amd64 kernels, the
// ones bpf/kernel/kmod builds for (its dkms.conf BUILD_EXCLUSIVE_KERNEL).
var debianStock = regexp.MustCompile(`^6\.1\.0-[0-9]+-amd64$`)

// SupportedKernel reports whether the cryptfs module can be built for the
// running kernel: Debian 12's own 6.1 amd64 kernel.
func (s *Status) SupportedKernel() bool {
	return debianStock.MatchString(s.Kernel) && s.Debian != ""
}

// Advice turns the status into a verdict and the next step.
func (s *Status) Advice() Advice {
	var a Advice
	switch {
	case s.Hook == HookYes:
		a.Available = true
		a.Summary = "available: the kernel's fuse has the cryptfs hook; cryptfs mount (--fast-path=auto, the default, as root) uses the ebpf tier"
		if IsCryptfsVersion(s.Version) && s.Version != s.Want {
			a.Notes = append(a.Notes, fmt.Sprintf("the loaded module is %s, this cryptfs was built with %s: reinstall the module (sudo cryptfs kmod install) and reload fuse to run the same patch", s.Version, s.Want))
		}
		return a
	case s.Hook == HookUnknown && IsCryptfsVersion(s.Version):
		a.Summary = fmt.Sprintf("probably available: the loaded fuse is the cryptfs module %s, but /dev/fuse could not be probed (%s); the ebpf tier needs root", s.Version, s.HookErr)
		return a
	}

	why := ""
	if s.Hook == HookUnknown {
		why = fmt.Sprintf(" (/dev/fuse could not be probed: %s)", s.HookErr)
	}
	switch s.Form {
	case FormBuiltin:
		a.Summary = "not available: fuse is built into this kernel without the cryptfs hook, and no module can replace a built-in fuse" + why +
			"; the ebpf tier needs a kernel built with bpf/kernel's patch (or Debian 12's stock kernel with the cryptfs module); cryptfs uses the kernel-cache tier"
		return a
	case FormAbsent, FormUnknown:
		a.Summary = "not available: this kernel shows no fuse at all" + why
		return a
	}

	// fuse is a loadable module, and the loaded one (if any) lacks the hook.
	if IsCryptfsVersion(s.ModprobeVersion) {
		if s.Form == FormUnloaded {
			a.Summary = fmt.Sprintf("installed, not loaded: modprobe would load the cryptfs module %s (%s)", s.ModprobeVersion, s.Modprobe) + why
			a.Command = "modprobe fuse"
		} else {
			a.Summary = fmt.Sprintf("installed, not loaded: the running fuse is another module; modprobe would load the cryptfs module %s (%s)", s.ModprobeVersion, s.Modprobe) + why
			a.Command = "modprobe -r fuse && modprobe fuse"
			a.Notes = append(a.Notes, "modprobe -r fails while any FUSE file system is mounted: unmount them first, or reboot")
		}
		return a
	}
	if !s.SupportedKernel() {
		a.Summary = fmt.Sprintf("not available: fuse is a module here, but the cryptfs module is made for Debian 12's 6.1 amd64 kernels only (this is %s, kernel %s)", orUnknown(s.Distro), s.Kernel) + why +
			"; the ebpf tier needs a kernel built with bpf/kernel's patch"
		return a
	}
	a.Summary = "not installed: fuse is a loadable module without the cryptfs hook; the cryptfs module (built by DKMS from linux-source-6.1 and the patch) replaces it" + why
	a.Command = strings.Join([]string{
		fmt.Sprintf("apt-get install dkms linux-headers-%s linux-source-6.1=%s", s.Kernel, s.Debian),
		"cryptfs kmod install",
		"modprobe -r fuse",
		"modprobe fuse",
	}, " && ")
	a.Notes = append(a.Notes, "modprobe -r fails while any FUSE file system is mounted: unmount them first, or reboot instead of the last two steps")
	if s.SecureBoot == "on" || s.Lockdown == "integrity" || s.Lockdown == "confidentiality" {
		a.Notes = append(a.Notes, "Secure Boot/lockdown: the kernel loads only signed modules. DKMS signs with /var/lib/dkms/mok.key; enrol its certificate once with 'mokutil --import /var/lib/dkms/mok.pub', reboot and confirm in the MOK manager")
	}
	return a
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown distribution"
	}
	return s
}
