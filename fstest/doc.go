// Package fstest is a POSIX conformance suite for a mounted directory. Run executes every
// check against any directory: a plain ext4 or tmpfs directory as the reference, or a
// cryptfs FUSE mount served by another process. A check that fails on a real kernel
// filesystem is a bug in the check, so the suite's own test (TestPlainDir) runs it against
// the local filesystem, or against FSTEST_DIR when that is set.
//
// # What it promises
//
// Every check runs as a subtest in a fresh directory of its own under a directory Run creates
// inside the given one, and everything is removed afterwards (a removal failure is reported).
// Checks do not depend on timing: where a timestamp must move forward they first set it to a
// time in the past, or wait until the filesystem's own clock has passed the old value. They do
// not change process-wide state (umask, working directory, credentials): operations that need
// another identity run in a child process.
//
// # Coverage
//
//   - IO: writes and reads at offsets and lengths around 0, 1, 4095, 4096, 4097, 8191, 8192,
//     65536 and 1 MiB +- 1 into empty and existing files (compared against a model);
//     unaligned overwrites; pread/pwrite keep the offset; O_APPEND (including pwrite, and two
//     concurrent appenders whose records must all arrive whole and in order); O_TRUNC; O_EXCL
//     (EEXIST, also on a dangling symlink); O_CREAT modes; reads at and past EOF; a write seen
//     through another descriptor; an 8 MiB pseudo-random file verified by SHA-256.
//   - Sparse: a write at 100 MiB and at 4 GiB+, a write across 4 GiB, data-hole-data: sizes,
//     holes read as zeros, data intact, holes unallocated (see SparseBlocksUnreliable).
//   - Truncate: up (zeros), down into a block and up again or written beyond (the cut-off
//     bytes read as zeros, never old data), ftruncate keeping the offset, truncation seen by
//     other descriptors, EISDIR/EINVAL/ENOENT.
//   - Rename: file over file (old inode readable through an open descriptor, link count 0),
//     dir over empty dir, ENOTEMPTY, EISDIR, ENOTDIR, across directories (parent link counts,
//     ".."), to itself and onto another hard link of the same file (a no-op), an open file,
//     ENOENT/EINVAL/EBUSY.
//   - HardLinks: link counts, equal inode numbers, shared content and mode, unlink of one
//     name, links across directories and of symlinks, EPERM for directories, EEXIST.
//   - Symlinks: relative, absolute, dangling and binary targets; lstat size equals target
//     length; targets of MaxSymlinkLen (one more is ENAMETOOLONG); following through opens,
//     chains and directories; O_NOFOLLOW and loops give ELOOP; EINVAL/EEXIST/ENOENT.
//   - Special: fifos passing data between goroutines, unix socket files, character and block
//     device nodes (root; see NoDeviceNodes).
//   - Permissions: chmod/fchmod of all bits incl. set-user-ID, set-group-ID and sticky;
//     umask at creation (in a child process); access(2); and, as root, operations of another
//     user (uid 65534) in a child process: EACCES on 0600 files, directory search and write
//     permission, sticky directories, access(2), chmod and utimes by non-owners, setxattr,
//     and set-user-ID/set-group-ID cleared by a write (see NoOtherUsers).
//   - Ownership: creator owns new entries; chown/fchown/lchown (root), chown clearing
//     set-user-ID, set-group-ID directories passing their group and bit on.
//   - Timestamps: utimensat with nanoseconds on files, directories and symlinks (also before
//     1970, see NegativeTimesUnreliable, and after 2038), UTIME_OMIT, UTIME_NOW, futimens; mtime/ctime moved by write and
//     truncate, kept by read; ctime moved by chmod, chown, link, unlink and xattr changes;
//     directory mtime/ctime moved by every kind of entry change.
//   - Xattrs: user.* set/get/list/remove, XATTR_CREATE (EEXIST) and XATTR_REPLACE (ENODATA),
//     empty, binary (all 256 byte values) and large values (MaxXattrValueLen), MaxXattrs
//     attributes on one file, ENODATA, ERANGE on small buffers, size queries, directories,
//     descriptors, names up to MaxXattrNameLen (ERANGE beyond), EPERM on symlinks, xattrs
//     following rename and hard links.
//   - Names: every byte 1..255 except '/' alone, tripled and inside directory names; one name
//     with every byte; names of exactly MaxNameLen bytes for every entry kind and
//     ENAMETOOLONG one byte beyond for every operation; UTF-8 without normalisation or case
//     folding, and invalid UTF-8; dot, space and lookalike metadata names.
//   - Trees: 64 nested directories; a path of exactly PATH_MAX-1 bytes built with mkdirat
//     (ENAMETOOLONG one byte beyond); a tree deeper than PATH_MAX used through descriptors.
//   - Directories: mkdir/rmdir and their errors, exact listings with d_ino and d_type,
//     listing while another goroutine creates and removes entries (no duplicates, stable
//     entries exactly once), 5000 entries, seekdir/telldir via d_off and rewinddir, link
//     counts, an open removed directory.
//   - UnlinkedOpen: I/O, fstat (link count 0), ftruncate, fchmod, fchown, xattrs and futimens
//     through the descriptor of an unlinked file; the name is gone and reusable.
//   - Misc: statfs/fstatfs sanity and f_namelen == MaxNameLen; fsync, fdatasync, directory
//     fsync, syncfs; mmap shared write with msync, read-only and private mappings.
//
// # Options
//
// The zero Options asks for strict Linux ext4/tmpfs behaviour. NoDeviceNodes,
// SparseBlocksUnreliable, NegativeTimesUnreliable and NoOtherUsers relax specific checks; MaxNameLen, MaxXattrNameLen,
// MaxXattrValueLen, MaxXattrs and MaxSymlinkLen resize limits (0 means the ext4 value). Each
// field's comment says what it changes and why a filesystem may need it.
//
// # Beyond POSIX: the model checker
//
// RunModel applies a seeded random sequence of operations (reads, writes at
// block boundaries, truncates, fallocate, writes through mmap in a helper
// process, renames, links, unlinks, directories, symlinks, xattrs, chmod,
// utimens) to a file system under test and to a reference directory and
// compares the two trees every few operations; Shrink reduces a failing
// sequence to a short one, Replay re-runs a saved one. This package's own
// tests run the suite and the model checker on plain directories only.
// What runs them against real cryptfs mounts (the suite per tier, and the
// reliability tests: model, concurrency, crash, fault, tamper and hostile
// input) is in fstest/e2e, which mounts through the harness in
// fstest/cryptfstest. docs/testing.md says how to run them and how to
// reproduce a failure from its seed.
//
// # Helper processes
//
// Checks that act as another user or with another umask re-execute the test binary with the
// environment variable FSTEST_HELPER_REQUEST set. This package's init function serves such a
// request and exits before any test runs, so any test binary that imports fstest works
// without a TestMain. The child drops to the requested uid/gid itself and works relative to
// an inherited directory descriptor, because the test binary and t.TempDir's parents are not
// accessible to another user.
package fstest
