// Command workload runs the system-level checks of `make vmtest` that need
// a real cryptfs mount and, for the ebpf tier, the patched kernel:
//
//	workload meta      [flags]   the metadata workload and its table
//	workload coherence [flags]   the coherence stress
//	workload reuse     [flags]   a reused lower inode number shows no old facts
//
// Both drive the real binary (-bin, default /bin/cryptfs) as a separate
// process: `cryptfs init`, a background `cryptfs mount`, `cryptfs stats
// --json` for the request counters and `cryptfs unmount`. The workload
// process never serves a mount it uses. Both need root and /dev/fuse; the
// ebpf tier needs the cryptfs kernel hook (vmtest/build-kernel.sh). They
// are meant to run inside the vmtest guest (vmtest/guest.sh) but run on
// any machine with the tiers it has.
//
// # meta
//
// Builds a tree (by default 40 directories of 50 files, user xattrs on
// some, a few values too large for the program's 256-byte slots) through
// a mount, then for each tier (default off, kernel-cache, ebpf) mounts it
// and runs passes (default 3) of: lstat of every path; a recursive listing
// that does what GNU `ls -lR` does per entry (getdents, lstat, lgetxattr
// of security.selinux and system.posix_acl_access); getxattr of user.tag
// and user.big on every file. Per tier it takes, from `cryptfs stats
// --json`, the LOOKUP, GETATTR and GETXATTR requests that reached the
// daemon (field "daemon"; on 6.1 the kernel has no fuse tracepoints) and
// the program's hits, per pass and in total, with the wall time.
//
// It promises: every pass of every tier sees identical results (stat
// fields except atime, listings, xattr values and errors), the ebpf tier
// ran with the program attached and served requests, and its daemon
// requests are at most (100 - min-cut)% of the off tier's; otherwise it
// exits 1. It prints the table as Markdown between the lines
// "=== metadata table" and "=== end", for the host to pick up.
//
// # coherence
//
// Several writer processes mutate files in one directory of the mount
// (write and truncate grow a file, chmod, setxattr, rename along a chain
// of names, create and unlink), each publishing the version it completed
// in a shared memory file outside the mount after the system call
// returned. Reader processes, until the writers are done, read a
// published version and then stat or getxattr the object: the value they
// see must be at least that version (a stale size, mode or xattr, an old
// name still present, an unlinked name still present, a created name
// missing is a failure). At the end the final state must equal the last
// published one exactly, the daemon must have logged no error, and `cryptfs
// fsck` must pass. In the ebpf tier the program must have served LOOKUP,
// GETATTR and GETXATTR requests during the stress, or it tested nothing.
// The writers' operation sequences are seeded (deterministic); the
// interleaving is not, and the checks do not depend on it.
//
// # reuse
//
// Node IDs derive from lower inode numbers, and a disk file system gives a
// deleted file's number to the next file it creates. For symlinks, files
// and directories it creates an object, reads every fact of it twice (the
// second read is served from the maps in the ebpf tier), deletes it and
// creates another of the same type, until the cipher directory shows the
// old lower number reused; then the new object must show only its own
// facts (size, mode, content, symlink target, xattrs present and absent,
// directory entries present and absent). A kind whose number never came
// back in -attempts rounds is reported as not checked; if none came back,
// the check fails for having tested nothing. It is the regression check
// for stale facts of a deleted file served for a new one (first seen as
// fstest symlink failures in the guest); on any kernel, -tier ebpf
// -mount-flags=--bpf-shadow checks the daemon's side of it.
//
// # untar
//
// busybox tar -xf of a source-like archive and rm -rf of it per tier
// (default kernel-cache, ebpf): identical trees, the requests per opcode
// of each, and with -max-ratio the issue 17 target (untar.go).
//
// # bench
//
// make bench's workloads in small, for make bench-vm (bench.go): per tier
// (default off, kernel-cache, ebpf), on a fresh cipher directory, a
// streaming write with fsync, its cold read, tar -xf of the source-like
// archive, lstat of every entry warm and cold, ls -lR, rm -rf, and empty
// files created; per workload the requests per opcode that reached the
// daemon and the wall time. Every tier must see the same results. It
// prints a markdown table between "=== bench table" and "=== end", which
// vmtest.sh writes to bench/results/bench-guest.md; times are reported
// only as ratios to the first tier's in the same run.
package main
