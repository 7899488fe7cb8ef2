package fusefs

import (
	"container/list"
	"fmt"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/meta"
)

// inode is the daemon's state for one inode the kernel knows about.
//
// Its identity is the lower inode: the FUSE node ID is the lower inode
// number (so st_ino is stable across mounts and hard links stay hard
// links), except for the root (always 1) and lower inodes that cannot be
// node IDs (on another device, or numbered 1 or >= 2^63), which get IDs
// from a private range.
type inode struct {
	meta.Node
	kind uint32 // S_IFMT bits of the lower file
	dev  uint64
	ino  uint64

	// header caches a regular file's file ID for READs (contentOf).
	header ciphertree.HeaderCache

	// Shared storage (shared.go), guarded by FS.mu: the lower inode's
	// birth time in ns (0: unknown), and its stamp at the last open.
	birth   int64
	stamp   stamp
	stampOK bool
	// The lower file's ctime and size after the daemon's last own change
	// (ctimeStamp); own changes in flight without the node lock, and a
	// count moved at their start and end.
	own     ctimeStamp
	ownSet  bool
	ownBusy int
	ownGen  uint64

	// Guarded by FS.mu.
	refs       uint64 // kernel references: LOOKUP-like replies and served lookups minus FORGETs
	served     uint64 // the fast path's served-lookup count, as last added to refs
	dead       bool   // the lower inode is gone: its number may name another file
	links      []link // names of the inode the kernel may use
	childLinks int    // links of other inodes that name this directory as parent
	dirfd      int    // directories: an O_PATH fd, -1 when closed
	handles    map[*handle]struct{}
	retained   *list.Element // in FS.retained: forgotten by the kernel, kept for the fast path
	queued     bool          // waiting in FS.withdrawals
	freeing    bool          // withdrawn, being freed: no new references (forget.go)
	recheck    bool          // a second read of the served count is scheduled

	// Loaded on first use, by requests that may hold the node lock only
	// shared, so guarded by FS.mu too; set once, never changed.
	dirIV    crypt.DirIV // directories: the name IV
	dirIVOK  bool
	target   string // symlinks: decrypted target
	targetOK bool

	// Directories: the conflict copies its last listing showed, nil
	// until listed (conflict.go). Guarded by FS.mu.
	conflicts dirConflicts
}

// Locks: the node lock (meta.Node: Lock, RLock) orders the requests about
// one inode and guards its cached facts (see package meta); a directory's
// lock also guards its entries. Locks are taken parent before child, and
// two directories in ID order (rename). FS.mu guards the table and the
// fields above, is held only briefly, and is always taken last: never
// wait for a node lock while holding it.

// link is one name of an inode in the lower tree.
type link struct {
	parent *inode
	lower  string // name in the lower directory
	plain  string // plaintext name
}

func (n *inode) isDir() bool { return n.kind == unix.S_IFDIR }

type devIno struct{ dev, ino uint64 }

// idFor returns the node ID for a lower inode. Call with fs.mu held.
func (fs *FS) idFor(dev, ino uint64) uint64 {
	k := devIno{dev, ino}
	if id, ok := fs.ids[k]; ok {
		return id
	}
	if dev == fs.rootDev && ino > 1 && ino < 1<<63 {
		return ino
	}
	fs.nextPrivate++
	return 1<<63 | fs.nextPrivate
}

// getInode returns the inode with the given ID, or nil.
func (fs *FS) getInode(id uint64) *inode {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.inodes[id]
}

// mustInode returns the inode for a node ID the kernel sent. An unknown ID
// is a daemon bug or a stale kernel reference: ESTALE, never a crash.
func (fs *FS) mustInode(id uint64) (*inode, error) {
	if n := fs.getInode(id); n != nil {
		return n, nil
	}
	return nil, syscall.ESTALE
}

// dirOf returns the directory inode with the given ID.
func (fs *FS) dirOf(id fuseops.InodeID) (*inode, error) {
	p, err := fs.mustInode(uint64(id))
	if err != nil {
		return nil, err
	}
	if !p.isDir() {
		return nil, syscall.ENOTDIR
	}
	return p, nil
}

// remember registers (or finds) the inode for a lower file found in parent
// under the given names, records the name and counts one kernel reference
// when ref is set. dirfd, if not -1, is an O_PATH fd for a directory; it is
// adopted or closed. fresh says the request itself just created the lower
// file.
//
// A lower inode number can name a new file while the kernel still holds
// the old file's node (the old one was removed and the number reused).
// Handing the kernel the old node ID for the new file would let it keep
// the old file's cached size and times, so such a file gets a node ID of
// its own: when it was just created, when the remembered inode is known to
// be gone (dead), or when the file type differs.
//
// birth is the lower inode's birth time (statAt; 0 where unknown): in
// shared mode a file whose birth time differs from the remembered one is
// another file under a reused number, and gets a node of its own too.
func (fs *FS) remember(parent *inode, lower, plain string, st *unix.Stat_t, birth int64, dirfd int, ref, fresh bool) *inode {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	k := devIno{st.Dev, st.Ino}
	kind := st.Mode & unix.S_IFMT
	var n *inode
	if id, ok := fs.ids[k]; ok {
		n = fs.inodes[id]
	}
	if n != nil && (fresh || n.dead || n.kind != kind || reborn(n.birth, birth)) {
		// The old file's node stays for the kernel's FORGET; the new file
		// gets another ID.
		delete(fs.ids, k)
		n = nil
		fs.nextPrivate++
		id := 1<<63 | fs.nextPrivate
		n = &inode{kind: kind, dev: st.Dev, ino: st.Ino, dirfd: -1, birth: birth}
		n.ID = id
		fs.inodes[id] = n
		fs.ids[k] = id
	}
	if n == nil {
		id := fs.idFor(st.Dev, st.Ino)
		if old := fs.inodes[id]; old != nil {
			// The lower number's natural ID is still held by an older
			// file's node.
			fs.nextPrivate++
			id = 1<<63 | fs.nextPrivate
		}
		n = &inode{kind: kind, dev: st.Dev, ino: st.Ino, dirfd: -1, birth: birth}
		n.ID = id
		fs.inodes[id] = n
		fs.ids[k] = id
	}
	if n.birth == 0 {
		n.birth = birth
	}
	if kind == unix.S_IFDIR && dirfd >= 0 && n.dirfd < 0 {
		n.dirfd, dirfd = dirfd, -1
		fs.watchDirLocked(n)
	}
	if dirfd >= 0 {
		unix.Close(dirfd)
	}
	if parent != nil {
		fs.addLinkLocked(n, link{parent: parent, lower: lower, plain: plain})
	}
	if ref {
		fs.refLocked(n)
	}
	return n
}

// markDead records that n's lower inode is gone (its last name removed):
// its number may be reused by another file from now on.
func (fs *FS) markDead(n *inode) {
	fs.mu.Lock()
	n.dead = true
	fs.mu.Unlock()
}

// known returns the remembered inode of a lower file, if any.
func (fs *FS) known(st *unix.Stat_t) *inode {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if id, ok := fs.ids[devIno{st.Dev, st.Ino}]; ok {
		return fs.inodes[id]
	}
	return nil
}

func (fs *FS) addLinkLocked(n *inode, l link) {
	for _, old := range n.links {
		if old.parent == l.parent && old.lower == l.lower {
			return
		}
	}
	if n.isDir() {
		// A directory has exactly one name.
		fs.dropLinksLocked(n)
	}
	n.links = append(n.links, l)
	l.parent.childLinks++
}

func (fs *FS) dropLinksLocked(n *inode) {
	for _, l := range n.links {
		fs.unpinLocked(l.parent)
	}
	n.links = nil
}

// removeLink forgets the name (parent, lower) of n.
func (fs *FS) removeLink(n *inode, parent *inode, lower string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, l := range n.links {
		if l.parent == parent && l.lower == lower {
			n.links = append(n.links[:i], n.links[i+1:]...)
			fs.unpinLocked(parent)
			return
		}
	}
}

// moveLink renames one name of n.
func (fs *FS) moveLink(n *inode, oldParent *inode, oldLower string, l link) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, old := range n.links {
		if old.parent == oldParent && old.lower == oldLower {
			n.links = append(n.links[:i], n.links[i+1:]...)
			fs.unpinLocked(oldParent)
			break
		}
	}
	fs.addLinkLocked(n, l)
}

// linksOf returns a copy of n's names.
func (fs *FS) linksOf(n *inode) []link {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]link(nil), n.links...)
}

// dirFd returns the O_PATH fd of a directory inode. The fd stays open
// while the directory has child links or references, which the caller's
// use guarantees.
func (fs *FS) dirFd(n *inode) (int, error) {
	fs.mu.Lock()
	fd := n.dirfd
	fs.mu.Unlock()
	if fd < 0 {
		return -1, fmt.Errorf("directory %d has no open lower fd: %w", n.ID, syscall.ESTALE)
	}
	return fd, nil
}
