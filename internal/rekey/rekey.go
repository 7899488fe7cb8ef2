package rekey

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Stats counts what was copied.
type Stats struct {
	Dirs, Files, Symlinks, Others, Links, Xattrs int
	Bytes                                        int64
}

// Problem is an entry that could not be copied, or a difference Verify
// found.
type Problem struct {
	Path string // plaintext path, or the lower name where the name does not decrypt
	Err  error
}

func (p Problem) String() string { return p.Path + ": " + p.Err.Error() }

// Options control Copy.
type Options struct {
	// Owners copies owner and group (needs root); without it new entries
	// belong to whoever runs the copy.
	Owners bool
	// Progress, if set, is called after every copied entry.
	Progress func(Stats)
}

type copier struct {
	src, dst *ciphertree.Tree
	opts     Options
	st       Stats
	problems []Problem
	links    map[[2]uint64]string // source lower (dev, ino) -> first plaintext path
}

// chunk is how much plaintext is read and written at a time.
const chunk = 1 << 20

// Copy copies the plaintext of src into dst, whose root must be empty
// (a tree just initialised). It returns what it copied and the entries it
// could not; the error is for failures that stop the copy (writing dst).
func Copy(src, dst *ciphertree.Tree, opts Options) (Stats, []Problem, error) {
	c := &copier{src: src, dst: dst, opts: opts, links: map[[2]uint64]string{}}
	err := c.dir("")
	if err == nil {
		var mode uint32
		if mode, err = src.RootMode(); err == nil {
			err = dst.SetRootMode(mode)
		}
	}
	if err == nil {
		var n ciphertree.Node
		if n, err = src.Lstat(""); err == nil {
			err = dst.SetAttr("", c.attr(&n.Stat, false))
		}
	}
	return c.st, c.problems, err
}

func (c *copier) problem(p string, err error) {
	c.problems = append(c.problems, Problem{Path: p, Err: err})
}

// attr returns what SetAttr must apply to match the source stat st.
func (c *copier) attr(st *unix.Stat_t, withMode bool) ciphertree.Attr {
	a := ciphertree.Attr{Atime: &st.Atim, Mtime: &st.Mtim}
	if withMode {
		m := st.Mode & 0o7777
		a.Mode = &m
	}
	if c.opts.Owners {
		a.UID, a.GID = &st.Uid, &st.Gid
	}
	return a
}

// dir copies the entries of directory p (already created in dst), then
// its attributes, so that the copies do not change its times again.
func (c *copier) dir(p string) error {
	entries, err := c.src.ReadDir(p)
	if err != nil {
		c.problem(p, err)
		return nil
	}
	if err := c.xattrs(p); err != nil {
		return err
	}
	for _, e := range entries {
		if e.NameErr != nil {
			c.problem(path.Join(p, "<lower "+e.Lower+">"), fmt.Errorf("name does not decrypt: %w", e.NameErr))
			continue
		}
		if err := c.entry(path.Join(p, e.Name), &e.Stat); err != nil {
			return err
		}
		if c.opts.Progress != nil {
			c.opts.Progress(c.st)
		}
	}
	if p == "" {
		return nil // the root's mode and times: Copy
	}
	n, err := c.src.Lstat(p)
	if err != nil {
		c.problem(p, err)
		return nil
	}
	return c.dst.SetAttr(p, c.attr(&n.Stat, true))
}

// entry copies one entry whose source lower stat is st.
func (c *copier) entry(p string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		c.st.Dirs++
		if err := c.dst.Mkdir(p, 0o700); err != nil {
			return err
		}
		return c.dir(p)
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok && st.Nlink > 1 {
			c.st.Links++
			return c.dst.Link(first, p)
		}
		c.links[key] = p
		c.st.Files++
		if err := c.file(p); err != nil {
			var perr *srcError
			if !errors.As(err, &perr) {
				return err
			}
			c.problem(p, perr.err)
		}
	case unix.S_IFLNK:
		c.st.Symlinks++
		target, err := c.src.Readlink(p)
		if err != nil {
			c.problem(p, err)
			return nil
		}
		if err := c.dst.Symlink(target, p); err != nil {
			return err
		}
		return c.dst.SetAttr(p, c.attr(st, false))
	default:
		c.st.Others++
		if err := c.dst.Mknod(p, st.Mode&unix.S_IFMT|0o600, st.Rdev); err != nil {
			return err
		}
	}
	if err := c.xattrs(p); err != nil {
		return err
	}
	return c.dst.SetAttr(p, c.attr(st, true))
}

// srcError marks a failure to read the source: a problem, not the end of
// the copy.
type srcError struct{ err error }

func (e *srcError) Error() string { return e.err.Error() }

// file copies a regular file's content; all-zero blocks are left as holes.
func (c *copier) file(p string) error {
	in, err := c.src.OpenFile(p)
	if err != nil {
		return &srcError{err}
	}
	defer in.Close()
	out, err := c.dst.CreateFile(p, 0o600)
	if err != nil {
		return err
	}
	size := in.Size()
	buf := make([]byte, chunk)
	var readErr error
	for off := int64(0); off < size; off += chunk {
		n, err := in.ReadAt(buf[:min(chunk, size-off)], off)
		if err != nil && err != io.EOF {
			readErr = &srcError{fmt.Errorf("at plaintext offset %d: %w", off, err)}
			break
		}
		for b := 0; b < n; b += crypt.BlockSize {
			blk := buf[b:min(b+crypt.BlockSize, n)]
			if allZero(blk) {
				continue
			}
			if err := out.WriteAt(blk, off+int64(b)); err != nil {
				out.Close()
				return err
			}
		}
		c.st.Bytes += int64(n)
	}
	if readErr == nil {
		if err := out.Truncate(size); err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return readErr
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// xattrs copies the user attributes of p.
func (c *copier) xattrs(p string) error {
	xs, err := c.src.Xattrs(p)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	if err != nil {
		c.problem(p, fmt.Errorf("extended attributes: %w", err))
		return nil
	}
	for _, x := range xs {
		switch {
		case x.NameErr != nil:
			c.problem(p, fmt.Errorf("extended attribute %s: name does not decrypt: %w", x.Lower, x.NameErr))
		case x.ValueErr != nil:
			c.problem(p, fmt.Errorf("extended attribute %s: value does not decrypt: %w", x.Name, x.ValueErr))
		default:
			if err := c.dst.SetXattr(p, x.Name, x.Value); err != nil {
				return err
			}
			c.st.Xattrs++
		}
	}
	return nil
}

// Verify compares the plaintext of two trees and returns every difference:
// an entry missing or extra, of another type, mode, owner (when owners is
// set), size, content, symlink target, attributes or modification time,
// and names that share an inode in one tree but not the other.
func Verify(a, b *ciphertree.Tree, owners bool) ([]Problem, error) {
	v := &verifier{a: a, b: b, owners: owners, groupsA: map[[2]uint64][]string{}, groupsB: map[[2]uint64][]string{}}
	ma, err := a.RootMode()
	if err != nil {
		return nil, err
	}
	mb, err := b.RootMode()
	if err != nil {
		return nil, err
	}
	if ma != mb {
		v.diff("/", "root mode %o, copy %o", ma, mb)
	}
	if err := v.dir(""); err != nil {
		return v.problems, err
	}
	// Hard links: the same groups of names share an inode on both sides.
	norm := func(g map[[2]uint64][]string) []string {
		var out []string
		for _, names := range g {
			if len(names) > 1 {
				sort.Strings(names)
				out = append(out, fmt.Sprint(names))
			}
		}
		sort.Strings(out)
		return out
	}
	if ga, gb := norm(v.groupsA), norm(v.groupsB); !slices.Equal(ga, gb) {
		v.diff("/", "hard links %v, copy %v", ga, gb)
	}
	return v.problems, nil
}

type verifier struct {
	a, b             *ciphertree.Tree
	owners           bool
	problems         []Problem
	groupsA, groupsB map[[2]uint64][]string
}

func (v *verifier) diff(p, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: p, Err: fmt.Errorf(format, args...)})
}

func (v *verifier) dir(p string) error {
	ea, err := v.a.ReadDir(p)
	if err != nil {
		v.diff(p, "%v", err)
		return nil
	}
	eb, err := v.b.ReadDir(p)
	if err != nil {
		v.diff(p, "copy: %v", err)
		return nil
	}
	byName := map[string]ciphertree.DirEntry{}
	for _, e := range eb {
		if e.NameErr != nil {
			v.diff(path.Join(p, "<lower "+e.Lower+">"), "copy: name does not decrypt: %v", e.NameErr)
			continue
		}
		byName[e.Name] = e
	}
	for _, e := range ea {
		if e.NameErr != nil {
			continue // reported by Copy
		}
		q := path.Join(p, e.Name)
		f, ok := byName[e.Name]
		if !ok {
			v.diff(q, "missing in the copy")
			continue
		}
		delete(byName, e.Name)
		if err := v.entry(q, &e.Stat, &f.Stat); err != nil {
			return err
		}
	}
	for name := range byName {
		v.diff(path.Join(p, name), "only in the copy")
	}
	return nil
}

func (v *verifier) entry(p string, sa, sb *unix.Stat_t) error {
	ta, tb := sa.Mode&unix.S_IFMT, sb.Mode&unix.S_IFMT
	if ta != tb {
		v.diff(p, "type %o, copy %o", ta, tb)
		return nil
	}
	if ta != unix.S_IFLNK && sa.Mode&0o7777 != sb.Mode&0o7777 {
		v.diff(p, "mode %o, copy %o", sa.Mode&0o7777, sb.Mode&0o7777)
	}
	if v.owners && (sa.Uid != sb.Uid || sa.Gid != sb.Gid) {
		v.diff(p, "owner %d:%d, copy %d:%d", sa.Uid, sa.Gid, sb.Uid, sb.Gid)
	}
	if ta != unix.S_IFDIR && sa.Mtim != sb.Mtim {
		v.diff(p, "modification time %v, copy %v", sa.Mtim, sb.Mtim)
	}
	switch ta {
	case unix.S_IFDIR:
		if err := v.dir(p); err != nil {
			return err
		}
		// After its entries were compared (listing does not change it).
		if sa.Mtim != sb.Mtim {
			v.diff(p, "modification time %v, copy %v", sa.Mtim, sb.Mtim)
		}
	case unix.S_IFREG:
		v.groupsA[[2]uint64{sa.Dev, sa.Ino}] = append(v.groupsA[[2]uint64{sa.Dev, sa.Ino}], p)
		v.groupsB[[2]uint64{sb.Dev, sb.Ino}] = append(v.groupsB[[2]uint64{sb.Dev, sb.Ino}], p)
		if err := v.content(p); err != nil {
			v.diff(p, "%v", err)
		}
	case unix.S_IFLNK:
		la, erra := v.a.Readlink(p)
		lb, errb := v.b.Readlink(p)
		if erra != nil || errb != nil || la != lb {
			v.diff(p, "symlink target differs (%v, %v)", erra, errb)
		}
		return nil
	default:
		if sa.Rdev != sb.Rdev {
			v.diff(p, "device %d, copy %d", sa.Rdev, sb.Rdev)
		}
	}
	xa, erra := v.a.Xattrs(p)
	xb, errb := v.b.Xattrs(p)
	if erra == nil && errb == nil && !sameXattrs(xa, xb) {
		v.diff(p, "extended attributes differ")
	}
	return nil
}

func sameXattrs(a, b []ciphertree.Xattr) bool {
	flat := func(xs []ciphertree.Xattr) []string {
		var out []string
		for _, x := range xs {
			if x.NameErr == nil && x.ValueErr == nil {
				out = append(out, x.Name+"\x00"+string(x.Value))
			}
		}
		sort.Strings(out)
		return out
	}
	return slices.Equal(flat(a), flat(b))
}

// content compares two regular files' plaintext.
func (v *verifier) content(p string) error {
	fa, err := v.a.OpenFile(p)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := v.b.OpenFile(p)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer fb.Close()
	if fa.Size() != fb.Size() {
		return fmt.Errorf("size %d, copy %d", fa.Size(), fb.Size())
	}
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < fa.Size(); off += chunk {
		n := min(chunk, fa.Size()-off)
		if _, err := fa.ReadAt(ba[:n], off); err != nil && err != io.EOF {
			return err
		}
		if _, err := fb.ReadAt(bb[:n], off); err != nil && err != io.EOF {
			return fmt.Errorf("copy: %w", err)
		}
		if !bytes.Equal(ba[:n], bb[:n]) {
			return fmt.Errorf("content differs in the MiB at %d", off)
		}
	}
	return nil
}
