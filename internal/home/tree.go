package home

import (
	"errors"
	"fmt"
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
