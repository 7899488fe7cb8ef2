package ciphertree

import (
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// Tree is a cipher tree opened for use without a mount: the way in for
// the offline tools (fsck; path, cat and restore) and for tests that build
// or inspect a tree. Plaintext paths are relative to the tree's root ("",
// "." and "/" name the root itself), use '/' and never follow symlinks:
// every component but the last must be a directory.
//
// A Tree must not be used on a tree that a daemon is serving: the daemon
// assumes it is the only writer, and a reader may see blocks half-written.
type Tree struct {
	s    *crypt.Suite
	dir  string
	root int // O_PATH descriptor of dir
}

// Open opens the cipher tree at dir with the keys of s. It does not read
// the config (the caller unlocked it to get s); Close releases it.
func Open(dir string, s *crypt.Suite) (*Tree, error) {
	fd, err := Openat(unix.AT_FDCWD, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open cipher tree %s: %w", dir, err)
	}
	return &Tree{s: s, dir: dir, root: fd}, nil
}

// Close releases the tree's descriptor. It does not wipe the suite.
func (t *Tree) Close() error { return unix.Close(t.root) }

// Suite returns the keys the tree was opened with.
func (t *Tree) Suite() *crypt.Suite { return t.s }

// Dir returns the cipher directory the tree was opened at.
func (t *Tree) Dir() string { return t.dir }

// split cleans a plaintext path into its components.
func split(plain string) []string {
	plain = strings.Trim(path.Clean("/"+plain), "/")
	if plain == "" {
		return nil
	}
	return strings.Split(plain, "/")
}

// parent resolves every component of plain but the last and returns an
// O_PATH descriptor of that directory (the caller closes it), its lower
// path relative to the root, and the lower name of the last component.
func (t *Tree) parent(plain string) (dfd int, lowerDir string, last Name, err error) {
	parts := split(plain)
	if len(parts) == 0 {
		return -1, "", Name{}, fmt.Errorf("%q names the root, not an entry: %w", plain, unix.EINVAL)
	}
	dfd, err = dup(t.root)
	if err != nil {
		return -1, "", Name{}, err
	}
	var lower []string
	for i, p := range parts {
		iv, err := DirIV(t.s, dfd)
		if err == nil {
			last, err = ResolveName(t.s, dfd, iv, p) // conflict.go
		}
		if err != nil {
			unix.Close(dfd)
			return -1, "", Name{}, fmt.Errorf("%s: %w", path.Join(parts[:i+1]...), err)
		}
		if i == len(parts)-1 {
			break
		}
		next, err := Openat(dfd, last.Lower, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		unix.Close(dfd)
		if err != nil {
			return -1, "", Name{}, fmt.Errorf("%s: %w", path.Join(parts[:i+1]...), err)
		}
		dfd = next
		lower = append(lower, last.Lower)
	}
	return dfd, path.Join(lower...), last, nil
}

// LowerPath returns the path in the cipher tree, relative to Dir, that
// stores plaintext path plain. Every directory on the way must exist (its
// IV names its entries); the last component need not.
func (t *Tree) LowerPath(plain string) (string, error) {
	if len(split(plain)) == 0 {
		return ".", nil
	}
	dfd, dir, last, err := t.parent(plain)
	if err != nil {
		return "", err
	}
	unix.Close(dfd)
	return path.Join(dir, last.Lower), nil
}

// PlainPath returns the plaintext path of lower path lower (relative to
// Dir), decrypting each component with its directory's IV. A name that
// does not decrypt gives an error wrapping crypt.ErrAuth.
func (t *Tree) PlainPath(lower string) (string, error) {
	dfd, err := dup(t.root)
	if err != nil {
		return "", err
	}
	defer func() { unix.Close(dfd) }()
	parts := split(lower)
	var plain []string
	for i, l := range parts {
		iv, err := DirIV(t.s, dfd)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path.Join(parts[:i]...), err)
		}
		p, err := decodeAny(t.s, dfd, iv, l) // conflict.go
		if err != nil {
			return "", fmt.Errorf("%s: %w", path.Join(parts[:i+1]...), err)
		}
		plain = append(plain, p)
		if i < len(parts)-1 {
			next, err := Openat(dfd, l, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return "", fmt.Errorf("%s: %w", path.Join(parts[:i+1]...), err)
			}
			unix.Close(dfd)
			dfd = next
		}
	}
	return path.Join(plain...), nil
}

// File is a regular file of a Tree, read through the content engine. It
// implements io.ReaderAt over the plaintext.
type File struct {
	fd int
	c  *Content
}

// OpenFile opens the regular file at plaintext path plain for reading;
// anything else in its place is not opened (an error wrapping
// ErrNotRegular).
func (t *Tree) OpenFile(plain string) (*File, error) {
	dfd, _, last, err := t.parent(plain)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	fd, err := OpenRegular(dfd, last.Lower, unix.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", plain, err)
	}
	c, err := OpenContent(t.s, fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", plain, err)
	}
	return &File{fd: fd, c: c}, nil
}

// Size returns the plaintext size.
func (f *File) Size() int64 { return int64(f.c.Size()) }

// ReadAt reads plaintext at off, as io.ReaderAt: a read that reaches the
// end returns io.EOF with the bytes it got. A block that fails
// authentication gives an error wrapping crypt.ErrAuth.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d: %w", off, unix.EINVAL)
	}
	n, err := f.c.ReadAt(p, uint64(off))
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// Close closes the lower file.
func (f *File) Close() error { return unix.Close(f.fd) }

// Mkdir creates directory plain with its name IV.
func (t *Tree) Mkdir(plain string, mode uint32) error {
	return t.create(plain, func(pfd int, lower string) error {
		return MakeDir(pfd, lower, mode, !t.s.DeterministicNames())
	})
}

// WriteFile creates regular file plain (it must not exist) holding data.
func (t *Tree) WriteFile(plain string, data []byte, mode uint32) error {
	return t.create(plain, func(pfd int, lower string) error {
		fd, err := Openat(pfd, lower, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, mode)
		if err != nil {
			return err
		}
		c, err := OpenContent(t.s, fd)
		if err == nil {
			err = c.WriteAt(data, 0)
		}
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err != nil {
			unix.Unlinkat(pfd, lower, 0)
		}
		return err
	})
}

// Symlink creates symlink plain pointing to target (stored encrypted).
func (t *Tree) Symlink(target, plain string) error {
	stored, err := t.s.EncryptSymlink(target)
	if err != nil {
		return fmt.Errorf("%s: %w", plain, err)
	}
	return t.create(plain, func(pfd int, lower string) error {
		return unix.Symlinkat(stored, pfd, lower)
	})
}

// create runs mk in the parent directory of plain with its lower name,
// writing the sidecar of a long name first and removing it when mk fails.
func (t *Tree) create(plain string, mk func(pfd int, lower string) error) error {
	dfd, _, last, err := t.parent(plain)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if last.Long {
		if err := WriteSidecar(dfd, last.Lower, last.Encoded); err != nil {
			return fmt.Errorf("%s: %w", plain, err)
		}
	}
	if err := mk(dfd, last.Lower); err != nil {
		if last.Long {
			unix.Unlinkat(dfd, crypt.SidecarName(last.Lower), 0)
		}
		return fmt.Errorf("%s: %w", plain, err)
	}
	return nil
}

// SetXattr stores the user attribute name (with its "user." prefix) of
// plain, encrypted.
func (t *Tree) SetXattr(plain, name string, value []byte) error {
	lname, err := t.s.EncryptXattrName(name)
	if err != nil {
		return fmt.Errorf("%s: xattr %q: %w", plain, name, err)
	}
	sealed, err := t.s.SealXattrValue(lname, value)
	if err != nil {
		return err
	}
	return t.withInode(plain, func(path string) error {
		return unix.Setxattr(path, lname, sealed, 0)
	})
}

// Xattrs returns the user attributes of plain, decrypted.
func (t *Tree) Xattrs(plain string) ([]Xattr, error) {
	var xs []Xattr
	err := t.withInode(plain, func(path string) (err error) {
		xs, err = Xattrs(t.s, path)
		return err
	})
	return xs, err
}

// Readlink returns the decrypted target of symlink plain.
func (t *Tree) Readlink(plain string) (string, error) {
	dfd, _, last, err := t.parent(plain)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	stored, err := Readlinkat(dfd, last.Lower)
	if err != nil {
		return "", fmt.Errorf("%s: %w", plain, err)
	}
	return t.s.DecryptSymlink(stored)
}

// withInode runs fn with a ProcFd path of plain's lower inode (the root
// for ""), reached without following symlinks (see withFd).
func (t *Tree) withInode(plain string, fn func(path string) error) error {
	return t.withFd(plain, func(fd int) error { return fn(ProcFd(fd)) })
}

// dup duplicates fd with close-on-exec set.
func dup(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }
