package kmod

import "fmt"

// Why says in plain words why this kernel cannot run the ebpf tier now
// and, where one exists, the step that gets it; "" when /dev/fuse has the
// cryptfs hook. It is the reason `cryptfs status` gives for a mount that
// wanted the ebpf tier (--fast-path=auto or ebpf) and got kernel-cache;
// [Status.Advice] has the long form with every command.
func (s *Status) Why() string {
	switch {
	case s.Hook == HookYes:
		return ""
	case s.Hook == HookUnknown && IsCryptfsVersion(s.Version):
		return fmt.Sprintf("the loaded fuse is the cryptfs module %s, but /dev/fuse could not be probed for its hook (%s)", s.Version, s.HookErr)
	case s.Hook == HookUnknown:
		return fmt.Sprintf("/dev/fuse could not be probed for the cryptfs hook (%s)", s.HookErr)
	}
	switch s.Form {
	case FormBuiltin:
		return "this kernel's fuse is built in without the cryptfs hook, and a built-in fuse cannot be replaced by a module; the ebpf tier needs a kernel built with bpf/kernel's patch"
	case FormAbsent, FormUnknown:
		return "this kernel shows no fuse"
	}
	if IsCryptfsVersion(s.ModprobeVersion) {
		return fmt.Sprintf("the cryptfs fuse module %s is installed but not loaded; with no FUSE file system mounted, run 'modprobe -r fuse && modprobe fuse' (or reboot)", s.ModprobeVersion)
	}
	if !s.SupportedKernel() {
		return fmt.Sprintf("this kernel's fuse module has no cryptfs hook, and the cryptfs module is made for Debian 12's 6.1 amd64 kernels only (this is %s, kernel %s)", orUnknown(s.Distro), s.Kernel)
	}
	return "this kernel's fuse module has no cryptfs hook; run 'cryptfs kmod install' (Debian 12; 'cryptfs kmod status' prints every step)"
}

// Describe is the kernel's fuse in a few words: how it is there, its
// version, and the hook ("loadable module, loaded, cryptfs-0123456789ab,
// cryptfs hook: yes").
func (s *Status) Describe() string {
	d := s.Form.String()
	switch {
	case s.Version != "":
		d += ", " + s.Version
	case s.Form == FormModule || s.Form == FormBuiltin:
		d += ", no version (not the cryptfs module)"
	}
	d += ", cryptfs hook: " + s.Hook.String()
	return d
}
