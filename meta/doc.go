// Package meta is the daemon's authoritative metadata cache: inode
// attributes, directory entries (positive and negative) and extended
// attributes (present and absent), the per-inode lock, and the publishing of
// every cached fact to the fast path.
//
// # Tiers
//
// A mount runs in one Tier (cryptfs mount --fast-path):
//
//   - Off: replies carry zero entry and attribute validity, so the kernel
//     asks the daemon for every LOOKUP and GETATTR. The honest baseline.
//   - KernelCache: replies carry long validity (see Policy), READDIRPLUS
//     fills the kernel's dentry and attribute caches, negative dentries are
//     cached. GETXATTR still reaches the daemon, which answers from this
//     cache without touching the lower directory.
//   - EBPF: the same facts are written to the eBPF maps that the in-kernel
//     program answers from; replies carry zero validity so that the maps,
//     not kernel timers, decide what is current.
//
// # Coherence rules
//
// The daemon is the only writer of the lower directory while it is mounted
// (the lower directory is not "shared storage"). Under that assumption the
// cache is exact, and these rules keep every copy of a fact coherent:
//
//  1. Every fact is written and dropped while holding the lock of the inode it
//     describes (Node.Lock); for a directory entry that is the directory's
//     lock. An operation that changes a fact holds that lock from before it
//     changes the lower file until after the cache and every Sink are
//     updated, and only then replies. So a Sink can never receive a stale
//     fact after the invalidation that superseded it: a reader that loaded
//     the old fact either published before the writer took the lock (and the
//     writer then drops it) or waits for the writer.
//  2. A change made by an operation the kernel sent (create, unlink, rename,
//     setattr, write, setxattr, ...) updates or drops the daemon cache and
//     the eBPF maps (Changed*). The kernel updates its own caches for the
//     operations it performs, so no notification is sent for them.
//  3. A change the kernel cannot know about (the lower file changed behind
//     the daemon's back, an inode that reappeared with another type) is
//     additionally sent to the kernel as an InvalidateEntry/InvalidateInode
//     notification (Revoke*). Notifications are queued and sent by their own
//     goroutine, never from inside the operation: the kernel may hold a
//     directory lock while it waits for the operation's reply, and a
//     synchronous notification on that directory would deadlock.
//  4. Inodes published to the eBPF maps stay in the daemon's inode table as
//     long as any published dentry can lead the kernel to them: a served
//     positive LOOKUP raises the kernel's lookup count without the daemon
//     seeing it, so FORGET accounting adds the served count the program
//     keeps per node (ServedLookups) before deciding an inode is gone.
package meta
