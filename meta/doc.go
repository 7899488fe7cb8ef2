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
// cache is exact, and these rules keep every copy of a fact coherent. (A
// shared-storage mount, NewShared, drops the assumption instead: its cache
// stores no fact, the kernel keeps each for SharedValidity at most, and
// no fast-path sink exists, so no copy can stay stale beyond that bound.)
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
//  4. FORGET in the EBPF tier: the LOOKUPs the program answered count as
//     kernel references, and a node is forgotten only by the steps below.
//
// # Forgetting a node (rule 4)
//
// Each positive LOOKUP the program answers gives the kernel one more
// reference to the child, for which it will send FORGET, without the daemon
// seeing the LOOKUP. The program counts them per node
// (Sink.ServedLookups), incrementing the count before it checks the
// child's attributes and taking the increment back when they are missing.
// The daemon's count of the kernel's references to a node is its own
// LOOKUP-like replies, plus the served count read at each FORGET (the
// difference since the last read; it may be -1 when a LOOKUP counted
// itself and then gave up), minus the FORGETs.
//
// When that reaches 0 and nothing else holds the node (no child in the
// table, no open file), the node may stay while the maps can still lead
// the kernel to it, so that the program answers its next LOOKUP (up to a
// bound on how many). To forget it, the daemon:
//
//  1. withdraws every entry naming it (WithdrawChild), each under its
//     directory's lock, so no new LOOKUP finds it;
//  2. under the node's lock, withdraws its attributes (WithdrawAttr): the
//     program counts before it checks them, so once they are gone every
//     LOOKUP it answered for the node is counted;
//  3. reads the served count again: if it moved, the kernel took new
//     references in between and the node stays (its facts go to the maps
//     again when a request needs them);
//  4. otherwise takes the node out of its table (no reply can hand it out
//     any more) and only then drops what the cache and the maps hold about
//     it (Forget: its entries as a directory, xattrs, served count), so
//     that a new node of the same lower file, or with the same ID, never
//     loses its facts to it.
//
// A count that moved by one LOOKUP about to take it back is read again a
// moment later, so no node stays for a reference nobody holds. The daemon
// runs these steps in internal/fusefs (forget.go).
package meta
