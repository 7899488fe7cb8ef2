package ciphertree

import (
	"fmt"
	"io"
	"path"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// Walking a Tree for the offline tools (restore): a directory is opened
// once and its entries are reached from its descriptor, so a walk of a
// whole tree costs one open and one IV read per directory rather than a
// resolution from the root per entry.

// Node is an entry of a Tree.
type Node struct {
	Path  string      // plaintext path relative to the root; "" for the root
	Lower string      // lower path relative to the tree's Dir; "." for the root
	Stat  unix.Stat_t // of the lower entry: a regular file's Size is its cipher size
}

// PlainSize returns the plaintext size of a regular file (its lower size
// converted), and 0 for anything else. A lower size that no cipher file
// can have is an error (the file is damaged).
func (n *Node) PlainSize() (int64, error) {
	if n.Stat.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, nil
	}
	s, err := crypt.PlainSize(uint64(n.Stat.Size))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", n.Path, err)
	}
	return int64(s), nil
}

// Lstat returns the node at plaintext path plain without following a
// symlink there.
func (t *Tree) Lstat(plain string) (Node, error) {
	n := Node{Path: path.Join(split(plain)...), Lower: "."}
	if n.Path == "" {
		return n, Fstat(t.root, &n.Stat)
	}
	dfd, dir, last, err := t.parent(plain)
	if err != nil {
		return n, err
	}
	defer unix.Close(dfd)
	n.Lower = path.Join(dir, last.Lower)
	if err := unix.Fstatat(dfd, last.Lower, &n.Stat, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return n, fmt.Errorf("%s: %w", n.Path, err)
	}
	return n, nil
}

// Dir is a directory of a Tree, open for walking. Close releases it.
type Dir struct {
	Node
	t      *Tree
	fd     int // O_PATH descriptor
	iv     crypt.DirIV
	atRoot bool
}

// OpenDir opens the directory at plaintext path plain.
func (t *Tree) OpenDir(plain string) (*Dir, error) {
	n, err := t.Lstat(plain)
	if err != nil {
		return nil, err
	}
	var fd int
	if n.Path == "" {
		fd, err = dup(t.root)
	} else {
		fd, err = Openat(t.root, n.Lower, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	return t.newDir(n, fd)
}

// newDir wraps fd, the O_PATH descriptor of directory n, and reads its IV.
func (t *Tree) newDir(n Node, fd int) (*Dir, error) {
	var st unix.Stat_t
	if err := Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	if st.Ino != n.Stat.Ino || st.Dev != n.Stat.Dev {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: replaced while it was opened: %w", n.Path, unix.ESTALE)
	}
	iv, err := DirIV(t.s, fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: directory IV: %w", n.Path, err)
	}
	return &Dir{Node: n, t: t, fd: fd, iv: iv, atRoot: n.Path == ""}, nil
}

// OpenParent opens the directory that holds plaintext path plain (not
// the root) and returns it with plain's node, resolved as LowerPath
// resolves it (a conflict copy's name included).
func (t *Tree) OpenParent(plain string) (*Dir, Node, error) {
	parts := split(plain)
	if len(parts) == 0 {
		return nil, Node{}, fmt.Errorf("the root has no parent directory: %w", unix.EINVAL)
	}
	d, err := t.OpenDir(path.Join(parts[:len(parts)-1]...))
	if err != nil {
		return nil, Node{}, err
	}
	name := parts[len(parts)-1]
	n := Node{Path: path.Join(d.Path, name)}
	ln, err := ResolveName(t.s, d.fd, d.iv, name)
	if err == nil {
		n.Lower = path.Join(d.Lower, ln.Lower)
		err = unix.Fstatat(d.fd, ln.Lower, &n.Stat, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		d.Close()
		return nil, n, fmt.Errorf("%s: %w", n.Path, err)
	}
	return d, n, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// List reads the directory's entries (ListDir: conflict copies
// included, reserved names left out).
func (d *Dir) List() (*Listing, error) {
	l, err := ListDir(d.t.s, d.fd, d.iv, d.atRoot)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Path, err)
	}
	return l, nil
}

// Lstat returns the node of entry e of the directory.
func (d *Dir) Lstat(e Entry) (Node, error) {
	n := Node{Path: path.Join(d.Path, e.Name), Lower: path.Join(d.Lower, e.Lower)}
	if err := unix.Fstatat(d.fd, e.Lower, &n.Stat, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return n, fmt.Errorf("%s: %w", n.Path, err)
	}
	return n, nil
}

// OpenDir opens subdirectory n, an entry of d as its Lstat returned it.
func (d *Dir) OpenDir(n Node) (*Dir, error) {
	fd, err := Openat(d.fd, path.Base(n.Lower), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	return d.t.newDir(n, fd)
}

// OpenFile opens regular file n, an entry of d, for reading, without
// changing its access time where the caller may (the owner, or root): a
// restore from a backup copy leaves the copy as it was.
func (d *Dir) OpenFile(n Node) (*File, error) {
	fd, err := Openat(d.fd, path.Base(n.Lower), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = Openat(d.fd, path.Base(n.Lower), unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	c, err := OpenContent(d.t.s, fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	return &File{fd: fd, c: c}, nil
}

// Readlink returns the decrypted target of symlink n, an entry of d.
func (d *Dir) Readlink(n Node) (string, error) {
	stored, err := Readlinkat(d.fd, path.Base(n.Lower))
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.Path, err)
	}
	target, err := d.t.s.DecryptSymlink(stored)
	if err != nil {
		return "", fmt.Errorf("%s: symlink target: %w", n.Path, err)
	}
	return target, nil
}

// Xattrs returns the user attributes of n, an entry of d, or of d itself
// when n is d's own Node.
func (d *Dir) Xattrs(n Node) ([]Xattr, error) {
	var fd int
	var err error
	if n.Lower == d.Lower {
		fd, err = dup(d.fd)
	} else {
		fd, err = Openat(d.fd, path.Base(n.Lower), unix.O_PATH|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	defer unix.Close(fd)
	xs, err := Xattrs(d.t.s, ProcFd(fd))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	return xs, nil
}

// readChunk is how much plaintext File.WriteTo and File.CopyTo decrypt
// at a time (the daemon's largest request).
const readChunk = 1 << 20

// dataRanges calls fn for the plaintext ranges [off, off+n) of f that may
// hold data, in order; what lies between them reads as zeros.
func (f *File) dataRanges(fn func(off, n int64) error) error {
	size := int64(f.c.Size())
	if size == 0 {
		return nil
	}
	var st unix.Stat_t
	if err := Fstat(f.fd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	return DataBlocks(f.fd, uint64(st.Size), func(r BlockRun) error {
		off := int64(r.First * crypt.BlockSize)
		end := min(int64((r.First+r.N)*crypt.BlockSize), size)
		if off >= end {
			return nil
		}
		return fn(off, end-off)
	})
}

// WriteTo writes the whole plaintext to w, as io.WriterTo: the regions
// that are holes in the lower file are written as zeros without being
// read. A block that fails authentication stops it with an error wrapping
// crypt.ErrAuth that names the block; what was written before it had
// authenticated.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, readChunk)
	var done int64
	zeros := func(upTo int64) error {
		for done < upTo {
			n := min(upTo-done, int64(len(buf)))
			clear(buf[:n])
			m, err := w.Write(buf[:n])
			done += int64(m)
			if err != nil {
				return err
			}
		}
		return nil
	}
	err := f.dataRanges(func(off, n int64) error {
		if err := zeros(off); err != nil {
			return err
		}
		for end := off + n; done < end; {
			k, err := f.c.ReadAt(buf[:min(end-done, int64(len(buf)))], uint64(done))
			if err != nil {
				return err
			}
			m, err := w.Write(buf[:k])
			done += int64(m)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = zeros(int64(f.c.Size()))
	}
	return done, err
}

// CopyTo writes the whole plaintext into the empty regular file behind
// dst at the same offsets, leaving the lower file's holes as holes (the
// destination is sparse where the source is), and sets dst's size.
// progress, if not nil, is called with the number of plaintext bytes
// done after each chunk (holes count as done). Errors are as for WriteTo.
func (f *File) CopyTo(dst int, progress func(n int64)) error {
	buf := make([]byte, readChunk)
	var reported int64
	err := f.dataRanges(func(off, n int64) error {
		if progress != nil && off > reported {
			progress(off - reported)
			reported = off
		}
		for at, end := off, off+n; at < end; {
			k, err := f.c.ReadAt(buf[:min(end-at, int64(len(buf)))], uint64(at))
			if err != nil {
				return err
			}
			if err := PwriteFull(dst, buf[:k], at); err != nil {
				return err
			}
			at += int64(k)
			if progress != nil {
				progress(at - reported)
				reported = at
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	size := int64(f.c.Size())
	if err := unix.Ftruncate(dst, size); err != nil {
		return fmt.Errorf("ftruncate: %w", err)
	}
	if progress != nil && size > reported {
		progress(size - reported)
	}
	return nil
}
