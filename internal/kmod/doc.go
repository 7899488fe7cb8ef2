// Package kmod tells whether the running kernel's FUSE can serve the
// cryptfs eBPF fast path, and what it takes to get it there.
//
// The fast path needs the cryptfs hook in the kernel's fs/fuse
// (bpf/kernel): either a kernel built with the patch (fuse built in), or,
// on Debian 12's stock kernel, where fuse is a loadable module, the
// out-of-tree fuse.ko that bpf/kernel/kmod builds and DKMS installs into
// /lib/modules/KVER/updates/dkms. [Probe] reads what the running system
// says about it:
//
//   - whether fuse is built in, a loaded module, or a module not loaded
//     (/sys/module/fuse, /proc/modules, /proc/filesystems,
//     /lib/modules/KVER/modules.builtin and modules.dep);
//   - the loaded module's version (/sys/module/fuse/version: the cryptfs
//     module carries "cryptfs-" and the first 12 hex digits of its patch
//     series' sha256, the stock module has none) and taint flags;
//   - whether /dev/fuse answers the attach ioctl (the one reliable test:
//     a fuse without the hook answers ENOTTY);
//   - which fuse.ko `modprobe fuse` would load next and its version (the
//     ELF .modinfo of the file modules.dep names);
//   - the kernel's Debian version, the distribution, Secure Boot and
//     lockdown, which decide the advice.
//
// [Status.Advice] turns that into one verdict and, where the tier can be
// had without changing the kernel, the one command that gets it.
// [Status.Why] is its short form, "" exactly when the hook is there: the
// daemon's --fast-path=auto takes the ebpf tier on that (the one test it
// makes of the kernel) and `cryptfs status` shows the reason otherwise;
// [Status.Describe] is the kernel's fuse in a few words for that status.
//
// Everything is read below a root directory, so the tests run against fake
// /proc, /sys and /lib/modules trees; the hook probe is a function the
// caller passes ([ProbeDevFuse] on a real system).
package kmod
