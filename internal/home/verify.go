package home

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

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
