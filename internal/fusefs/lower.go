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

// withLower runs fn on n's lower inode, named so that nothing in the lower
// tree is followed: (directory fd, name, AT_SYMLINK_NOFOLLOW) where the
// call has that flag, or a /proc/self/fd path of a descriptor of the inode
// (which the kernel resolves to exactly that inode) for chmod where the
// kernel has no fchmodat2 (before Linux 6.6: fchmodat takes no flags).
// Symlinks themselves cannot be chmod'ed.
func (fs *FS) withLower(n *inode, h *handle, chmod bool, fn func(dirfd int, name string, flags int) error) error {
	if h != nil {
		return fn(unix.AT_FDCWD, ciphertree.ProcFd(h.fd), 0)
	}
	if n.isDir() {
		fd, err := fs.dirFd(n)
		if err != nil {
			return err
		}
		return fn(unix.AT_FDCWD, ciphertree.ProcFd(fd), 0)
	}
	if !chmod || n.kind == unix.S_IFLNK || haveFchmodat2() {
		for _, l := range fs.linksOf(n) {
			if pfd, err := fs.dirFd(l.parent); err == nil {
				return fn(pfd, l.lower, unix.AT_SYMLINK_NOFOLLOW)
			}
		}
	}
	fd, err := fs.open(n, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(unix.AT_FDCWD, ciphertree.ProcFd(fd), 0)
}

// haveFchmodat2 reports whether the kernel has fchmodat2, which takes
// AT_SYMLINK_NOFOLLOW: chmod by (directory, name) then needs no O_PATH
// descriptor of its own (an open, an fstat and a close per chmod, three
// of an untar's nineteen lower system calls per entry).
var haveFchmodat2 = sync.OnceValue(func() bool {
	// An empty path: ENOENT from fchmodat2, ENOSYS without it (which
	// x/sys reports as EOPNOTSUPP). Nothing is changed either way.
	err := unix.Fchmodat(unix.AT_FDCWD, "", 0, unix.AT_SYMLINK_NOFOLLOW)
	return err != unix.EOPNOTSUPP && err != unix.ENOSYS
})
