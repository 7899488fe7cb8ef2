// Package e2e holds the end-to-end tests: every test that mounts the real
// cryptfs binary, through the harness in fstest/cryptfstest. It has no
// code of its own outside its tests.
//
//   - cryptfs_test.go: the POSIX suite (fstest.Run) on real mounts in the
//     off and kernel-cache tiers (or $CRYPTFS_TIERS) and in
//     deterministic-names mode, then a clean fsck; plaintext never in the
//     cipher tree or the debug log; a tampered block; atime.
//   - mount_test.go: `cryptfs mount` and `unmount` as a user runs them
//     (background mount, exit codes, password sources, --ro, signals,
//     undecryptable names).
//   - reliability_*_test.go: the model checker against a real mount,
//     concurrency, crash (kill -9), faults (ENOSPC, read-only lower,
//     changes behind the daemon's back), tampering and hostile input;
//     workers_test.go runs their worker processes.
//   - reverse_test.go: reverse mode (init/mount --reverse) with real
//     tools: a cp -a copy, rsync and restic backups of a view mount in
//     forward mode and give the plaintext back; views are identical across
//     mounts; one changed block changes one stored block; the second rsync
//     or restic run finds only the changed files; every change is EROFS.
//     rsync and restic tests skip where the tool is missing (make deps
//     installs both).
//   - harness_test.go: the harness's own promises (background mounts,
//     kill -9, a refused unmount of a busy mount, a refused second mount,
//     Abort of a hung daemon, a daemon of another user with its own
//     environment).
//   - conflict_test.go: sync tools' conflict copies (Syncthing, Dropbox,
//     Nextcloud, ownCloud, OneDrive) listed, read, written, resolved
//     through a mount, and listed by fsck as conflicts.
//   - backup_test.go: the cipher tree backed up with restic and rsync and
//     restored with `cryptfs restore` and by mounting the copy, compared
//     with the plaintext (skips without the tools).
//   - shared_storage_test.go: mount --shared-storage against a sync
//     client (rsync from a second mount's copy of the tree, temporary
//     file and rename): changes show within the 1 s bound, reads by path
//     never get ESTALE or a mix of versions, a burst of 10,000 changes,
//     the POSIX suite on the mode, its request counts next to the
//     default mode (docs/shared-storage.md). shared_path_test.go:
//     cryptfs path of a mounted tree through its daemon.
//   - pathlen_test.go: the cipher path lengths of the Go tree on real
//     cryptfs and gocryptfs mounts (at most twice gocryptfs's).
//   - fastpath_test.go, tier_test.go, listing_test.go, xattrns_test.go: the
//     metadata fast path through a real daemon: every tier answers like
//     the daemon, no stale fact survives a change, and the requests that
//     reach user space are the ones docs/fast-path.md promises.
//
// The tests need root and /dev/fuse and skip with the reason otherwise;
// the fast-path ones also need BPF or the fuse tracepoints. They use
// $CRYPTFS_BIN (set by the Makefile) or build the binary once and remove
// it at the end (TestMain). docs/testing.md says how to size them
// (FSTEST_STRESS, FSTEST_MODEL_*) and how to reproduce a failure.
package e2e
