package ciphertree

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// ErrBadIV marks an IV file of the wrong length (a crash before its data
// reached the disk leaves it empty).
var ErrBadIV = errors.New("damaged directory IV")

// DirIV returns the name IV of the directory behind dfd: the zero IV
// under deterministic names (no IV files), else its IV file's content.
func DirIV(s *crypt.Suite, dfd int) (crypt.DirIV, error) {
	if s.DeterministicNames() {
		return crypt.DirIV{}, nil
	}
	return ReadDirIV(dfd)
}

// ReadDirIV reads the IV file of the directory behind dfd. Something
// other than a regular file in its place is never opened (OpenRegular):
// the error wraps ErrNotRegular.
func ReadDirIV(dfd int) (crypt.DirIV, error) {
	var iv crypt.DirIV
	fd, err := OpenRegular(dfd, crypt.DirIVFile, unix.O_RDONLY)
	if err != nil {
		return iv, err
	}
	defer unix.Close(fd)
	var buf [crypt.DirIVLen + 1]byte
	n, err := ReadFull(fd, buf[:])
	if err != nil {
		return iv, err
	}
	if n != crypt.DirIVLen {
		return iv, fmt.Errorf("%s is %d bytes, want %d: %w", crypt.DirIVFile, n, crypt.DirIVLen, ErrBadIV)
	}
	copy(iv[:], buf[:])
	return iv, nil
}

// WriteDirIV gives the directory behind dfd a fresh IV file, created
// exclusively. It is not synced here (SyncDirIV does that): the daemon
// batches those syncs (see package fusefs, durability.go).
func WriteDirIV(dfd int) (crypt.DirIV, error) {
	iv, err := crypt.NewDirIV()
	if err != nil {
		return iv, err
	}
	fd, err := Openat(dfd, crypt.DirIVFile, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o400)
	if err == unix.EEXIST {
		return ReadDirIV(dfd) // someone else won the race
	}
	if err != nil {
		return iv, fmt.Errorf("create %s: %w", crypt.DirIVFile, err)
	}
	err = PwriteFull(fd, iv[:], 0)
	unix.Close(fd)
	if err != nil {
		unix.Unlinkat(dfd, crypt.DirIVFile, 0)
		return iv, fmt.Errorf("write %s: %w", crypt.DirIVFile, err)
	}
	return iv, nil
}

// MakeDir creates directory name in the directory behind pfd, with its
// name IV when withIV, atomically: under a temporary reserved name
// (.cryptfs.tmp.mkdir.<16 hex digits>) first, renamed to name only once
// the IV is written. A daemon killed halfway leaves either nothing under
// name or a complete directory, never one whose IV is empty (which would
// make it unusable): at worst a temporary directory, which listings skip
// and RemoveInternal removes.
func MakeDir(pfd int, name string, mode uint32, withIV bool) error {
	tmp := fmt.Sprintf("%s.tmp.mkdir.%016x", crypt.ReservedPrefix, rand.Uint64())
	if err := unix.Mkdirat(pfd, tmp, mode); err != nil {
		return err
	}
	err := func() error {
		if !withIV {
			return nil
		}
		dfd, err := Openat(pfd, tmp, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		_, err = WriteDirIV(dfd)
		return err
	}()
	if err == nil {
		err = unix.Renameat2(pfd, tmp, pfd, name, unix.RENAME_NOREPLACE)
		if err == unix.EINVAL {
			// A lower file system without RENAME_NOREPLACE: the
			// caller holds the parent's lock and checked that name
			// is free.
			err = unix.Renameat(pfd, tmp, pfd, name)
		}
	}
	if err != nil {
		RemoveDir(pfd, tmp)
		return err
	}
	return nil
}

// RemoveDir removes directory name of pfd, which holds only cryptfs's
// internal files (a temporary directory of MakeDir, or a directory just
// made whose creation failed afterwards).
func RemoveDir(pfd int, name string) error {
	dfd, err := Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	err = RemoveInternal(dfd)
	unix.Close(dfd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
}

// IsEmpty reports whether a lower directory holds no user entries
// (only cryptfs's internal files, if any; at the root of the tree, atRoot,
// the config file too).
func IsEmpty(dfd int, atRoot bool) (bool, error) {
	empty := true
	err := ReadDir(dfd, func(name string, ino uint64, typ uint8) bool {
		if !crypt.IsReserved(name, atRoot) {
			empty = false
			return false
		}
		return true
	})
	return empty, err
}

// ReadDir calls fn for each entry of the directory behind dfd (not "."
// or ".."), until fn returns false.
func ReadDir(dfd int, fn func(name string, ino uint64, typ uint8) bool) error {
	fd, err := Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("getdents: %w", err)
		}
		if n <= 0 {
			return nil
		}
		for off := 0; off < n; {
			d := (*unix.Dirent)(unsafe.Pointer(&buf[off]))
			off += int(d.Reclen)
			nameBytes := (*[256]byte)(unsafe.Pointer(&d.Name[0]))
			l := 0
			for l < len(nameBytes) && nameBytes[l] != 0 {
				l++
			}
			name := string(nameBytes[:l])
			if name == "." || name == ".." {
				continue
			}
			if !fn(name, d.Ino, d.Type) {
				return nil
			}
		}
	}
}

// RemoveInternal deletes cryptfs's internal files from an otherwise empty
// lower directory so that it can be removed or replaced.
func RemoveInternal(dfd int) error {
	var names []string
	err := ReadDir(dfd, func(name string, _ uint64, _ uint8) bool {
		if crypt.IsReserved(name, false) {
			names = append(names, name)
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		err := unix.Unlinkat(dfd, name, 0)
		if err == unix.EISDIR {
			// A temporary directory a crash left behind (MakeDir).
			err = RemoveDir(dfd, name)
		}
		if err != nil && err != unix.ENOENT {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	return nil
}

// SyncDirIV makes the IV file of the directory behind dfd and its
// directory entry durable. Like ReadDirIV it opens only a regular file.
func SyncDirIV(dfd int) error {
	fd, err := OpenRegular(dfd, crypt.DirIVFile, unix.O_RDONLY)
	if err != nil {
		return err
	}
	err = unix.Fsync(fd)
	unix.Close(fd)
	if err != nil {
		return err
	}
	d, err := Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	return unix.Fsync(d)
}
