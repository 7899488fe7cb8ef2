// Package kernel holds the cryptfs FUSE fast-path patch for Debian's
// linux-source-6.1 (*.patch in this directory), the out-of-tree module that
// carries it to Debian 12's stock kernel (kmod/: build.sh, DKMS), and the
// tests that keep them honest: the patch must carry
// bpf/include/fuse_fastpath.h verbatim as include/uapi/linux/fuse_fastpath.h,
// apply without fuzz to the installed linux-source-6.1 and pass the kernel's
// scripts/checkpatch.pl --strict; kmod/build.sh must build the module
// against installed Debian headers and refuse sources or headers the patch
// was not made for.
//
// Its Go API is small: [ModuleVersion], the version string the module
// built from this series carries, and [Sources], the embedded series and
// kmod/ files. See README.md for what the patch does, kmod/README.md for
// the module, and vmtest/ for the qemu guests that run it end to end.
package kernel
