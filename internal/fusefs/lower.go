package fusefs

import (
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

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
	nb := fs.birthOf(n)
	for _, l := range fs.linksOf(n) {
		pfd, err := fs.dirFd(l.parent)
		if err != nil {
			continue
		}
		birth, err := fs.statAt(pfd, l.lower, st)
		if err != nil {
			continue
		}
		if sameInode(n, nb, st, birth) {
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
	return fmt.Errorf("inode %d: no name leads to it: %w", n.ID, fs.gone())
}

// open opens the lower file of n (never following a symlink) and checks
// that it is still the same inode. The name is first opened O_PATH, which
// opens nothing (no FIFO wait, no device driver), and its dev, inode
// number and type compared with n's; only that checked inode is then
// opened with flags, through its /proc/self/fd path. So a name swapped
// behind the daemon's back (a user's renameat2(RENAME_EXCHANGE) in a
// lower directory they own) never makes the daemon open, truncate or
// change another file.
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
	nb := fs.birthOf(n)
	for _, l := range fs.linksOf(n) {
		pfd, err := fs.dirFd(l.parent)
		if err != nil {
			lastErr = err
			continue
		}
		fd, err := ciphertree.Openat(pfd, l.lower, unix.O_PATH|unix.O_NOFOLLOW, 0)
		if err != nil {
			lastErr = err
			continue
		}
		var st unix.Stat_t
		if birth, err := fs.statAt(fd, "", &st); err != nil || !sameInode(n, nb, &st, birth) {
			// The name leads to another file now (replaced behind the
			// daemon's back): not this inode any more.
			unix.Close(fd)
			lastErr = syscall.ESTALE
			continue
		}
		if flags&unix.O_PATH != 0 {
			return fd, nil
		}
		rfd, err := fs.reopen(fd, flags)
		unix.Close(fd)
		if err != nil {
			lastErr = err
			continue
		}
		return rfd, nil
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
	if lastErr == syscall.ENOENT {
		lastErr = fs.gone()
	}
	return -1, lastErr
}

// reopen opens the inode behind the O_PATH descriptor fd with flags
// (through /proc/self/fd: O_NOFOLLOW would refuse that magic link).
func (fs *FS) reopen(fd, flags int) (int, error) {
	flags &^= unix.O_NOFOLLOW
	rfd, err := ciphertree.Openat(unix.AT_FDCWD, ciphertree.ProcFd(fd), flags|noatime(flags), 0)
	if err == syscall.EPERM && noatime(flags) != 0 {
		rfd, err = ciphertree.Openat(unix.AT_FDCWD, ciphertree.ProcFd(fd), flags, 0) // not the owner: no O_NOATIME
	}
	return rfd, err
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

// openDirAt opens an O_PATH descriptor of a subdirectory and checks it is
// the inode st describes (and refreshes st from it).
func openDirAt(pfd int, name string, st *unix.Stat_t) (int, error) {
	fd, err := ciphertree.Openat(pfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, err
	}
	var st2 unix.Stat_t
	if err := ciphertree.Fstat(fd, &st2); err != nil || (st != nil && st.Ino != 0 && st2.Ino != st.Ino) {
		unix.Close(fd)
		return -1, syscall.ESTALE
	}
	if st != nil {
		*st = st2
	}
	return fd, nil
}

// lowerFd returns a descriptor of n's lower inode for an attribute change
// and the function that releases it: the open handle's descriptor, the
// directory's own O_PATH descriptor (checked when it was opened), or a new
// O_PATH descriptor whose identity open checked. Every change then acts
// on that descriptor (AT_EMPTY_PATH, or its /proc/self/fd path), never on
// a (directory, name) that could lead to another file by the time the
// call runs.
func (fs *FS) lowerFd(n *inode, h *handle) (int, func(), error) {
	nop := func() {}
	if h != nil {
		return h.fd, nop, nil
	}
	if n.isDir() {
		fd, err := fs.dirFd(n)
		return fd, nop, err
	}
	fd, err := fs.open(n, unix.O_PATH)
	if err != nil {
		return -1, nop, err
	}
	return fd, func() { unix.Close(fd) }, nil
}

// chmodFd changes the mode of the inode behind fd (not a symlink: Linux
// has no symlink modes): fchmodat2 with AT_EMPTY_PATH where the kernel
// has it (6.6), else chmod of its /proc/self/fd path, which the kernel
// resolves to exactly that inode.
func chmodFd(fd int, mode uint32) error {
	if haveFchmodat2() {
		return unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	}
	return unix.Chmod(ciphertree.ProcFd(fd), mode)
}

// chownFd changes the owner of the inode behind fd (a symlink itself when
// fd is an O_PATH descriptor of one).
func chownFd(fd, uid, gid int) error {
	return unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH)
}

// utimesFd sets the times of the inode behind fd (a symlink itself when
// fd is an O_PATH descriptor of one). AT_EMPTY_PATH in utimensat exists
// since Linux 5.8 (checked in 6.1's fs/utimes.c and on 6.18).
func utimesFd(fd int, ts []unix.Timespec) error {
	return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
}

// haveFchmodat2 reports whether the kernel has fchmodat2 (Linux 6.6),
// which takes AT_EMPTY_PATH.
var haveFchmodat2 = sync.OnceValue(func() bool {
	// An empty path without AT_EMPTY_PATH: ENOENT from fchmodat2,
	// ENOSYS without it (which x/sys reports as EOPNOTSUPP). Nothing is
	// changed either way.
	err := unix.Fchmodat(unix.AT_FDCWD, "", 0, unix.AT_SYMLINK_NOFOLLOW)
	return err != unix.EOPNOTSUPP && err != unix.ENOSYS
})
