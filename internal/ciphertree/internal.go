package ciphertree

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrNotRegular marks one of cryptfs's own files (a directory IV, a
// long-name sidecar, the root mode file) that is not a regular file: a
// FIFO, device node, socket, symlink or directory put in its place. Such a
// file is never opened for reading or writing (a FIFO would block the
// reader forever, a device's driver would see an open).
var ErrNotRegular = errors.New("not a regular file")

// kindName names the file type in mode for error messages.
func kindName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFREG:
		return "regular file"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

// OpenRegular opens name in the directory behind dfd with flags
// (O_RDONLY, O_WRONLY or O_RDWR, no O_CREAT) if, and only if, it is a
// regular file. It first takes an O_PATH|O_NOFOLLOW descriptor, which
// opens nothing (no FIFO wait, no device driver, no symlink followed),
// checks its type with fstat, and only then opens that very inode through
// its /proc/self/fd path, with O_NONBLOCK|O_NOCTTY as a second guard. A
// file of another type gives an error wrapping ErrNotRegular.
func OpenRegular(dfd int, name string, flags int) (int, error) {
	pfd, err := Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := Fstat(pfd, &st); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, fmt.Errorf("%s is a %s: %w", name, kindName(st.Mode), ErrNotRegular)
	}
	fd, err := Openat(unix.AT_FDCWD, ProcFd(pfd), flags|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// createExclusive creates name in the directory behind dfd as a new
// regular file for writing. Whatever is in its way that is not a
// directory (a stale copy, or a FIFO, device node, socket or symlink
// someone put there) is removed first: it is cryptfs's own name, and
// opening what is there could block or follow a link. A directory in its
// way gives an error wrapping ErrNotRegular.
func createExclusive(dfd int, name string, mode uint32) (int, error) {
	for try := 0; ; try++ {
		fd, err := Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, mode)
		if err != unix.EEXIST || try > 0 {
			return fd, err
		}
		if err := unix.Unlinkat(dfd, name, 0); err != nil && err != unix.ENOENT {
			if err == unix.EISDIR || err == unix.EPERM {
				return -1, fmt.Errorf("%s is a directory: %w", name, ErrNotRegular)
			}
			return -1, err
		}
	}
}
