package ciphertree

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Listing, metadata and the remaining kinds of entries of a Tree, for the
// offline tools that walk or rebuild a whole tree (cryptfs rekey).

// DirEntry is one entry of a directory listed by Tree.ReadDir.
type DirEntry struct {
	Name  string      // the plaintext name; "" when NameErr is set
	Lower string      // the lower name
	Stat  unix.Stat_t // the lower file's stat (sizes are cipher sizes)
	// NameErr says why the name does not decrypt (wraps crypt.ErrAuth, or
	// ErrNotRegular for a sidecar that is not a file).
	NameErr error
}

// ReadDir lists the directory at plaintext path plain: every entry but
// cryptfs's own files, with its lower stat; an entry whose name does not
// decrypt is listed with NameErr set.
func (t *Tree) ReadDir(plain string) ([]DirEntry, error) {
	dfd, err := t.dirFd(plain)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	iv, err := DirIV(t.s, dfd)
	if err != nil {
		return nil, fmt.Errorf("%s: name IV: %w", plain, err)
	}
	atRoot := len(split(plain)) == 0
	ents, err := readDecoded(t.s, dfd, iv, atRoot)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", plain, err)
	}
	out := make([]DirEntry, 0, len(ents))
	for _, d := range ents {
		e := DirEntry{Lower: d.lower, Name: d.name, NameErr: d.err}
		if err := unix.Fstatat(dfd, d.lower, &e.Stat, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // removed meanwhile
			}
			e.NameErr = fmt.Errorf("stat: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// dirFd returns an O_PATH descriptor of the directory at plaintext path
// plain (the root for "").
func (t *Tree) dirFd(plain string) (int, error) {
	if len(split(plain)) == 0 {
		return dup(t.root)
	}
	dfd, _, last, err := t.parent(plain)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	fd, err := Openat(dfd, last.Lower, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", plain, err)
	}
	return fd, nil
}

// withFd runs fn with an O_PATH descriptor of plain's lower inode (the
// cipher root for ""), reached without following symlinks.
func (t *Tree) withFd(plain string, fn func(fd int) error) error {
	var fd int
	if len(split(plain)) == 0 {
		var err error
		if fd, err = dup(t.root); err != nil {
			return err
		}
	} else {
		dfd, _, last, err := t.parent(plain)
		if err != nil {
			return err
		}
		fd, err = Openat(dfd, last.Lower, unix.O_PATH|unix.O_NOFOLLOW, 0)
		unix.Close(dfd)
		if err != nil {
			return fmt.Errorf("%s: %w", plain, err)
		}
	}
	defer unix.Close(fd)
	return fn(fd)
}

// Attr is what SetAttr changes; nil fields stay as they are.
type Attr struct {
	Mode         *uint32 // the 07777 bits; ignored for symlinks
	UID, GID     *uint32
	Atime, Mtime *unix.Timespec
}

// SetAttr changes the owner, then the mode, then the times of plain (the
// cipher root for "", whose mode is the root mode file's: SetRootMode),
// through a descriptor of its lower inode (a symlink itself, not its
// target).
func (t *Tree) SetAttr(plain string, a Attr) error {
	return t.withFd(plain, func(fd int) error {
		var st unix.Stat_t
		if err := Fstat(fd, &st); err != nil {
			return err
		}
		if a.UID != nil || a.GID != nil {
			uid, gid := -1, -1
			if a.UID != nil {
				uid = int(*a.UID)
			}
			if a.GID != nil {
				gid = int(*a.GID)
			}
			if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
				return fmt.Errorf("%s: chown: %w", plain, err)
			}
		}
		if a.Mode != nil && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			err := unix.Fchmodat(fd, "", *a.Mode&0o7777, unix.AT_EMPTY_PATH)
			if err == unix.EOPNOTSUPP || err == unix.ENOSYS { // before Linux 6.6
				err = unix.Chmod(ProcFd(fd), *a.Mode&0o7777)
			}
			if err != nil {
				return fmt.Errorf("%s: chmod: %w", plain, err)
			}
		}
		if a.Atime != nil || a.Mtime != nil {
			ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
			if a.Atime != nil {
				ts[0] = *a.Atime
			}
			if a.Mtime != nil {
				ts[1] = *a.Mtime
			}
			if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
				return fmt.Errorf("%s: utimens: %w", plain, err)
			}
		}
		return nil
	})
}

// RootMode returns the plaintext root's mode bits: the root mode file's,
// else the cipher root's own.
func (t *Tree) RootMode() (uint32, error) {
	m, ok, err := ReadRootMode(t.root)
	if err != nil || ok {
		return m, err
	}
	var st unix.Stat_t
	if err := Fstat(t.root, &st); err != nil {
		return 0, err
	}
	return st.Mode & 0o7777, nil
}

// SetRootMode stores the plaintext root's mode (the cipher root's own
// mode is left as it is).
func (t *Tree) SetRootMode(mode uint32) error { return WriteRootMode(t.root, mode) }

// Link makes plaintext path newPlain a hard link of existing regular file
// oldPlain: one lower inode, one file ID.
func (t *Tree) Link(oldPlain, newPlain string) error {
	return t.withFd(oldPlain, func(ofd int) error {
		return t.create(newPlain, func(pfd int, lower string) error {
			return unix.Linkat(unix.AT_FDCWD, ProcFd(ofd), pfd, lower, unix.AT_SYMLINK_FOLLOW)
		})
	})
}

// Mknod creates a FIFO, socket or device node at plaintext path plain
// (mode holds the type bits).
func (t *Tree) Mknod(plain string, mode uint32, dev uint64) error {
	return t.create(plain, func(pfd int, lower string) error {
		return unix.Mknodat(pfd, lower, mode, int(dev))
	})
}

// CreateFile creates the regular file plain (it must not exist) for
// writing through the content engine; Close it.
func (t *Tree) CreateFile(plain string, mode uint32) (*File, error) {
	var f *File
	err := t.create(plain, func(pfd int, lower string) error {
		fd, err := Openat(pfd, lower, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, mode&0o7777)
		if err != nil {
			return err
		}
		c, err := OpenContent(t.s, fd)
		if err != nil {
			unix.Close(fd)
			unix.Unlinkat(pfd, lower, 0)
			return err
		}
		f = &File{fd: fd, c: c}
		return nil
	})
	return f, err
}

// WriteAt writes plaintext at off (a File from CreateFile).
func (f *File) WriteAt(p []byte, off int64) error {
	if off < 0 {
		return fmt.Errorf("negative offset %d: %w", off, unix.EINVAL)
	}
	return f.c.WriteAt(p, uint64(off))
}

// Truncate sets the plaintext size; growing leaves a hole.
func (f *File) Truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("negative size %d: %w", size, unix.EINVAL)
	}
	return f.c.Truncate(uint64(size))
}

// Sync flushes the lower file to stable storage.
func (f *File) Sync() error { return unix.Fsync(f.fd) }
