package home

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// The tree walks of Migrate: scan (what there is to copy), copy (source to
// the staging mount, resumable) and verify (every byte and attribute of
// the copy against the source). The source is read without changing its
// access times (O_NOATIME) and without following symlinks; it must stay
// on one file system (mounts inside it are refused, as cp -x would skip
// them). The copy goes through a cryptfs mount served by another process.

// Reporter receives progress (internal/progress.Bar).
type Reporter interface {
	Add(files, bytes int64)
	Skip(files, bytes int64)
	Done()
}

type nopReporter struct{}

func (nopReporter) Add(int64, int64)  {}
func (nopReporter) Skip(int64, int64) {}
func (nopReporter) Done()             {}

// inode identifies a source file for hard links.
type inode struct{ dev, ino uint64 }

// lstat is unix.Lstat with the path in its error.
func lstat(path string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return st, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return st, nil
}

// readDirNames lists a directory's names, sorted, without changing its
// access time where the caller may (O_NOATIME).
func readDirNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// openRead opens a regular file for reading without following a symlink
// and, where allowed, without changing its access time.
func openRead(path string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// xattrs returns a file's extended attributes (without following a
// symlink), names sorted.
func xattrs(path string) (map[string][]byte, []string, error) {
	size, err := unix.Llistxattr(path, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
	}
	if size == 0 {
		return nil, nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(path, buf)
	if err != nil {
		return nil, nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
	}
	out := map[string][]byte{}
	var names []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		v := make([]byte, n)
		if n > 0 {
			if n, err = unix.Lgetxattr(path, name, v); err != nil {
				return nil, nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
			}
		}
		out[name] = v[:n]
		names = append(names, name)
	}
	slices.Sort(names)
	return out, names, nil
}

// supportedXattr reports whether cryptfs stores an extended attribute
// (user.* only; see the README).
func supportedXattr(name string) bool { return strings.HasPrefix(name, "user.") }

// Scan is what scanTree found in a source tree.
type Scan struct {
	Entries int64 // files, directories, symlinks and special files
	Dirs    int64
	Bytes   int64 // content bytes of the regular files, each inode once
	// Estimate is the space the cipher tree needs, in bytes: each file's
	// cipher size (sparse files by their allocated size) and a block for
	// every directory's IV file, rounded up to 4 KiB blocks.
	Estimate int64
	// Unsupported lists up to 10 examples of extended attributes cryptfs
	// does not store; UnsupportedCount counts all of them.
	Unsupported      []string
	UnsupportedCount int
	// Mounts lists directories inside the tree on another file system.
	Mounts []string
}

// scanTree walks the tree at root.
func scanTree(root string) (*Scan, error) {
	st, err := lstat(root)
	if err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%s is not a directory", root)
	}
	s := &Scan{}
	seen := map[inode]bool{}
	var walk func(path string, st *unix.Stat_t) error
	walk = func(path string, st *unix.Stat_t) error {
		s.Entries++
		_, names, err := xattrs(path)
		if err != nil {
			return err
		}
		for _, n := range names {
			if !supportedXattr(n) {
				if s.UnsupportedCount++; len(s.Unsupported) < 10 {
					s.Unsupported = append(s.Unsupported, path+": "+n)
				}
			}
		}
		const block = 4096
		round := func(n int64) int64 { return (n + block - 1) / block * block }
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			s.Dirs++
			s.Estimate += 2 * block // the directory and its IV file
			names, err := readDirNames(path)
			if err != nil {
				return err
			}
			for _, name := range names {
				child := filepath.Join(path, name)
				cst, err := lstat(child)
				if errors.Is(err, os.ErrNotExist) {
					continue // gone meanwhile
				}
				if err != nil {
					return err
				}
				if cst.Mode&unix.S_IFMT == unix.S_IFDIR && cst.Dev != st.Dev {
					s.Mounts = append(s.Mounts, child)
					continue
				}
				if err := walk(child, &cst); err != nil {
					return err
				}
			}
		case unix.S_IFREG:
			key := inode{st.Dev, st.Ino}
			if st.Nlink > 1 {
				if seen[key] {
					return nil
				}
				seen[key] = true
			}
			s.Bytes += st.Size
			cipher := int64(crypt.CipherSize(uint64(st.Size)))
			if alloc := st.Blocks * 512; alloc < st.Size {
				// Sparse: holes stay holes in the cipher tree.
				cipher = int64(crypt.CipherSize(uint64(alloc))) + block
			}
			s.Estimate += round(cipher)
		case unix.S_IFLNK:
			s.Estimate += block
		}
		return nil
	}
	if err := walk(root, &st); err != nil {
		return nil, err
	}
	return s, nil
}

// diskUsage returns the space the files under root take (allocated
// blocks), 0 if root does not exist.
func diskUsage(root string) int64 {
	var n int64
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if st, err := lstat(path); err == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// copier copies a source tree onto a destination tree (the staging
// mount) so that a copy interrupted at any point resumes: an entry whose
// type, size, modification time, mode and owner already match is skipped
// (content and attributes are set before the modification time, which is
// set last), everything else is written again, and entries the source does
// not have are removed.
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

// A Diff is one difference verify found: the destination path and what
// differs.
type Diff struct {
	Path string
	What string
}

func (d Diff) String() string { return d.Path + ": " + d.What }

// verifier compares a destination tree (the staging mount) with its
// source: types, modes, owners, sizes, access and modification times,
// symlink targets, device numbers, extended attributes, hard links and
// every byte. What it reads on the destination changes access times
// there; it puts them back.
type verifier struct {
	src, dst   string
	dropXattrs bool
	bar        Reporter
	diffs      []Diff
	links      map[inode]*linkGroup
	bufA, bufB []byte
}

type linkGroup struct {
	paths []string // destination paths of one source inode
}

func verifyTree(src, dst string, dropXattrs bool, bar Reporter) ([]Diff, error) {
	if bar == nil {
		bar = nopReporter{}
	}
	v := &verifier{src: src, dst: dst, dropXattrs: dropXattrs, bar: bar, links: map[inode]*linkGroup{},
		bufA: make([]byte, 1<<20), bufB: make([]byte, 1<<20)}
	st, err := lstat(src)
	if err != nil {
		return nil, err
	}
	if err := v.entry(src, dst, &st); err != nil {
		return v.diffs, err
	}
	for _, g := range v.links {
		var first unix.Stat_t
		for i, p := range g.paths {
			d, err := lstat(p)
			if err != nil {
				continue // reported already
			}
			if i == 0 {
				first = d
				continue
			}
			if d.Ino != first.Ino {
				v.diff(p, "not a hard link of %s", g.paths[0])
			}
		}
	}
	return v.diffs, nil
}

func (v *verifier) diff(path, format string, args ...any) {
	v.diffs = append(v.diffs, Diff{Path: path, What: fmt.Sprintf(format, args...)})
}

func (v *verifier) entry(src, dst string, st *unix.Stat_t) error {
	d, err := lstat(dst)
	if err != nil {
		v.diff(dst, "missing (%v)", err)
		return nil
	}
	typ := st.Mode & unix.S_IFMT
	if d.Mode&unix.S_IFMT != typ {
		v.diff(dst, "type %o, want %o", d.Mode&unix.S_IFMT, typ)
		return nil
	}
	if typ != unix.S_IFLNK && d.Mode&0o7777 != st.Mode&0o7777 {
		v.diff(dst, "mode %04o, want %04o", d.Mode&0o7777, st.Mode&0o7777)
	}
	if d.Uid != st.Uid || d.Gid != st.Gid {
		v.diff(dst, "owner %d:%d, want %d:%d", d.Uid, d.Gid, st.Uid, st.Gid)
	}
	if d.Mtim != st.Mtim {
		v.diff(dst, "modification time %v, want %v", ts(d.Mtim), ts(st.Mtim))
	}
	// A symlink's access time is not compared: reading the link (which
	// the daemon does to report its size) moves it in the cipher tree.
	if d.Atim != st.Atim && typ != unix.S_IFLNK {
		v.diff(dst, "access time %v, want %v", ts(d.Atim), ts(st.Atim))
	}
	if typ != unix.S_IFLNK {
		if err := v.xattrs(src, dst); err != nil {
			return err
		}
	}
	switch typ {
	case unix.S_IFDIR:
		if err := v.dir(src, dst); err != nil {
			return err
		}
		v.bar.Add(1, 0)
	case unix.S_IFREG:
		again := false // a further name of a hard-linked file: its content was compared
		if st.Nlink > 1 {
			key := inode{st.Dev, st.Ino}
			if v.links[key] == nil {
				v.links[key] = &linkGroup{}
			} else {
				again = true
			}
			v.links[key].paths = append(v.links[key].paths, dst)
		}
		if d.Size != st.Size {
			v.diff(dst, "size %d, want %d", d.Size, st.Size)
		} else if !again {
			if err := v.content(src, dst); err != nil {
				return err
			}
		}
		v.bar.Add(1, 0)
	case unix.S_IFLNK:
		a, err1 := os.Readlink(src)
		b, err2 := os.Readlink(dst)
		if err1 != nil {
			return err1
		}
		if err2 != nil || a != b {
			v.diff(dst, "symlink target %q (%v), want %q", b, err2, a)
		}
		v.bar.Add(1, 0)
	case unix.S_IFCHR, unix.S_IFBLK:
		if d.Rdev != st.Rdev {
			v.diff(dst, "device %d, want %d", d.Rdev, st.Rdev)
		}
		v.bar.Add(1, 0)
	default:
		v.bar.Add(1, 0)
	}
	// Reading the destination (the daemon reads the lower file or
	// directory) may have moved its access time: put back what the copy
	// (and the source) have. Always: a stat here may be answered from the
	// kernel's attribute cache and not show the change.
	if typ != unix.S_IFIFO && typ != unix.S_IFSOCK && typ != unix.S_IFCHR && typ != unix.S_IFBLK {
		if err := setTimes(dst, &d); err != nil {
			v.diff(dst, "cannot restore its times: %v", err)
		}
	}
	return nil
}

func (v *verifier) dir(src, dst string) error {
	names, err := readDirNames(src)
	if err != nil {
		return err
	}
	have, err := readDirNames(dst)
	if err != nil {
		v.diff(dst, "cannot list: %v", err)
		return nil
	}
	for _, n := range have {
		if _, ok := slices.BinarySearch(names, n); !ok {
			v.diff(filepath.Join(dst, n), "not in the source")
		}
	}
	for _, n := range names {
		s := filepath.Join(src, n)
		st, err := lstat(s)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := v.entry(s, filepath.Join(dst, n), &st); err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) xattrs(src, dst string) error {
	want, names, err := xattrs(src)
	if err != nil {
		return err
	}
	got, _, err := xattrs(dst)
	if err != nil {
		v.diff(dst, "extended attributes: %v", err)
		return nil
	}
	n := 0
	for _, name := range names {
		if !supportedXattr(name) && v.dropXattrs {
			continue
		}
		n++
		g, ok := got[name]
		if !ok {
			v.diff(dst, "extended attribute %s missing", name)
		} else if !bytes.Equal(g, want[name]) {
			v.diff(dst, "extended attribute %s differs", name)
		}
	}
	if len(got) != n {
		v.diff(dst, "%d extended attributes, want %d", len(got), n)
	}
	return nil
}

// content compares two files of equal size byte for byte.
func (v *verifier) content(src, dst string) error {
	a, err := openRead(src)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := openRead(dst)
	if err != nil {
		v.diff(dst, "cannot open: %v", err)
		return nil
	}
	defer b.Close()
	var off int64
	for {
		n, errA := io.ReadFull(a, v.bufA)
		m, errB := io.ReadFull(b, v.bufB[:n])
		if m != n || !bytes.Equal(v.bufA[:n], v.bufB[:m]) {
			i := 0
			for i < m && v.bufA[i] == v.bufB[i] {
				i++
			}
			v.diff(dst, "content differs at byte %d (%v)", off+int64(i), errB)
			return nil
		}
		off += int64(n)
		v.bar.Add(0, int64(n))
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			// The destination must end here too.
			if k, _ := b.Read(v.bufB[:1]); k != 0 {
				v.diff(dst, "longer than the source")
			}
			return nil
		}
		if errA != nil {
			return errA
		}
	}
}

func ts(t unix.Timespec) string { return fmt.Sprintf("%d.%09d", t.Sec, t.Nsec) }
