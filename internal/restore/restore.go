package restore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Options say how to restore.
type Options struct {
	// Force restores over an existing destination: files there are
	// replaced, directories merged into.
	Force bool
	// KeepGoing restores everything that authenticates and reports the
	// rest at the end (an *Error), instead of stopping at the first
	// failure.
	KeepGoing bool
	// Owners restores owner and group (needs root).
	Owners bool
	// Progress, if set, is called after every file and every chunk of a
	// large file with the figures so far.
	Progress func(Progress)
	// Warn, if set, is told about entries that are skipped without being
	// failures: names that do not decrypt (hidden in the mount too),
	// conflict copies hidden by another entry of the same name, sockets.
	Warn func(path, why string)
}

// Progress is how far a restore got.
type Progress struct {
	Files int64 // entries restored (not counting directories)
	Bytes int64 // plaintext bytes of regular files restored (holes included)
}

// Failure is a file that was not restored.
type Failure struct {
	Path string // plaintext path in the tree
	Err  error
}

// Error is returned by a restore with KeepGoing that left files out.
type Error struct {
	Failures []Failure
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d entries not restored:", len(e.Failures))
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\n  %v", f.Err)
	}
	return b.String()
}

// Unwrap returns the failures' errors, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	for _, f := range e.Failures {
		errs = append(errs, f.Err)
	}
	return errs
}

// ErrExists is wrapped by the error of a restore whose destination exists
// while Options.Force is not set.
var ErrExists = errors.New("the destination exists")

// Restore restores plaintext path plain of tree t (a file, a symlink, a
// directory with everything under it; "" or "/" is the whole tree) as
// dest.
func Restore(t *ciphertree.Tree, plain, dest string, o Options) error {
	n, err := t.Lstat(plain)
	if err != nil {
		return err
	}
	dest = filepath.Clean(dest)
	var dst unix.Stat_t
	if err := unix.Stat(filepath.Dir(dest), &dst); err != nil || dst.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err == nil {
			err = unix.ENOTDIR
		}
		return fmt.Errorf("%s, the directory to restore into: %w", filepath.Dir(dest), err)
	}
	var st unix.Stat_t
	exists := unix.Lstat(dest, &st) == nil
	if exists && !o.Force {
		return fmt.Errorf("%s: %w (use --force to overwrite)", dest, ErrExists)
	}
	r := &restorer{t: t, o: o, links: map[[2]uint64]string{}}
	var parent *ciphertree.Dir // nil for the root, which has none
	if n.Path != "" {
		if parent, n, err = t.OpenParent(n.Path); err != nil {
			return err
		}
		defer parent.Close()
	}
	var old *unix.Stat_t
	if exists {
		old = &st
	}
	err = r.top(parent, n, dest, old)
	if err != nil {
		return err
	}
	if len(r.failures) > 0 {
		return &Error{Failures: r.failures}
	}
	return nil
}

type restorer struct {
	t        *ciphertree.Tree
	o        Options
	links    map[[2]uint64]string // lower file -> where it was restored
	prog     Progress
	failures []Failure
}

// top restores n, an entry of parent (nil: n is the root), as dest. A new
// destination is built under a temporary name next to it and renamed into
// place once complete and durable.
func (r *restorer) top(parent *ciphertree.Dir, n ciphertree.Node, dest string, old *unix.Stat_t) error {
	if old != nil {
		return r.node(parent, n, dest, old)
	}
	tmp := tempName(filepath.Dir(dest))
	err := r.node(parent, n, tmp, nil)
	if err == nil && len(r.failures) > 0 {
		if _, serr := os.Lstat(tmp); serr != nil {
			return nil // the top itself failed: nothing to put in place
		}
	}
	if err == nil {
		err = syncfs(filepath.Dir(dest))
	}
	if err == nil {
		err = renameNoReplace(tmp, dest)
	}
	if err == nil {
		err = syncDir(filepath.Dir(dest))
	}
	if err != nil {
		removeAll(tmp)
		return err
	}
	return nil
}

// removeAll removes the temporary tree of a failed restore (ours: this
// restore created it), making its directories writable first: restored
// directories may have read-only modes.
func removeAll(tmp string) {
	filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(tmp)
}

// tempName returns a new temporary name in dir.
func tempName(dir string) string {
	return filepath.Join(dir, fmt.Sprintf(".cryptfs-restore.%016x", rand.Uint64()))
}

// fail records a failure of path, or returns it when the restore stops at
// the first.
func (r *restorer) fail(path string, err error) error {
	if !r.o.KeepGoing {
		return err
	}
	r.failures = append(r.failures, Failure{Path: path, Err: err})
	return nil
}

func (r *restorer) warn(path, why string) {
	if r.o.Warn != nil {
		r.o.Warn(path, why)
	}
}

func (r *restorer) progress(files, bytes int64) {
	r.prog.Files += files
	r.prog.Bytes += bytes
	if r.o.Progress != nil {
		r.o.Progress(r.prog)
	}
}

// node restores n, an entry of parent (nil: n is the root), as dst. old
// is the stat of what is at dst already (Force), nil when dst is new.
func (r *restorer) node(parent *ciphertree.Dir, n ciphertree.Node, dst string, old *unix.Stat_t) error {
	var err error
	switch n.Stat.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return r.dir(parent, n, dst, old)
	case unix.S_IFREG:
		err = r.file(parent, n, dst, old)
	case unix.S_IFLNK:
		err = r.symlink(parent, n, dst, old)
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		err = r.special(n, dst, old)
	default:
		r.warn(n.Path, "a socket: not restored")
		return nil
	}
	if err != nil {
		return r.fail(n.Path, err)
	}
	return nil
}

// replace moves the complete temporary entry tmp to dst: into the new
// tree (old == nil: dst is inside the restore's own temporary directory)
// or over what is at dst.
func replace(tmp, dst string, old *unix.Stat_t) error {
	if old != nil && old.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%s is a directory: not replaced by a file", dst)
	}
	return os.Rename(tmp, dst)
}

// tempOrDst returns where to create the entry for dst: dst itself in a
// new tree, else a temporary name beside it.
func tempOrDst(dst string, old *unix.Stat_t) string {
	if old == nil {
		return dst
	}
	return tempName(filepath.Dir(dst))
}

func (r *restorer) dir(parent *ciphertree.Dir, n ciphertree.Node, dst string, old *unix.Stat_t) error {
	var d *ciphertree.Dir
	var err error
	if parent == nil {
		d, err = r.t.OpenDir(n.Path)
	} else {
		d, err = parent.OpenDir(n)
	}
	if err != nil {
		return r.fail(n.Path, err)
	}
	defer d.Close()
	l, err := d.List()
	if err != nil {
		return r.fail(n.Path, err)
	}
	switch {
	case old == nil:
		err = unix.Mkdir(dst, 0o700)
	case old.Mode&unix.S_IFMT != unix.S_IFDIR:
		err = fmt.Errorf("%s exists and is not a directory: not replaced by one", dst)
	default:
		// Merged into: writable for us while we fill it.
		err = unix.Chmod(dst, 0o700|old.Mode&0o7777)
	}
	if err != nil {
		return r.fail(n.Path, fmt.Errorf("%s: %w", n.Path, err))
	}
	for _, b := range l.Bad {
		r.warn(filepath.Join(n.Path, b.Lower), "a lower entry whose name does not decrypt: not restored (the mount hides it too; cryptfs fsck reports it)")
	}
	for _, e := range l.Shadowed {
		r.warn(filepath.Join(n.Path, e.Name), "a conflict copy hidden by another entry of this name: not restored")
	}
	for _, e := range l.Entries {
		c, err := d.Lstat(e)
		if err != nil {
			if err := r.fail(c.Path, err); err != nil {
				return err
			}
			continue
		}
		cdst := filepath.Join(dst, e.Name)
		var cst unix.Stat_t
		var cold *unix.Stat_t
		if old != nil && unix.Lstat(cdst, &cst) == nil {
			cold = &cst
		}
		if err := r.node(d, c, cdst, cold); err != nil {
			return err
		}
	}
	xs, err := d.Xattrs(d.Node)
	if err == nil {
		err = setXattrs(n.Path, dst, xs, func(name string, v []byte) error { return unix.Setxattr(dst, name, v, 0) })
	}
	if err == nil {
		err = r.attrs(n, dst, -1)
	}
	if err != nil {
		return r.fail(n.Path, err)
	}
	return nil
}

func (r *restorer) file(parent *ciphertree.Dir, n ciphertree.Node, dst string, old *unix.Stat_t) error {
	key := [2]uint64{n.Stat.Dev, n.Stat.Ino}
	if first, ok := r.links[key]; ok {
		tmp := tempOrDst(dst, old)
		if err := os.Link(first, tmp); err != nil {
			return fmt.Errorf("%s: hard link to %s: %w", n.Path, first, err)
		}
		if tmp != dst {
			if err := replace(tmp, dst, old); err != nil {
				os.Remove(tmp)
				return err
			}
		}
		r.progress(1, 0)
		return nil
	}
	f, err := parent.OpenFile(n)
	if err != nil {
		return err
	}
	defer f.Close()
	xs, err := parent.Xattrs(n)
	if err != nil {
		return err
	}
	tmp := tempOrDst(dst, old)
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	fd := int(out.Fd())
	err = f.CopyTo(fd, func(b int64) { r.progress(0, b) })
	if err != nil {
		err = fmt.Errorf("%s: %w", n.Path, err)
	}
	if err == nil {
		err = setXattrs(n.Path, dst, xs, func(name string, v []byte) error { return unix.Fsetxattr(fd, name, v, 0) })
	}
	if err == nil {
		err = r.attrs(n, tmp, fd)
	}
	if err == nil && old != nil {
		err = out.Sync() // replacing a file: its new data first
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && tmp != dst {
		err = replace(tmp, dst, old)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if n.Stat.Nlink > 1 {
		r.links[key] = dst
	}
	r.progress(1, 0)
	return nil
}

func (r *restorer) symlink(parent *ciphertree.Dir, n ciphertree.Node, dst string, old *unix.Stat_t) error {
	target, err := parent.Readlink(n)
	if err != nil {
		return err
	}
	tmp := tempOrDst(dst, old)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	err = r.attrs(n, tmp, -1)
	if err == nil && tmp != dst {
		err = replace(tmp, dst, old)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	r.progress(1, 0)
	return nil
}

func (r *restorer) special(n ciphertree.Node, dst string, old *unix.Stat_t) error {
	tmp := tempOrDst(dst, old)
	if err := unix.Mknod(tmp, n.Stat.Mode&(unix.S_IFMT|0o777), int(n.Stat.Rdev)); err != nil {
		return fmt.Errorf("%s: mknod: %w", n.Path, err)
	}
	err := r.attrs(n, tmp, -1)
	if err == nil && tmp != dst {
		err = replace(tmp, dst, old)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	r.progress(1, 0)
	return nil
}

// Totals counts the entries (not directories) and plaintext bytes that a
// restore of plain would restore, for a progress display: hard links
// once, names that do not decrypt not at all.
func Totals(t *ciphertree.Tree, plain string) (Progress, error) {
	n, err := t.Lstat(plain)
	if err != nil {
		return Progress{}, err
	}
	var parent *ciphertree.Dir
	if n.Path != "" {
		if parent, n, err = t.OpenParent(n.Path); err != nil {
			return Progress{}, err
		}
		defer parent.Close()
	}
	var p Progress
	seen := map[[2]uint64]bool{}
	var walk func(parent *ciphertree.Dir, n ciphertree.Node) error
	walk = func(parent *ciphertree.Dir, n ciphertree.Node) error {
		if n.Stat.Mode&unix.S_IFMT != unix.S_IFDIR {
			p.Files++
			key := [2]uint64{n.Stat.Dev, n.Stat.Ino}
			if !seen[key] {
				seen[key] = true
				size, _ := n.PlainSize()
				p.Bytes += size
			}
			return nil
		}
		var d *ciphertree.Dir
		if parent == nil {
			d, err = t.OpenDir(n.Path)
		} else {
			d, err = parent.OpenDir(n)
		}
		if err != nil {
			return err
		}
		defer d.Close()
		l, err := d.List()
		if err != nil {
			return err
		}
		for _, e := range l.Entries {
			c, err := d.Lstat(e)
			if err != nil {
				continue
			}
			if err := walk(d, c); err != nil {
				return err
			}
		}
		return nil
	}
	return p, walk(parent, n)
}
