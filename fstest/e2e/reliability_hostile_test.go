package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// TestReliabilityHostile feeds a live mount inputs at and beyond every limit: every byte
// value in names, the longest names and paths, trees deeper than PATH_MAX, long symlink
// targets, large and many xattrs, other xattr namespaces, huge offsets and sizes, names
// that look like cryptfs's own files, and thousands of entries in one directory. Each must
// succeed or fail with a clear errno (never EIO), the daemon must stay alive and the mount
// answer after each, and the cipher tree must be clean afterwards.
func TestReliabilityHostile(t *testing.T) {
	for _, tier := range []string{"off", "kernel-cache"} {
		t.Run(tier, func(t *testing.T) { testHostile(t, tier) })
	}
}

// hostileStep is one hostile input and what it may give.
type hostileStep struct {
	name string
	fn   func(t *testing.T, dir string) error
	ok   bool         // success is acceptable
	errs []unix.Errno // these errnos are acceptable
}

func testHostile(t *testing.T, tier string) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--fast-path=" + tier}})
	entries := sized(3000, 50000)
	steps := []hostileStep{
		{"every byte 1-255 as a name", everyByteNames, true, nil},
		{"one name with every byte", func(t *testing.T, dir string) error {
			var b []byte
			for c := 1; c < 256; c++ {
				if c != '/' {
					b = append(b, byte(c))
				}
			}
			return roundTrip(filepath.Join(dir, string(b)), []byte("all bytes"))
		}, true, nil},
		{"255-byte names for every kind", func(t *testing.T, dir string) error {
			n := strings.Repeat("n", 255)
			if err := roundTrip(filepath.Join(dir, n), []byte("x")); err != nil {
				return err
			}
			if err := os.Mkdir(filepath.Join(dir, n), 0o755); !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("mkdir over a 255-byte file name: %v, want EEXIST", err)
			}
			d := strings.Repeat("d", 255)
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
			return os.Symlink(d, filepath.Join(dir, strings.Repeat("s", 255)))
		}, true, nil},
		{"256-byte name", func(t *testing.T, dir string) error {
			return os.WriteFile(filepath.Join(dir, strings.Repeat("n", 256)), nil, 0o644)
		}, false, []unix.Errno{unix.ENAMETOOLONG}},
		{"256-byte directory name", func(t *testing.T, dir string) error {
			return os.Mkdir(filepath.Join(dir, strings.Repeat("d", 256)), 0o755)
		}, false, []unix.Errno{unix.ENAMETOOLONG}},
		{"names like cryptfs's own files", func(t *testing.T, dir string) error {
			for _, n := range []string{crypt.DirIVFile, "cryptfs.conf", "cryptfs.conf.bak", ".cryptfs.longname.abc",
				"longname.abc", ".cryptfs.tmp.x", "-", "_", "AAAA", "..."} {
				if err := roundTrip(filepath.Join(dir, n), []byte(n)); err != nil {
					return fmt.Errorf("%q: %w", n, err)
				}
			}
			names, err := readNames(dir)
			if err != nil {
				return err
			}
			if len(names) != 10 {
				return fmt.Errorf("listed %d of 10 lookalike names: %q", len(names), names)
			}
			return nil
		}, true, nil},
		{"path of PATH_MAX-1 bytes", pathMaxTree, true, nil},
		{"path of PATH_MAX bytes", func(t *testing.T, dir string) error {
			_, err := os.Stat(filepath.Join(dir, strings.Repeat("p/", 2048)))
			return err
		}, false, []unix.Errno{unix.ENAMETOOLONG}},
		{"tree deeper than PATH_MAX through descriptors", deepTree, true, nil},
		{"symlink target of the longest length", func(t *testing.T, dir string) error {
			target := strings.Repeat("t", crypt.MaxSymlinkTarget)
			if err := os.Symlink(target, filepath.Join(dir, "l")); err != nil {
				return err
			}
			got, err := os.Readlink(filepath.Join(dir, "l"))
			if err == nil && got != target {
				return fmt.Errorf("readlink: %d bytes back, want %d", len(got), len(target))
			}
			return err
		}, true, nil},
		{"symlink target one byte too long", func(t *testing.T, dir string) error {
			return os.Symlink(strings.Repeat("t", crypt.MaxSymlinkTarget+1), filepath.Join(dir, "l"))
		}, false, []unix.Errno{unix.ENAMETOOLONG}},
		{"symlink target of PATH_MAX bytes", func(t *testing.T, dir string) error {
			return os.Symlink(strings.Repeat("t", 4096), filepath.Join(dir, "l"))
		}, false, []unix.Errno{unix.ENAMETOOLONG}},
		{"symlink target of 1 MiB", func(t *testing.T, dir string) error {
			return os.Symlink(strings.Repeat("t", 1<<20), filepath.Join(dir, "l"))
		}, false, []unix.Errno{unix.ENAMETOOLONG}},
		{"symlink loop", func(t *testing.T, dir string) error {
			if err := os.Symlink("b", filepath.Join(dir, "a")); err != nil {
				return err
			}
			if err := os.Symlink("a", filepath.Join(dir, "b")); err != nil {
				return err
			}
			_, err := os.ReadFile(filepath.Join(dir, "a"))
			return err
		}, false, []unix.Errno{unix.ELOOP}},
		{"xattr value of 3500 bytes", func(t *testing.T, dir string) error {
			return xattrRoundTrip(dir, "user.big", 3500)
		}, true, nil},
		{"xattr value of 64 KiB", func(t *testing.T, dir string) error {
			return xattrRoundTrip(dir, "user.big", 65536)
		}, true, []unix.Errno{unix.ENOSPC, unix.E2BIG}},
		{"xattr value over 64 KiB", func(t *testing.T, dir string) error {
			return xattrRoundTrip(dir, "user.big", 65537)
		}, false, []unix.Errno{unix.E2BIG}},
		{"xattr name of the longest length", func(t *testing.T, dir string) error {
			return xattrRoundTrip(dir, "user."+strings.Repeat("x", crypt.MaxXattrName-5), 10)
		}, true, nil},
		{"xattr name one byte too long", func(t *testing.T, dir string) error {
			return xattrRoundTrip(dir, "user."+strings.Repeat("x", crypt.MaxXattrName-4), 10)
		}, false, []unix.Errno{unix.ERANGE}},
		{"xattr name of 256 bytes", func(t *testing.T, dir string) error {
			return xattrRoundTrip(dir, "user."+strings.Repeat("x", 251), 10)
		}, false, []unix.Errno{unix.ERANGE}},
		{"xattrs until the file is full", manyXattrs, true, nil},
		{"xattrs of other namespaces", func(t *testing.T, dir string) error {
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				return err
			}
			for _, name := range []string{"security.evil", "trusted.evil", "system.posix_acl_access", "system.evil", "nonamespace"} {
				err := unix.Setxattr(p, name, []byte("garbage"), 0)
				if errors.Is(err, unix.EIO) {
					return fmt.Errorf("setxattr %s: %w", name, err)
				}
				_, err = unix.Getxattr(p, name, make([]byte, 64))
				if errors.Is(err, unix.EIO) {
					return fmt.Errorf("getxattr %s: %w", name, err)
				}
			}
			return nil
		}, true, nil},
		{"write at 1 TiB", func(t *testing.T, dir string) error {
			return pwriteFile(filepath.Join(dir, "f"), []byte("far"), 1<<40)
		}, true, []unix.Errno{unix.EFBIG}},
		{"write at the largest offset", func(t *testing.T, dir string) error {
			return pwriteFile(filepath.Join(dir, "f"), []byte("far"), 1<<63-2)
		}, false, []unix.Errno{unix.EFBIG, unix.EINVAL}},
		{"truncate to 2^62 bytes", func(t *testing.T, dir string) error {
			return checkedTruncate(filepath.Join(dir, "f"), 1<<62)
		}, true, []unix.Errno{unix.EFBIG, unix.EINVAL}},
		{"truncate to the largest size", func(t *testing.T, dir string) error {
			return checkedTruncate(filepath.Join(dir, "f"), 1<<63-1)
		}, true, []unix.Errno{unix.EFBIG, unix.EINVAL}},
		{"fallocate far away", func(t *testing.T, dir string) error {
			f, err := os.Create(filepath.Join(dir, "f"))
			if err != nil {
				return err
			}
			defer f.Close()
			return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 1<<50, 1<<20)
		}, true, []unix.Errno{unix.EFBIG, unix.ENOSPC, unix.EINVAL}},
		{"O_TMPFILE", func(t *testing.T, dir string) error {
			fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR, 0o600)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}, true, []unix.Errno{unix.EOPNOTSUPP}},
		{"a thousand hard links", func(t *testing.T, dir string) error {
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, []byte("linked"), 0o644); err != nil {
				return err
			}
			for i := 0; i < 1000; i++ {
				if err := os.Link(p, filepath.Join(dir, fmt.Sprintf("link-%d-%s", i, strings.Repeat("l", 200)))); err != nil {
					return err
				}
			}
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil {
				return err
			}
			if st.Nlink != 1001 {
				return fmt.Errorf("link count %d, want 1001", st.Nlink)
			}
			return nil
		}, true, []unix.Errno{unix.EMLINK}},
		{fmt.Sprintf("%d entries in one directory", entries), func(t *testing.T, dir string) error {
			return manyEntries(dir, entries)
		}, true, nil},
	}
	for i, s := range steps {
		dir := filepath.Join(m.Dir, fmt.Sprintf("step%02d", i))
		mustDo(t, os.Mkdir(dir, 0o755))
		err := s.fn(t, dir)
		t.Logf("%s: %s", s.name, errnoName(err))
		errnoIn(t, err, s.ok, s.name, s.errs...)
		alive(t, m, s.name)
		if err := os.RemoveAll(dir); err != nil && !errors.Is(err, unix.ENAMETOOLONG) {
			t.Errorf("removing what %q left: %v", s.name, err)
		}
	}
	cryptfstest.Unmount(t, m)
	if strings.Contains(m.Log(), "panic") {
		t.Errorf("the daemon panicked:\n%s", tail(m.Log(), 40))
	}
	fsck(t, m.Cipher, 0)
}

// roundTrip writes data to path, reads it back and checks the name is listed.
func roundTrip(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("%q reads back %q", filepath.Base(path), got)
	}
	names, err := readNames(filepath.Dir(path))
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == filepath.Base(path) {
			return nil
		}
	}
	return fmt.Errorf("%q is not listed", filepath.Base(path))
}

// everyByteNames creates, lists and removes a file named by each byte 1..255 but '/'
// (and '.', which names the directory itself), alone and inside a longer name.
func everyByteNames(t *testing.T, dir string) error {
	want := map[string]bool{}
	for c := 1; c < 256; c++ {
		if c == '/' {
			continue
		}
		names := []string{"x" + string([]byte{byte(c)}) + "y"}
		if c != '.' {
			names = append(names, string([]byte{byte(c)}))
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
				return fmt.Errorf("create %q: %w", n, err)
			}
			want[n] = true
		}
	}
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	if len(names) != len(want) {
		return fmt.Errorf("%d names listed, want %d", len(names), len(want))
	}
	for _, n := range names {
		if !want[n] {
			return fmt.Errorf("unexpected name %q listed", n)
		}
		got, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("read %q: %w", n, err)
		}
		if string(got) != n {
			return fmt.Errorf("%q holds %q", n, got)
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// pathMaxTree builds directories of 255-byte names down to a file whose path, relative
// to dir, is exactly PATH_MAX-1 bytes, and uses it by that path.
func pathMaxTree(t *testing.T, dir string) error {
	comp := strings.Repeat("c", 255)
	rel := ""
	for len(rel)+256+255 <= 4095 {
		rel += comp + "/"
		if err := os.Mkdir(filepath.Join(dir, rel), 0o755); err != nil {
			return err
		}
	}
	rel += strings.Repeat("f", 4095-len(rel))
	if len(rel) != 4095 {
		return fmt.Errorf("test bug: path of %d bytes", len(rel))
	}
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	fd, err := unix.Openat(d, rel, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create the file at PATH_MAX-1: %w", err)
	}
	_, err = unix.Write(fd, []byte("deep"))
	unix.Close(fd)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(d, rel, &st, 0); err != nil {
		return err
	}
	if st.Size != 4 {
		return fmt.Errorf("the file at PATH_MAX-1 has size %d", st.Size)
	}
	return unix.Unlinkat(d, rel, 0)
}

// deepTree builds 40 levels of 255-byte directory names (over 10000 bytes of path) with
// mkdirat and openat, puts a file at the bottom, reads it, and removes everything.
func deepTree(t *testing.T, dir string) error {
	const depth = 40
	comp := strings.Repeat("z", 255)
	fds := []int{}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	fds = append(fds, d)
	for i := 0; i < depth; i++ {
		if err := unix.Mkdirat(d, comp, 0o755); err != nil {
			return fmt.Errorf("mkdirat at depth %d: %w", i, err)
		}
		if d, err = unix.Openat(d, comp, unix.O_RDONLY|unix.O_DIRECTORY, 0); err != nil {
			return fmt.Errorf("openat at depth %d: %w", i, err)
		}
		fds = append(fds, d)
	}
	fd, err := unix.Openat(d, "bottom", unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		return err
	}
	unix.Write(fd, []byte("bottom"))
	buf := make([]byte, 16)
	n, err := unix.Pread(fd, buf, 0)
	unix.Close(fd)
	if err != nil || string(buf[:n]) != "bottom" {
		return fmt.Errorf("the file at the bottom reads %q, %v", buf[:n], err)
	}
	if err := unix.Unlinkat(d, "bottom", 0); err != nil {
		return err
	}
	for i := len(fds) - 2; i >= 0; i-- {
		if err := unix.Unlinkat(fds[i], comp, unix.AT_REMOVEDIR); err != nil {
			return fmt.Errorf("rmdir at depth %d: %w", i, err)
		}
	}
	return nil
}

// xattrRoundTrip sets a user xattr of the given size on a new file and reads it back.
func xattrRoundTrip(dir, name string, size int) error {
	p := filepath.Join(dir, "x")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return err
	}
	v := randBytes(uint64(size), size)
	if err := unix.Setxattr(p, name, v, 0); err != nil {
		return err
	}
	got := make([]byte, size+1)
	n, err := unix.Getxattr(p, name, got)
	if err != nil {
		return err
	}
	if !bytes.Equal(got[:n], v) {
		return fmt.Errorf("xattr %s reads back %d different bytes", name, n)
	}
	return nil
}

// manyXattrs adds 200-byte xattrs to one file until the lower filesystem has no room (a
// clear ENOSPC or E2BIG), then checks every one that was set.
func manyXattrs(t *testing.T, dir string) error {
	p := filepath.Join(dir, "x")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return err
	}
	n := 0
	for ; n < 10000; n++ {
		err := unix.Setxattr(p, fmt.Sprintf("user.n%04d", n), randBytes(uint64(n), 200), 0)
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.E2BIG) {
			break
		}
		if err != nil {
			return fmt.Errorf("setxattr %d: %w", n, err)
		}
	}
	if n < 5 {
		return fmt.Errorf("only %d xattrs fit", n)
	}
	for i := 0; i < n; i++ {
		v := make([]byte, 300)
		k, err := unix.Getxattr(p, fmt.Sprintf("user.n%04d", i), v)
		if err != nil {
			return fmt.Errorf("getxattr %d: %w", i, err)
		}
		if !bytes.Equal(v[:k], randBytes(uint64(i), 200)) {
			return fmt.Errorf("xattr %d reads back wrong", i)
		}
	}
	sz, err := unix.Listxattr(p, nil)
	if err != nil {
		return err
	}
	buf := make([]byte, sz)
	sz, err = unix.Listxattr(p, buf)
	if err != nil {
		return err
	}
	if got := strings.Count(string(buf[:sz]), "\x00"); got != n {
		return fmt.Errorf("listxattr shows %d of %d", got, n)
	}
	return nil
}

// pwriteFile writes data at off to a new file.
func pwriteFile(path string, data []byte, off int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = unix.Pwrite(int(f.Fd()), data, off)
	return err
}

// checkedTruncate truncates a new file to size; if that succeeds the file must report
// exactly that size and read as zeros at its start and end.
func checkedTruncate(path string, size int64) error {
	if err := os.WriteFile(path, []byte("head"), 0o644); err != nil {
		return err
	}
	if err := os.Truncate(path, size); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	if st.Size != size {
		return fmt.Errorf("size %d after truncating to %d", st.Size, size)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 4)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "head" {
		return fmt.Errorf("the start reads %q, %v", b, err)
	}
	if _, err := f.ReadAt(b, size-4); err != nil || !bytes.Equal(b, make([]byte, 4)) {
		return fmt.Errorf("the end reads %q, %v", b, err)
	}
	return nil
}

// manyEntries creates n files in one directory, lists them, stats them and removes them.
func manyEntries(dir string, n int) error {
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("entry-%06d-%s", i, strings.Repeat("e", i%200))), nil, 0o644); err != nil {
			return fmt.Errorf("create entry %d: %w", i, err)
		}
	}
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	if len(names) != n {
		return fmt.Errorf("%d entries listed, want %d", len(names), n)
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
			return fmt.Errorf("stat %s: %w", name, err)
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}
