// Package treelock keeps one cryptfs daemon per cipher tree.
//
// A daemon holds a lock on its cipher directory for its whole life:
// flock(2) on a read-only descriptor of the directory itself (no file to
// sync or to leave behind; a crash releases it with the process),
// exclusive for a read-write mount and shared for a read-only one, so that
// read-only mounts may share a tree with each other but never with a
// writer. Where the lower file system refuses flock on a directory (NFS
// emulates flock with byte-range locks, which need a file), the lock is
// taken on the reserved file .cryptfs.lock in the cipher root instead
// (docs/format.md). flock locks are per open file, so they hold across
// users: root's daemon and the owner's conflict like any two.
//
// Holders and Probe read /proc/locks, which lists every lock with the pid
// that took it, to name the daemon that holds a tree without taking or
// disturbing any lock: the command line uses Probe before it asks for a
// password; the daemon's lock (Acquire) is the authority.
package treelock
