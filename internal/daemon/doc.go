// Package daemon wires a cryptfs mount together and serves it until it is
// unmounted: it unlocks the keys into a crypt.Suite, takes the cipher
// tree's lock for its whole life (package treelock: one daemon per tree,
// read-only daemons may share; a second one fails naming the first mount
// and its pid), chooses the fast-path
// tier (probing the kernel for the cryptfs hook and loading the eBPF
// program), mounts (with mount(2) on a /dev/fuse descriptor of its own for
// the ebpf tier, so the program can be attached to the connection), serves
// the file system of package fusefs, answers `cryptfs status` and `cryptfs
// stats` on the control socket (merging the tracepoint collector's, the
// daemon's and the program's figures), tells systemd when it is ready, and
// keeps the process fit for a long life (descriptor limit, readahead, a
// soft memory limit that follows the live heap).
//
// As root, neither path it is given is followed through a symlink: the
// cipher directory is the descriptor it locked (opened with
// RESOLVE_NO_SYMLINKS) and the mountpoint is mounted on through
// /proc/self/fd/N of a descriptor opened the same way, so a user who
// controls a component of either path cannot redirect a root mount.
//
// The command line (cmd/cryptfs) parses flags, reads the password, starts
// the background process and calls Serve; nothing else. Serve runs in the
// process that serves the mount: a process must never open files on a FUSE
// mount it serves itself (the Go poller would deadlock on FUSE_POLL), so
// tests run it in a child process.
package daemon
