package home

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

type copier struct {
	src, dst   string
	dev        uint64           // the source's file system
	links      map[inode]string // hard-linked source inode -> destination path of its first name
	force      map[string]bool  // destination paths to write again whatever they look like
	dropXattrs bool             // skip attributes cryptfs cannot store instead of failing
	dropped    int
	bar        Reporter
	buf        []byte
}

func newCopier(src, dst string, dropXattrs bool, bar Reporter) *copier {
	if bar == nil {
		bar = nopReporter{}
	}
	return &copier{src: src, dst: dst, links: map[inode]string{}, force: map[string]bool{},
		dropXattrs: dropXattrs, bar: bar, buf: make([]byte, 1<<20)}
}

func (c *copier) run() error {
	st, err := lstat(c.src)
	if err != nil {
		return err
	}
	c.dev = st.Dev
	c.links = map[inode]string{}
	return c.dir(c.src, c.dst, &st, true)
}

// entry copies one source entry to dst.
func (c *copier) entry(src, dst string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if st.Dev != c.dev {
			return fmt.Errorf("%s is on another file system (a mount inside the home): unmount it first", src)
		}
		return c.dir(src, dst, st, false)
	case unix.S_IFREG:
		return c.file(src, dst, st)
	case unix.S_IFLNK:
		return c.symlink(src, dst, st)
	default:
		return c.special(src, dst, st)
	}
}

func (c *copier) dir(src, dst string, st *unix.Stat_t, root bool) error {
	if !root {
		dstSt, err := lstat(dst)
		switch {
		case err == nil && dstSt.Mode&unix.S_IFMT == unix.S_IFDIR:
		case err == nil || !errors.Is(err, os.ErrNotExist):
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
			fallthrough
		default:
			if err := unix.Mkdir(dst, 0o700); err != nil {
				return &os.PathError{Op: "mkdir", Path: dst, Err: err}
			}
		}
	}
	names, err := readDirNames(src)
	if err != nil {
		return err
	}
	have, err := readDirNames(dst)
	if err != nil {
		return err
	}
	for _, name := range have {
		if _, ok := slices.BinarySearch(names, name); !ok {
			if err := os.RemoveAll(filepath.Join(dst, name)); err != nil {
				return err
			}
		}
	}
	for _, name := range names {
		s, d := filepath.Join(src, name), filepath.Join(dst, name)
		cst, err := lstat(s)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := c.entry(s, d, &cst); err != nil {
			return err
		}
	}
	c.bar.Add(1, 0)
	return c.attrs(src, dst, st)
}

// done reports whether dst already holds a complete copy of st.
func (c *copier) done(dst string, st *unix.Stat_t) bool {
	if c.force[dst] {
		return false
	}
	d, err := lstat(dst)
	return err == nil && d.Mode == st.Mode && d.Uid == st.Uid && d.Gid == st.Gid && d.Size == st.Size &&
		d.Mtim == st.Mtim && (st.Mode&unix.S_IFMT != unix.S_IFCHR && st.Mode&unix.S_IFMT != unix.S_IFBLK || d.Rdev == st.Rdev)
}

// clear removes whatever is at dst.
func clear(dst string) error {
	if _, err := lstat(dst); err == nil {
		return os.RemoveAll(dst)
	}
	return nil
}

func (c *copier) file(src, dst string, st *unix.Stat_t) error {
	if st.Nlink > 1 {
		key := inode{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok {
			return c.link(first, dst)
		}
		c.links[key] = dst
	}
	if c.done(dst, st) {
		c.bar.Skip(1, st.Size)
		return nil
	}
	if err := clear(dst); err != nil {
		return err
	}
	in, err := openRead(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fd, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: dst, Err: err}
	}
	out := os.NewFile(uintptr(fd), dst)
	defer out.Close()
	var off int64
	for {
		n, err := in.Read(c.buf)
		if n > 0 {
			chunk := c.buf[:n]
			// Zero chunks are not written: holes stay holes (the final
			// truncate sets the size).
			if !allZero(chunk) {
				if _, err := out.WriteAt(chunk, off); err != nil {
					return err
				}
			}
			off += int64(n)
			c.bar.Add(0, int64(n))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := out.Truncate(off); err != nil {
		return err
	}
	if off != st.Size {
		return fmt.Errorf("%s changed while it was copied (%d bytes, %d expected)", src, off, st.Size)
	}
	if err := out.Close(); err != nil {
		return err
	}
	c.bar.Add(1, 0)
	return c.attrs(src, dst, st)
}

// link makes dst a hard link of first (the copy of the same source
// inode), unless it is one already.
func (c *copier) link(first, dst string) error {
	f, err1 := lstat(first)
	d, err2 := lstat(dst)
	if err1 == nil && err2 == nil && f.Ino == d.Ino && f.Dev == d.Dev && !c.force[dst] {
		c.bar.Skip(1, 0)
		return nil
	}
	if err := clear(dst); err != nil {
		return err
	}
	if err := unix.Link(first, dst); err != nil {
		return &os.LinkError{Op: "link", Old: first, New: dst, Err: err}
	}
	c.bar.Add(1, 0)
	return nil
}

func (c *copier) symlink(src, dst string, st *unix.Stat_t) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	if c.done(dst, st) {
		if t, err := os.Readlink(dst); err == nil && t == target {
			c.bar.Skip(1, 0)
			return nil
		}
	}
	if err := clear(dst); err != nil {
		return err
	}
	if err := os.Symlink(target, dst); err != nil {
		return err
	}
	c.bar.Add(1, 0)
	return c.attrs(src, dst, st)
}

func (c *copier) special(src, dst string, st *unix.Stat_t) error {
	if c.done(dst, st) {
		c.bar.Skip(1, 0)
		return nil
	}
	if err := clear(dst); err != nil {
		return err
	}
	if err := unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
		return &os.PathError{Op: "mknod", Path: dst, Err: err}
	}
	c.bar.Add(1, 0)
	return c.attrs(src, dst, st)
}

// attrs gives dst the source's extended attributes, owner, mode and times,
// in that order: a chown clears set-ID bits, and the modification time
// comes last because it marks the entry complete.
func (c *copier) attrs(src, dst string, st *unix.Stat_t) error {
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if !isLink {
		want, names, err := xattrs(src)
		if err != nil {
			return err
		}
		_, have, err := xattrs(dst)
		if err != nil {
			return err
		}
		for _, n := range have {
			if _, ok := want[n]; !ok {
				if err := unix.Lremovexattr(dst, n); err != nil {
					return &os.PathError{Op: "removexattr " + n, Path: dst, Err: err}
				}
			}
		}
		for _, n := range names {
			if !supportedXattr(n) {
				if c.dropXattrs {
					c.dropped++
					continue
				}
				return fmt.Errorf("%s: extended attribute %s cannot be stored in cryptfs (only user.*); use --drop-unsupported-xattrs", src, n)
			}
			if err := unix.Lsetxattr(dst, n, want[n], 0); err != nil {
				return &os.PathError{Op: "setxattr " + n, Path: dst, Err: err}
			}
		}
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "chown", Path: dst, Err: err}
	}
	if !isLink {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	return setTimes(dst, st)
}

// setTimes sets dst's access and modification times to st's.
func setTimes(dst string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: dst, Err: err}
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
