// Package kernel holds the cryptfs FUSE fast-path patch for Debian's
// linux-source-6.1 (*.patch in this directory) and the tests that keep it
// honest: the patch must carry bpf/include/fuse_fastpath.h verbatim as
// include/uapi/linux/fuse_fastpath.h, apply without fuzz to the installed
// linux-source-6.1 and pass the kernel's scripts/checkpatch.pl --strict.
// It has no Go API. See README.md for what the patch does, and
// vmtest/ for the qemu guest that runs it end to end.
package kernel
