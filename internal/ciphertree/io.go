package ciphertree

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrShort reports a lower file shorter than its size promised, for
// example because it changed behind the daemon's back or was truncated.
var ErrShort = errors.New("lower file shorter than expected")

// ReadFull reads from fd until p is full or the file ends, and returns how
// many bytes it read. EINTR is retried.
func ReadFull(fd int, p []byte) (int, error) {
	total := 0
	for total < len(p) {
		n, err := unix.Read(fd, p[total:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, nil
}

// PreadFull reads exactly len(p) bytes at off; a file that ends first
// gives an error wrapping ErrShort.
func PreadFull(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pread(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("pread: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("pread at %d: %w (%w)", off, ErrShort, io.ErrUnexpectedEOF)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// PwriteFull writes all of p at off.
func PwriteFull(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("pwrite: %w", err)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// Readlinkat returns the target of symlink name in the directory behind
// dfd, however long.
func Readlinkat(dfd int, name string) (string, error) {
	for size := 4096; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Fstat is fstat(2), retried on EINTR.
func Fstat(fd int, st *unix.Stat_t) error {
	for {
		err := unix.Fstat(fd, st)
		if err != unix.EINTR {
			return err
		}
	}
}

// Openat is openat(2) with O_CLOEXEC, retried on EINTR. It adds nothing
// else: callers that resolve a name in the tree pass O_NOFOLLOW.
func Openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// ProcFd names an open descriptor in /proc, to reach its inode by path
// for the calls that refuse O_PATH descriptors (the xattr calls, chmod
// before fchmodat2, link). The kernel resolves it to the inode the
// descriptor holds: no name lookup in the tree is involved.
func ProcFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
