package fstest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// treeEntry is what CompareTrees records of one entry.
type treeEntry struct {
	mode   uint32 // type and permission bits
	uid    uint32
	gid    uint32
	nlink  uint64
	size   int64 // regular files and symlinks
	ino    uint64
	sum    [32]byte // SHA-256 of a regular file's content
	target string   // symlink target
	xattrs map[string]string
	err    string // an error reading the entry (its errno name)
}

// snapshot records every entry under root, keyed by relative path ("" is root itself).
func snapshot(root string) (map[string]*treeEntry, error) {
	out := map[string]*treeEntry{}
	var walk func(rel string) error
	walk = func(rel string) error {
		p := root
		if rel != "" {
			p += "/" + rel
		}
		e := &treeEntry{}
		out[rel] = e
		var st unix.Stat_t
		if err := retry0(func() error { return unix.Lstat(p, &st) }); err != nil {
			e.err = "lstat: " + errnoName(err)
			return nil
		}
		e.mode, e.uid, e.gid, e.nlink, e.ino = st.Mode, st.Uid, st.Gid, st.Nlink, st.Ino
		if xa, err := userXattrs(p); err != nil {
			e.err = "xattrs: " + errnoName(err)
		} else {
			e.xattrs = xa
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e.size = st.Size
			sum, err := fileSum(p)
			if err != nil {
				e.err = "read: " + errnoName(err)
			}
			e.sum = sum
		case unix.S_IFLNK:
			e.size = st.Size
			t, err := os.Readlink(p)
			if err != nil {
				e.err = "readlink: " + errnoName(err)
			}
			e.target = t
		case unix.S_IFDIR:
			names, err := listNames(p)
			if err != nil {
				e.err = "list: " + errnoName(err)
				return nil
			}
			for _, n := range names {
				child := n
				if rel != "" {
					child = rel + "/" + n
				}
				if err := walk(child); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, walk("")
}

// listNames lists a directory with getdents, sorted, failing on duplicates.
func listNames(dir string) ([]string, error) {
	f, err := openFile(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := readDirents(f, 8192)
	if err != nil {
		return nil, err
	}
	names := sortedNames(ents)
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			return nil, fmt.Errorf("%s listed twice in %s: %w", names[i], dir, unix.EUCLEAN)
		}
	}
	return names, nil
}

// userXattrs returns the user.* extended attributes of path (not following symlinks).
func userXattrs(path string) (map[string]string, error) {
	sz, err := retry(func() (int, error) { return unix.Llistxattr(path, nil) })
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, sz+1024) // room for attributes added meanwhile
	sz, err = retry(func() (int, error) { return unix.Llistxattr(path, buf) })
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range strings.Split(string(buf[:sz]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		n, err := retry(func() (int, error) { return unix.Lgetxattr(path, name, v) })
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", name, err)
		}
		out[name] = string(v[:n])
	}
	return out, nil
}

// fileSum returns the SHA-256 of a file's content.
func fileSum(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := openFile(path, unix.O_RDONLY, 0)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// linkGroups maps every non-directory path to the smallest path sharing its inode.
func linkGroups(tree map[string]*treeEntry) map[string]string {
	byIno := map[uint64][]string{}
	for p, e := range tree {
		if e.err == "" && e.mode&unix.S_IFMT != unix.S_IFDIR {
			byIno[e.ino] = append(byIno[e.ino], p)
		}
	}
	out := map[string]string{}
	for _, paths := range byIno {
		slices.Sort(paths)
		for _, p := range paths {
			out[p] = paths[0]
		}
	}
	return out
}

// CompareTrees compares the trees under a (under test) and b (reference): the set of
// names, and for every entry its type, permission bits, owner, link count, which names are
// hard links of one another, size and content of regular files, symlink targets, and user
// extended attributes. Directory sizes, inode numbers themselves and timestamps are not
// compared. It returns nil when they are equal, otherwise an error listing up to ten
// differences.
func CompareTrees(a, b string) error {
	ta, err := snapshot(a)
	if err != nil {
		return err
	}
	tb, err := snapshot(b)
	if err != nil {
		return err
	}
	ga, gb := linkGroups(ta), linkGroups(tb)
	var diffs []string
	add := func(format string, args ...any) {
		diffs = append(diffs, fmt.Sprintf(format, args...))
	}
	var paths []string
	for p := range ta {
		paths = append(paths, p)
	}
	for p := range tb {
		if _, ok := ta[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		ea, eb := ta[p], tb[p]
		name := "/" + p
		switch {
		case ea == nil:
			add("%q: missing (the reference has it)", name)
			continue
		case eb == nil:
			add("%q: unexpected entry (not in the reference)", name)
			continue
		}
		if ea.err != "" || eb.err != "" {
			if ea.err != eb.err {
				add("%q: error %q, the reference %q", name, ea.err, eb.err)
			}
			continue
		}
		if ea.mode != eb.mode {
			add("%q: mode %#o, want %#o", name, ea.mode, eb.mode)
			continue
		}
		if ea.uid != eb.uid || ea.gid != eb.gid {
			add("%q: owner %d:%d, want %d:%d", name, ea.uid, ea.gid, eb.uid, eb.gid)
		}
		if ea.nlink != eb.nlink {
			add("%q: link count %d, want %d", name, ea.nlink, eb.nlink)
		}
		if ga[p] != gb[p] {
			add("%q: is a hard link of %q, in the reference of %q", name, ga[p], gb[p])
		}
		switch ea.mode & unix.S_IFMT {
		case unix.S_IFREG:
			if ea.size != eb.size {
				add("%q: size %d, want %d", name, ea.size, eb.size)
			}
			if ea.sum != eb.sum {
				add("%q: content differs: %s", name, contentDiff(a+name, b+name))
			}
		case unix.S_IFLNK:
			if ea.target != eb.target || ea.size != eb.size {
				add("%q: symlink target %q (size %d), want %q (size %d)", name, ea.target, ea.size, eb.target, eb.size)
			}
		}
		if d := xattrDiff(ea.xattrs, eb.xattrs); d != "" {
			add("%q: xattrs: %s", name, d)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	n := len(diffs)
	if n > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("and %d more", n-10))
	}
	return fmt.Errorf("%d differences:\n\t%s", n, strings.Join(diffs, "\n\t"))
}

// contentDiff describes where two files differ.
func contentDiff(a, b string) string {
	da, errA := os.ReadFile(a)
	db, errB := os.ReadFile(b)
	if errA != nil || errB != nil {
		return fmt.Sprintf("rereading: %v / %v", errA, errB)
	}
	if bytes.Equal(da, db) {
		return "not on a second read (the first read differed)"
	}
	d := diffBytes(da, db)
	if i := firstDiff(da[:min(len(da), len(db))], db[:min(len(da), len(db))]); i >= 0 {
		d += fmt.Sprintf(" (block %d, offset %d in it)", i/4096, i%4096)
	}
	return d
}

// xattrDiff describes how two attribute sets differ, or returns "".
func xattrDiff(a, b map[string]string) string {
	var out []string
	for k, v := range b {
		av, ok := a[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%q missing", k))
		case av != v:
			out = append(out, fmt.Sprintf("%q value %s", k, diffBytes([]byte(av), []byte(v))))
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("%q unexpected", k))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}
