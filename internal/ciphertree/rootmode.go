package ciphertree

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// The plaintext root's mode is stored apart, in crypt.RootModeFile at the
// cipher root (docs/format.md, section 1.1), so that a chmod of the mount
// root never makes the cipher root group- or world-accessible: on a mount
// shared by several users the cipher root stays as private as init made
// it, and no user can reach the lower directories they own.

// ErrBadRootMode marks a root mode file whose content is not exactly four
// octal digits and a newline.
var ErrBadRootMode = errors.New("damaged root mode file")

// rootModeLen is the size of the root mode file: "0755\n".
const rootModeLen = 5

// ReadRootMode returns the plaintext root's mode bits (07777) stored in
// the cipher root behind dfd; ok is false when there is no root mode file
// (the root then shows the cipher root's own mode). Anything but a regular
// file of exactly four octal digits and a newline is an error (wrapping
// ErrNotRegular or ErrBadRootMode).
func ReadRootMode(dfd int) (mode uint32, ok bool, err error) {
	fd, err := OpenRegular(dfd, crypt.RootModeFile, unix.O_RDONLY)
	if err == unix.ENOENT {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(fd)
	var buf [rootModeLen + 1]byte
	n, err := ReadFull(fd, buf[:])
	if err != nil {
		return 0, false, err
	}
	mode, err = parseRootMode(buf[:n])
	return mode, err == nil, err
}

func parseRootMode(b []byte) (uint32, error) {
	if len(b) != rootModeLen || b[4] != '\n' {
		return 0, fmt.Errorf("%s is %d bytes, want four octal digits and a newline: %w", crypt.RootModeFile, len(b), ErrBadRootMode)
	}
	var mode uint32
	for _, c := range b[:4] {
		if c < '0' || c > '7' {
			return 0, fmt.Errorf("%s holds %q, want four octal digits and a newline: %w", crypt.RootModeFile, b, ErrBadRootMode)
		}
		mode = mode<<3 | uint32(c-'0')
	}
	return mode, nil
}

// WriteRootMode stores mode (its 07777 bits) as the plaintext root's mode
// in the cipher root behind dfd, atomically: a temporary file, fsync,
// rename over the old one, fsync of the directory.
func WriteRootMode(dfd int, mode uint32) error {
	tmp := fmt.Sprintf("%s.tmp.rootmode.%016x", crypt.ReservedPrefix, rand.Uint64())
	fd, err := Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", crypt.RootModeFile, err)
	}
	err = PwriteFull(fd, []byte(fmt.Sprintf("%04o\n", mode&0o7777)), 0)
	if err == nil {
		err = unix.Fsync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, crypt.RootModeFile)
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s: %w", crypt.RootModeFile, err)
	}
	d, err := Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", crypt.RootModeFile, err)
	}
	defer unix.Close(d)
	if err := unix.Fsync(d); err != nil && err != unix.EINVAL {
		return fmt.Errorf("write %s: fsync directory: %w", crypt.RootModeFile, err)
	}
	return nil
}
