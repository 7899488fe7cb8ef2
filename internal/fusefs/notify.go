package fusefs

import (
	"strings"
	"sync/atomic"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/lowerwatch"
)

// Change notification in shared mode (Config.Watch, package lowerwatch):
// every lower directory the daemon has a node for carries a fanotify
// mark, and a change another process makes in it is pushed to the kernel
// at once, so that it shows through the mount well before the validity
// bound (meta.SharedValidity) runs out:
//
//   - an entry created, deleted or renamed in or out: the kernel's entry
//     for its plaintext name is dropped (FUSE_NOTIFY_INVAL_ENTRY), positive
//     or negative, and the directory's attributes;
//   - a file's content or attributes changed in place (closed after
//     writing, chmod, utimes): the attributes and cached pages of the node
//     behind the name are dropped (FUSE_NOTIFY_INVAL_INODE);
//   - events lost (the kernel's queue overflowed): every node's attributes
//     and pages, and every name the daemon knows, are dropped.
//
// The daemon's own changes are not reported (lowerwatch drops its pid):
// writes through the mount cost no invalidation. The daemon's metadata
// cache stores nothing in shared mode (meta.NewShared), so only the
// kernel's caches need dropping. Events are asynchronous and can be lost:
// revalidation by lower identity and the 1 s validity remain the bound.

// watchStats counts what the notifications did, for the unmount log line.
type watchStats struct {
	entries  atomic.Uint64 // entry invalidations sent
	inodes   atomic.Uint64 // inode invalidations sent
	full     atomic.Uint64 // full invalidations (overflows)
	noMarks  atomic.Bool   // marks ran out: later directories go unwatched
	markErrs atomic.Uint64 // directories that could not be watched
}

// watchDirLocked marks directory n's lower directory for change
// notification. Call with fs.mu held, once n.dirfd is set.
func (fs *FS) watchDirLocked(n *inode) {
	if fs.watch == nil || n.dirfd < 0 {
		return
	}
	if err := fs.watch.Add(n.dirfd, n.ID); err != nil {
		fs.watchStats.markErrs.Add(1)
		if fs.watchStats.noMarks.CompareAndSwap(false, true) {
			fs.log.Warn().Err(err).Uint64("inode", n.ID).
				Msg("a lower directory cannot be watched: outside changes in it show within the 1 s bound only")
		}
	}
}

// unwatchDirLocked removes n's mark. Call with fs.mu held, before n.dirfd
// is closed.
func (fs *FS) unwatchDirLocked(n *inode) {
	if fs.watch != nil && n.dirfd >= 0 {
		fs.watch.Remove(n.dirfd, n.ID)
	}
}

// LowerChanged is the callback of the lowerwatch.Watcher given in
// Config.Watch: it tells the kernel to drop what it caches about the
// changed entries. Run it only while the mount is served (a notification
// before the server runs or after the unmount blocks for ever). It
// holds no lock while it notifies.
func (fs *FS) LowerChanged(changes []lowerwatch.Change, overflow bool) {
	if fs.notifier == nil {
		return
	}
	if overflow {
		fs.invalidateAll()
		return
	}
	var dirs map[uint64]bool
	for _, c := range changes {
		d := fs.getInode(c.Dir)
		if d == nil || !d.isDir() {
			continue
		}
		if c.Kind&(lowerwatch.Self|lowerwatch.Names) != 0 && !dirs[d.ID] {
			if dirs == nil {
				dirs = make(map[uint64]bool)
			}
			dirs[d.ID] = true
			fs.invalInode(d.ID, -1) // size, link count, times; listings are never kept
		}
		if c.Name == "" {
			continue
		}
		lower := c.Name
		if long, ok := strings.CutPrefix(lower, crypt.ReservedPrefix+"."); ok && crypt.IsLongName(long) {
			lower = long // a long name's sidecar: the entry is the long name
		} else if crypt.IsReserved(lower, d.ID == rootID) {
			continue
		}
		fs.mu.Lock()
		dfd, iv, ivOK := d.dirfd, d.dirIV, d.dirIVOK || fs.suite.DeterministicNames()
		fs.mu.Unlock()
		if dfd < 0 {
			continue
		}
		if c.Kind&lowerwatch.Names != 0 && ivOK {
			// Without its IV loaded the directory has given the kernel no
			// positive entry; negative ones expire within the bound.
			if plain, ok := fs.plainName(dfd, iv, lower); ok {
				fs.invalEntry(d.ID, plain)
			}
		}
		if c.Kind&lowerwatch.Content != 0 {
			var st unix.Stat_t
			if unix.Fstatat(dfd, lower, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				if n := fs.known(&st); n != nil {
					fs.invalInode(n.ID, 0) // attributes and every cached page
				}
			}
		}
	}
}

// plainName is the name the mount shows for lower entry lower of the
// directory behind dfd: its decryption, or its conflict copy name.
func (fs *FS) plainName(dfd int, iv crypt.DirIV, lower string) (string, bool) {
	if name, err := ciphertree.DecodeName(fs.suite, dfd, iv, lower); err == nil {
		return name, true
	}
	if c, err := ciphertree.DecodeConflict(fs.suite, dfd, iv, lower); err == nil {
		return c.Name, true
	}
	return "", false
}

// invalidateAll drops everything the kernel caches about the nodes and
// names the daemon knows: the answer to lost events. Names the daemon
// never answered (negative entries) expire within the bound.
func (fs *FS) invalidateAll() {
	fs.watchStats.full.Add(1)
	type name struct {
		parent uint64
		plain  string
	}
	fs.mu.Lock()
	ids := make([]uint64, 0, len(fs.inodes))
	var names []name
	for id, n := range fs.inodes {
		ids = append(ids, id)
		for _, l := range n.links {
			names = append(names, name{l.parent.ID, l.plain})
		}
	}
	fs.mu.Unlock()
	for _, nm := range names {
		fs.invalEntry(nm.parent, nm.plain)
	}
	for _, id := range ids {
		fs.invalInode(id, 0)
	}
}

// invalEntry drops the kernel's entry for name in directory parent.
// ENOENT only means the kernel does not cache it.
func (fs *FS) invalEntry(parent uint64, name string) {
	fs.watchStats.entries.Add(1)
	_ = fs.notifier.InvalidateEntry(fuseops.InodeID(parent), name)
}

// invalInode drops the kernel's attributes of node id, and its cached
// pages from offset off on (none for -1).
func (fs *FS) invalInode(id uint64, off int64) {
	fs.watchStats.inodes.Add(1)
	_ = fs.notifier.InvalidateInode(fuseops.InodeID(id), off, 0)
}

// LogWatchStats writes one line with what change notification did: a
// warning when events were lost (the kernel's queue overflowed: each time
// everything was invalidated) or directories went unwatched.
func (fs *FS) LogWatchStats() {
	if fs.watch == nil {
		return
	}
	s := fs.watch.Stats()
	ev := fs.log.Info()
	if s.Overflows > 0 || fs.watchStats.markErrs.Load() > 0 {
		ev = fs.log.Warn()
	}
	ev.Uint64("events", s.Events).Uint64("own_events", s.Own).Uint64("changes", s.Changes).
		Uint64("overflows", s.Overflows).Uint64("entry_invalidations", fs.watchStats.entries.Load()).
		Uint64("inode_invalidations", fs.watchStats.inodes.Load()).Uint64("full_invalidations", fs.watchStats.full.Load()).
		Uint64("unwatched_dirs", fs.watchStats.markErrs.Load()).Int("marks", s.Marks).
		Msg("change notification")
}
