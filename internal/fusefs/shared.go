package fusefs

import (
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Shared storage (Config.Shared, cryptfs mount --shared-storage): the
// lower directory may change behind the daemon's back, by a sync client
// writing into it or a backup being restored over it. What changes:
//
//   - The metadata cache stores nothing (meta.NewShared): every LOOKUP,
//     GETATTR and GETXATTR that reaches the daemon reads the lower
//     directory, and the kernel keeps entries and attributes for
//     meta.SharedValidity at most, listings and (changed) file pages not
//     at all: that is the bound on how late an outside change shows.
//   - A lower inode is identified by its device, number and birth time
//     (statx STATX_BTIME, where the lower file system records one), not
//     the number alone: sync clients replace files by writing a temporary
//     file and renaming it over the old one, and ext4 hands a freed inode
//     number to the next file at once, so a name can lead to the same
//     number and another file. Such a file gets a node of its own.
//   - A node whose names no longer lead to its lower inode (replaced or
//     removed outside) answers ESTALE, not ENOENT: the kernel then looks
//     the path up again (LOOKUP_REVAL) and retries the stat or open
//     once, so an application that works by path sees the new file (or
//     ENOENT when it is gone), never "Stale file handle".
//   - The kernel's writeback cache is off (it would keep its own size of
//     every regular file it knows, whatever the lower file says).
//   - Outside changes are pushed to the kernel as they happen when a
//     lowerwatch.Watcher is given (notify.go); the points above remain
//     the bound when events are lost.
//   - A descriptor pins its cipher file's header at open and refuses to
//     read or write a file rewritten in place under another file ID
//     (headerPin, below), or changed by another program under the same
//     one (ctimeStamp, below).

// statAt stats name in the directory behind pfd without following a
// symlink, and returns its birth time in nanoseconds (0 where unknown,
// and outside shared mode, where it is a plain fstatat).
func (fs *FS) statAt(pfd int, name string, st *unix.Stat_t) (int64, error) {
	if !fs.shared {
		if name == "" {
			return 0, ciphertree.Fstat(pfd, st)
		}
		return 0, unix.Fstatat(pfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
	}
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var x unix.Statx_t
	for {
		err := unix.Statx(pfd, name, flags, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &x)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		break
	}
	*st = unix.Stat_t{
		Dev:     unix.Mkdev(x.Dev_major, x.Dev_minor),
		Ino:     x.Ino,
		Nlink:   uint64(x.Nlink),
		Mode:    uint32(x.Mode),
		Uid:     x.Uid,
		Gid:     x.Gid,
		Rdev:    unix.Mkdev(x.Rdev_major, x.Rdev_minor),
		Size:    int64(x.Size),
		Blksize: int64(x.Blksize),
		Blocks:  int64(x.Blocks),
		Atim:    unix.Timespec{Sec: x.Atime.Sec, Nsec: int64(x.Atime.Nsec)},
		Mtim:    unix.Timespec{Sec: x.Mtime.Sec, Nsec: int64(x.Mtime.Nsec)},
		Ctim:    unix.Timespec{Sec: x.Ctime.Sec, Nsec: int64(x.Ctime.Nsec)},
	}
	if x.Mask&unix.STATX_BTIME == 0 {
		return 0, nil
	}
	return x.Btime.Sec*1e9 + int64(x.Btime.Nsec), nil
}

// birthAt returns the birth time of name in the directory behind pfd (of
// pfd itself when name is ""): 0 outside shared mode or where unknown.
func (fs *FS) birthAt(pfd int, name string) int64 {
	if !fs.shared {
		return 0
	}
	var st unix.Stat_t
	b, _ := fs.statAt(pfd, name, &st)
	return b
}

// sameInode reports whether a lower stat (and birth time from statAt)
// describes n's lower inode, whose birth time is nb (FS.birthOf).
func sameInode(n *inode, nb int64, st *unix.Stat_t, birth int64) bool {
	return st.Ino == n.ino && st.Dev == n.dev && st.Mode&unix.S_IFMT == n.kind && !reborn(nb, birth)
}

// reborn reports whether birth time birth shows a lower inode other than
// the one born at nb under the same number (0: unknown, either side).
func reborn(nb, birth int64) bool {
	return birth != 0 && nb != 0 && birth != nb
}

// birthOf returns n's birth time: 0 where unknown.
func (fs *FS) birthOf(n *inode) int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return n.birth
}

// gone is the error for a node none of whose names leads to its lower
// inode any more: ENOENT, or ESTALE in shared mode, so that the kernel
// looks the path up again (the name may lead to a new file now).
func (fs *FS) gone() error {
	if fs.shared {
		return syscall.ESTALE
	}
	return syscall.ENOENT
}

// stamp is what a lower regular file looked like when it was last opened
// through the mount: in shared mode the kernel keeps the file's pages
// across an open only when the stamp has not changed since. Size and
// mtime, not ctime: the daemon's own atime updates (relatime) change the
// ctime of every file read, and every writer of content changes the
// mtime (a file replaced by rename is another inode, so another node).
type stamp struct {
	size  int64
	mtime unix.Timespec
}

// keepPages records the stamp of the lower file behind fd on n and
// reports whether the kernel may keep n's cached pages (always outside
// shared mode, whose lower files change only through the mount).
func (fs *FS) keepPages(n *inode, fd int) bool {
	if !fs.shared {
		return true
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	s := stamp{size: st.Size, mtime: st.Mtim}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	keep := n.stampOK && n.stamp == s
	n.stamp, n.stampOK = s, true
	return keep
}

// headerPin is what an open descriptor knows of its lower file's header
// (shared mode): the file ID, or that the file was empty. A lower file
// rewritten in place by another program while open in the mount (rsync
// --inplace, dd conv=notrunc of another cipher file) has another file ID
// from then on: blocks this descriptor wrote before and blocks it would
// write after would belong to two different files, each authenticating
// under the ID of its own header, and what the file decrypts to would be
// a mix of the two. So in shared mode every READ, WRITE and FALLOCATE
// compares the header it just read with the descriptor's pin, and a
// descriptor whose file changed underneath fails with ESTALE (one log
// line naming the file): nothing is written under the new header on the
// strength of what was read under the old one. The pin is set at open and
// moved by the daemon's own changes of the header (a truncation to 0, the
// first write of an empty file), for every descriptor of the inode.
type headerPin struct {
	set   bool         // false: not pinned (outside shared mode, or the header did not parse at open)
	empty bool         // the lower file had no header (empty)
	id    crypt.FileID // the file ID, when !empty
}

func pinOf(c *ciphertree.Content) headerPin {
	id, ok := c.ID()
	if !ok {
		return headerPin{set: true, empty: true} // no ID: not the one a truncation left behind
	}
	return headerPin{set: true, id: id}
}

// pinHeader pins the header of the lower file behind fd, just opened or
// created as handle id (shared mode only). Call without n's lock.
func (fs *FS) pinHeader(id fuseops.HandleID, fd int) {
	if !fs.shared {
		return
	}
	fs.mu.Lock()
	h, ok := fs.handles[id].(*handle)
	fs.mu.Unlock()
	if !ok {
		return
	}
	// Shared: no change of the daemon's own moves the header meanwhile
	// (they hold the lock exclusively and move the pins they find).
	h.n.RLock()
	defer h.n.RUnlock()
	var c ciphertree.Content
	if ciphertree.LoadContent(&c, fs.suite, fd) != nil {
		return // damaged: every read fails authentication anyway
	}
	fs.mu.Lock()
	h.pin = pinOf(&c)
	fs.mu.Unlock()
}

// checkHeader fails with ESTALE when c, just loaded for handle h, shows a
// header other than h's pin (shared mode only).
func (fs *FS) checkHeader(op string, h *handle, c *ciphertree.Content) error {
	if !fs.shared {
		return nil
	}
	cur := pinOf(c)
	fs.mu.Lock()
	pin := h.pin
	first := pin.set && pin != cur && !h.staleSeen
	if first {
		h.staleSeen = true
	}
	fs.mu.Unlock()
	if !pin.set || pin == cur {
		return nil
	}
	if first {
		fs.log.Error().Str("op", op).Uint64("inode", h.n.ID).Str("path", fs.lowerPath(h.n, "")).
			Msg("the cipher file was rewritten in place by another program while open in the mount (its file ID changed): " +
				"this descriptor refuses to read or write it (ESTALE), so that no block is mixed into the other version; open the file again")
	}
	return syscall.ESTALE
}

// repinHeader moves to the header c shows after a change of the daemon's
// own the pin of every open descriptor of n that knew the header before
// it (before): descriptors pinned to an older version stay stale. Call
// with n's lock held exclusively, after the change.
func (fs *FS) repinHeader(n *inode, before headerPin, c *ciphertree.Content) {
	if !fs.shared {
		return
	}
	p := pinOf(c)
	if p == before {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for h := range n.handles {
		if h.pin == before {
			h.pin = p
		}
	}
}

// ctimeStamp is what a lower regular file's change time and size were
// when the daemon last changed it or saw it unchanged (shared mode). A
// sync client that rewrites a cipher file in place keeping its header
// (rsync --inplace bringing the other machine's newer version of the same
// file, whose cryptfs kept the file ID while it changed blocks in place)
// passes headerPin; it cannot leave the ctime as it was, since no program
// can set a ctime (rsync puts the mtime back, the kernel stamps the ctime
// of that too). So in shared mode every READ, WRITE and FALLOCATE through
// a descriptor compares the lower file's ctime and size with the node's
// ctimeStamp, which the daemon moves after each change of its own to the
// file (content, truncation, mode, owner, times, xattrs, names), and a
// change it did not make fails the request with ESTALE and one log line
// naming the file, as a header change does. Every descriptor of the node
// that was open then stays stale; descriptors opened later start from the
// file as it is.
//
// What passes unseen: an outside change that lands while one of the
// daemon's own changes of the same file is in flight (between its check
// and its stat after the change, or during a rename or unlink of one of
// the file's names), and one that lands in the same timestamp tick as the
// daemon's own last change and keeps the size (on kernels without
// multigrain timestamps, 6.13, a tick is a jiffy). The stamp never moves
// back, so a wall clock stepped back between two own changes gives a
// false ESTALE, never a mix.
type ctimeStamp struct {
	ctime int64 // ns
	size  int64
}

func lowerCtime(fd int) (ctimeStamp, error) {
	var st unix.Stat_t
	if err := ciphertree.Fstat(fd, &st); err != nil {
		return ctimeStamp{}, err
	}
	return ctimeStamp{ctime: st.Ctim.Nano(), size: st.Size}, nil
}

// pinCtime records the lower file's ctimeStamp on n for h, just opened on
// fd (shared mode only). An outside change since the daemon last looked
// leaves n's other descriptors stale.
func (fs *FS) pinCtime(id fuseops.HandleID, n *inode, fd int) {
	if !fs.shared {
		return
	}
	n.RLock() // no change of the daemon's own in flight but rename's, unlink's
	defer n.RUnlock()
	fs.mu.Lock()
	gen := n.ownGen
	fs.mu.Unlock()
	cur, err := lowerCtime(fd)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h, ok := fs.handles[id].(*handle)
	if !ok || err != nil {
		return
	}
	if n.ownSet && cur != n.own && n.ownBusy == 0 && n.ownGen == gen {
		for o := range n.handles {
			o.outdated = true
		}
	}
	n.own, n.ownSet = cur, true
	h.outdated, h.ctimePinned = false, true
}

// checkCtime fails with ESTALE when the lower file behind h changed since
// the daemon last changed or saw it (shared mode only). Call with n's
// lock held, shared or exclusive.
func (fs *FS) checkCtime(op string, h *handle) error {
	if !fs.shared || !h.ctimePinned {
		return nil
	}
	n := h.n
	if err := fs.outsideChange(n, h.fd); err != nil {
		return err
	}
	fs.mu.Lock()
	stale := h.outdated
	first := stale && !h.staleSeen
	if first {
		h.staleSeen = true
	}
	fs.mu.Unlock()
	if first {
		fs.log.Error().Str("op", op).Uint64("inode", n.ID).Str("path", fs.lowerPath(n, "")).
			Msg("the cipher file was changed in place by another program while open in the mount (its ctime moved, its file ID did not): " +
				"this descriptor refuses to read or write it (ESTALE), so that no block is mixed into the other version; open the file again")
	}
	if stale {
		return syscall.ESTALE
	}
	return nil
}

// outsideChange stats the lower file of n through fd and, when it changed
// since the daemon last changed or saw it, marks every descriptor of n
// then open stale (they fail their next request: checkCtime). Shared mode
// only; call with n's lock held, shared or exclusive.
func (fs *FS) outsideChange(n *inode, fd int) error {
	if !fs.shared || n.kind != unix.S_IFREG {
		return nil
	}
	fs.mu.Lock()
	gen, pinned := n.ownGen, len(n.handles) > 0
	fs.mu.Unlock()
	if !pinned {
		return nil
	}
	cur, err := lowerCtime(fd)
	if err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	switch {
	case !n.ownSet:
		// The daemon could not stat the file after a change of its
		// own (ownChanged): start again from here.
		n.own, n.ownSet = cur, true
	case cur == n.own, n.ownBusy > 0, n.ownGen != gen:
		// Unchanged, or a rename or unlink of the daemon's own moved
		// the ctime (ownEnd moves the stamp).
	default:
		for o := range n.handles {
			o.outdated = true
		}
	}
	return nil
}

// ownChanging is called before a change of the daemon's own to n's lower
// file made with n's lock held exclusively, through fd (-1: a descriptor
// opened by name for the purpose): an outside change before it marks n's
// descriptors stale rather than pass for the daemon's own (ownChanged,
// after the change). Shared mode only, and only with descriptors open.
func (fs *FS) ownChanging(n *inode, fd int) {
	if !fs.shared || n.kind != unix.S_IFREG {
		return
	}
	fs.mu.Lock()
	pinned := len(n.handles) > 0
	fs.mu.Unlock()
	if !pinned {
		return
	}
	if fd < 0 {
		pfd, err := fs.open(n, unix.O_PATH)
		if err != nil {
			return
		}
		defer unix.Close(pfd)
		fd = pfd
	}
	fs.outsideChange(n, fd)
}

// ownChanged moves n's ctimeStamp after a change of the daemon's own to
// the lower file, stating it through fd (-1: a descriptor opened by name
// for the purpose). Call with n's lock held exclusively, or between
// ownBegin and ownEnd. Nothing to do when no descriptor is open (the next
// open stamps the file) or outside shared mode.
func (fs *FS) ownChanged(n *inode, fd int) {
	if !fs.shared || n.kind != unix.S_IFREG {
		return
	}
	fs.mu.Lock()
	pinned := n.ownSet && len(n.handles) > 0
	fs.mu.Unlock()
	if !pinned {
		return
	}
	if fd < 0 {
		pfd, err := fs.open(n, unix.O_PATH)
		if err != nil {
			fs.mu.Lock()
			n.ownSet = false // the next check starts from the file as it is then
			fs.mu.Unlock()
			return
		}
		defer unix.Close(pfd)
		fd = pfd
	}
	cur, err := lowerCtime(fd)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	switch {
	case err != nil:
		n.ownSet = false
	case cur.ctime >= n.own.ctime:
		// Not older: two changes of the daemon's own (a rename and a
		// write) may stat in the other order.
		n.own = cur
	}
}

// ownBegin and ownEnd bracket a change of the daemon's own to n's lower
// inode made without n's lock (rename, unlink of one of its names), so
// that a concurrent check does not take its ctime for another program's.
func (fs *FS) ownBegin(n *inode) {
	if n == nil || !fs.shared {
		return
	}
	fs.mu.Lock()
	n.ownBusy++
	n.ownGen++
	fs.mu.Unlock()
}

func (fs *FS) ownEnd(n *inode) {
	if n == nil || !fs.shared {
		return
	}
	fs.ownChanged(n, -1)
	fs.mu.Lock()
	n.ownBusy--
	n.ownGen++
	fs.mu.Unlock()
}
