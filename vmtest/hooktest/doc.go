// Command hooktest is the end-to-end smoke test of the FUSE fast-path
// kernel patch (bpf/kernel/). It runs as root inside the qemu guest built
// by vmtest/build-kernel.sh (see vmtest/smoke.sh) and needs the patched
// kernel: on any other kernel it prints a SKIP line and exits with status
// 77.
//
// The process that starts it is the parent. It starts a child daemon
// (hooktest serve MOUNTPOINT) that opens /dev/fuse itself, mounts it with
// mount(2), serves a tiny in-memory file system through jacobsa/fuse on
// /dev/fd/N, counts every LOOKUP, GETATTR and GETXATTR it receives, loads
// the real fast-path program (bpf/fastpath) and publishes to its maps
// answers that differ from the daemon's own (a file size of 4242 instead
// of 5, a negative entry for a name the daemon knows, an xattr value). The
// parent never serves the mount it stats, so it cannot deadlock on it.
//
// The parent then checks, printing one PASS or FAIL line per check:
//
//	(a) with the program attached, stat and getxattr get the program's
//	    answers (served LOOKUP, negative LOOKUP, GETATTR, GETXATTR value,
//	    size query, ERANGE and ENODATA), and unknown names still reach the
//	    daemon;
//	(b) the daemon received no request for what the program answered;
//	(c) detaching restores the daemon's answers and its upcalls;
//	(d) the attach ioctl rejects wrong-type, non-sleepable, oversized-ctx,
//	    non-BPF and bad fds with EINVAL/EBADF, and unprivileged callers with
//	    EPERM, while a program touching exactly the whole ctx is accepted;
//	(e) teardown with a program attached is clean: unmount, and kill -9 of
//	    the daemon (the aborted connection answers ENOTCONN, not from the
//	    program), each release the kernel's program reference, and the
//	    kernel log shows no oops, BUG or WARNING.
//
// It ends with "hooktest: N passed, M failed" and exits non-zero if any
// check failed.
package main
