package fusefs

import (
	"fmt"
	"syscall"

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

	// Guarded by FS.mu.
	refs       uint64 // LOOKUP-like replies minus FORGETs
	served     uint64 // fast-path served lookups already added to refs
	published  bool   // reachable through the fast-path maps
	dead       bool   // the lower inode is gone: its number may name another file
	links      []link // names of the inode the kernel may use
	childLinks int    // links of other inodes that name this directory as parent
	dirfd      int    // directories: an O_PATH fd, -1 when closed
	handles    map[*handle]struct{}

	// Guarded by the node lock.
	dirIV    crypt.DirIV
	dirIVOK  bool
	target   string // symlinks: decrypted target
	targetOK bool
}

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
func (fs *FS) remember(parent *inode, lower, plain string, st *unix.Stat_t, dirfd int, ref, fresh bool) *inode {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	k := devIno{st.Dev, st.Ino}
	kind := st.Mode & unix.S_IFMT
	var n *inode
	if id, ok := fs.ids[k]; ok {
		n = fs.inodes[id]
	}
	if n != nil && (fresh || n.dead || n.kind != kind) {
		// The old file's node stays for the kernel's FORGET; the new file
		// gets another ID.
		delete(fs.ids, k)
		n = nil
		fs.nextPrivate++
		id := 1<<63 | fs.nextPrivate
		n = &inode{kind: kind, dev: st.Dev, ino: st.Ino, dirfd: -1}
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
		n = &inode{kind: kind, dev: st.Dev, ino: st.Ino, dirfd: -1}
		n.ID = id
		fs.inodes[id] = n
		fs.ids[k] = id
	}
	if kind == unix.S_IFDIR && dirfd >= 0 && n.dirfd < 0 {
		n.dirfd, dirfd = dirfd, -1
	}
	if dirfd >= 0 {
		unix.Close(dirfd)
	}
	if parent != nil {
		fs.addLinkLocked(n, link{parent: parent, lower: lower, plain: plain})
	}
	if ref {
		n.refs++
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

// unpinLocked drops one child link of dir and frees dir if nothing
// references it any more.
func (fs *FS) unpinLocked(dir *inode) {
	dir.childLinks--
	fs.maybeFreeLocked(dir)
}

func (fs *FS) maybeFreeLocked(n *inode) {
	if n.ID == rootID || n.refs > 0 || n.childLinks > 0 || len(n.handles) > 0 || n.published {
		return
	}
	delete(fs.inodes, n.ID)
	if k := (devIno{n.dev, n.ino}); fs.ids[k] == n.ID {
		delete(fs.ids, k)
	}
	if n.dirfd >= 0 {
		unix.Close(n.dirfd)
		n.dirfd = -1
	}
	links := n.links
	n.links = nil
	fs.cache.Forget(&n.Node)
	for _, l := range links {
		fs.unpinLocked(l.parent)
	}
}

// forget subtracts FORGET counts.
func (fs *FS) forget(id uint64, count uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := fs.inodes[id]
	if n == nil {
		return
	}
	if fs.fast != nil && n.published {
		// Served lookups raised the kernel's count without us.
		if total, err := fs.fast.ServedLookups(id); err == nil && total > n.served {
			n.refs += total - n.served
			n.served = total
		}
	}
	if count >= n.refs {
		n.refs = 0
	} else {
		n.refs -= count
	}
	fs.maybeFreeLocked(n)
}

// linksOf returns a copy of n's names.
func (fs *FS) linksOf(n *inode) []link {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]link(nil), n.links...)
}

// parentFd returns the O_PATH fd of a directory inode. The fd stays open
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

// stat stats the lower file of n without following symlinks. It tries each
// known name and checks the inode number, so a file replaced behind the
// daemon's back is never mistaken for n; an unlinked file that is still
// open is stat'ed through its open descriptor.
func (fs *FS) stat(n *inode, st *unix.Stat_t) error {
	if n.isDir() {
		fd, err := fs.dirFd(n)
		if err != nil {
			return err
		}
		return ciphertree.Fstat(fd, st)
	}
	for _, l := range fs.linksOf(n) {
		pfd, err := fs.dirFd(l.parent)
		if err != nil {
			continue
		}
		if err := unix.Fstatat(pfd, l.lower, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		if st.Ino == n.ino && st.Dev == n.dev {
			return nil
		}
	}
	fs.mu.Lock()
	var fd = -1
	for h := range n.handles {
		fd = h.fd
		break
	}
	fs.mu.Unlock()
	if fd >= 0 {
		return ciphertree.Fstat(fd, st)
	}
	return fmt.Errorf("inode %d: no name leads to it: %w", n.ID, syscall.ENOENT)
}

// open opens the lower file of n (never following a symlink) and checks
// that it is still the same inode.
func (fs *FS) open(n *inode, flags int) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if n.isDir() {
		fd, err := fs.dirFd(n)
		if err != nil {
			return -1, err
		}
		return ciphertree.Openat(fd, ".", flags|unix.O_DIRECTORY, 0)
	}
	var lastErr error = syscall.ENOENT
	for _, l := range fs.linksOf(n) {
		pfd, err := fs.dirFd(l.parent)
		if err != nil {
			lastErr = err
			continue
		}
		fd, err := ciphertree.Openat(pfd, l.lower, flags|noatime(flags), 0)
		if err == syscall.EPERM && noatime(flags) != 0 {
			fd, err = ciphertree.Openat(pfd, l.lower, flags, 0) // not the owner: no O_NOATIME
		}
		switch err {
		case nil:
		case syscall.ELOOP, syscall.EISDIR, syscall.ENOTDIR, syscall.ENXIO, syscall.ENODEV:
			// The name leads to another kind of file now (replaced
			// behind the daemon's back): not this inode any more.
			lastErr = syscall.ESTALE
			continue
		default:
			lastErr = err
			continue
		}
		var st unix.Stat_t
		if err := ciphertree.Fstat(fd, &st); err != nil || st.Ino != n.ino || st.Dev != n.dev {
			unix.Close(fd)
			lastErr = syscall.ESTALE
			continue
		}
		return fd, nil
	}
	if flags&unix.O_PATH != 0 {
		// An unlinked but open file: reopen one of its descriptors.
		fs.mu.Lock()
		var hfd = -1
		for h := range n.handles {
			hfd = h.fd
			break
		}
		fs.mu.Unlock()
		if hfd >= 0 {
			return unix.Openat(unix.AT_FDCWD, ciphertree.ProcFd(hfd), unix.O_PATH|unix.O_CLOEXEC, 0)
		}
	}
	return -1, lastErr
}

// noatime adds O_NOATIME to lower opens for content: the daemon's own
// reads (headers, read-modify-write) must not touch the lower atime; the
// atime of user reads is kept by ReadFile (relatime rules).
func noatime(flags int) int {
	if flags&unix.O_PATH != 0 {
		return 0
	}
	return unix.O_NOATIME
}
