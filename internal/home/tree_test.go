package home

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The copy and the verification work on any pair of directories; here
// both are plain directories of the test (Migrate puts a cryptfs mount on
// the destination side).

type countReporter struct {
	mu                                 sync.Mutex
	files, bytes, skipFiles, skipBytes int64
}

func (r *countReporter) Add(f, b int64) {
	r.mu.Lock()
	r.files, r.bytes = r.files+f, r.bytes+b
	r.mu.Unlock()
}

func (r *countReporter) Skip(f, b int64) {
	r.mu.Lock()
	r.skipFiles, r.skipBytes = r.skipFiles+f, r.skipBytes+b
	r.mu.Unlock()
}

func (r *countReporter) Done() {}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sourceTree builds a tree with one of everything a home holds.
func sourceTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for _, d := range []string{"", "a", "a/b", "empty"} {
		must(t, os.Mkdir(filepath.Join(src, d), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(src, "a/b/small.txt"), []byte("hello\n"), 0o640))
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(t, os.WriteFile(filepath.Join(src, "a/big.bin"), big, 0o644))
	f, err := os.Create(filepath.Join(src, "sparse"))
	must(t, err)
	must(t, f.Truncate(64<<20))
	_, err = f.WriteAt([]byte("end"), 64<<20-3)
	must(t, err)
	f.Close()
	must(t, os.Symlink("a/b/small.txt", filepath.Join(src, "link")))
	must(t, os.Link(filepath.Join(src, "a/big.bin"), filepath.Join(src, "hard")))
	must(t, unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	if err := unix.Setxattr(filepath.Join(src, "a/b/small.txt"), "user.note", []byte("v1"), 0); err != nil {
		t.Skipf("skipping: user xattrs not supported on %s: %v", src, err)
	}
	must(t, os.Chmod(filepath.Join(src, "a/b"), 0o750))
	old := []unix.Timespec{{Sec: 1e9, Nsec: 123}, {Sec: 1e9 + 5, Nsec: 456}}
	for _, p := range []string{"a/b/small.txt", "a/b", "link"} {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, p), old, unix.AT_SYMLINK_NOFOLLOW))
	}
	return src
}

func TestCopyVerify(t *testing.T) {
	src := sourceTree(t)
	dst := filepath.Join(t.TempDir(), "dst")
	must(t, os.Mkdir(dst, 0o700))
	r := &countReporter{}
	c := newCopier(src, dst, false, r)
	must(t, c.run())
	diffs, err := verifyTree(src, dst, false, nil)
	must(t, err)
	if len(diffs) > 0 {
		t.Fatalf("a fresh copy differs: %v", diffs)
	}
	if r.files != 10 || r.skipFiles != 0 {
		t.Errorf("reported %d entries (%d skipped), want 10 (0)", r.files, r.skipFiles)
	}
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(dst, "sparse"), &st))
	if st.Blocks*512 > 1<<20 {
		t.Errorf("the sparse file takes %d bytes in the copy", st.Blocks*512)
	}
	var a, b unix.Stat_t
	must(t, unix.Stat(filepath.Join(dst, "a/big.bin"), &a))
	must(t, unix.Stat(filepath.Join(dst, "hard"), &b))
	if a.Ino != b.Ino {
		t.Errorf("the hard link is a copy")
	}

	// A second run (a resume) skips all that is complete, writes what
	// is not, and removes what the source does not have.
	must(t, os.Truncate(filepath.Join(dst, "a/big.bin"), 100))
	must(t, os.WriteFile(filepath.Join(dst, "stray"), nil, 0o644))
	must(t, os.Remove(filepath.Join(dst, "link")))
	r = &countReporter{}
	c = newCopier(src, dst, false, r)
	must(t, c.run())
	// Written again: big.bin, its hard link, the symlink, and the four
	// directories (always walked); skipped: the other three.
	if r.skipFiles != 3 || r.files != 7 {
		t.Errorf("the resumed copy wrote %d entries and skipped %d, want 7 and 3", r.files, r.skipFiles)
	}
	if _, err := os.Lstat(filepath.Join(dst, "stray")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy kept an entry the source does not have")
	}
	diffs, err = verifyTree(src, dst, false, nil)
	must(t, err)
	if len(diffs) > 0 {
		t.Fatalf("the resumed copy differs: %v", diffs)
	}
}

// TestVerifyFinds: every kind of difference is found, on the right path.
func TestVerifyFinds(t *testing.T) {
	src := sourceTree(t)
	for _, c := range []struct {
		name, path string
		spoil      func(dst string) error
		want       string
	}{
		{"mode", "a/b/small.txt", func(d string) error { return os.Chmod(filepath.Join(d, "a/b/small.txt"), 0o644) }, "mode"},
		{"content, same size and times", "a/big.bin", func(d string) error {
			p := filepath.Join(d, "a/big.bin")
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.WriteAt([]byte{0xff}, 2<<20)
			f.Close()
			return unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim})
		}, "content differs at byte 2097152"},
		{"modification time", "a/b", func(d string) error {
			return unix.UtimesNano(filepath.Join(d, "a/b"), []unix.Timespec{{Sec: 1e9, Nsec: 123}, {Sec: 5}})
		}, "modification time"},
		{"access time", "a/b/small.txt", func(d string) error {
			return unix.UtimesNano(filepath.Join(d, "a/b/small.txt"), []unix.Timespec{{Sec: 7}, {Sec: 1e9 + 5, Nsec: 456}})
		}, "access time"},
		{"xattr value", "a/b/small.txt", func(d string) error {
			return unix.Setxattr(filepath.Join(d, "a/b/small.txt"), "user.note", []byte("v2"), 0)
		}, "extended attribute user.note differs"},
		{"extra xattr", "a/big.bin", func(d string) error {
			return unix.Setxattr(filepath.Join(d, "a/big.bin"), "user.more", []byte("x"), 0)
		}, "extended attributes"},
		{"symlink target", "link", func(d string) error {
			os.Remove(filepath.Join(d, "link"))
			return os.Symlink("elsewhere", filepath.Join(d, "link"))
		}, "symlink target"},
		{"broken hard link", "hard", func(d string) error {
			p := filepath.Join(d, "hard")
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var st unix.Stat_t
			unix.Stat(p, &st)
			os.Remove(p)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return err
			}
			return unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim})
		}, "not a hard link"},
		{"extra entry", "empty/x", func(d string) error { return os.WriteFile(filepath.Join(d, "empty/x"), nil, 0o600) }, "not in the source"},
		{"missing entry", "fifo", func(d string) error { return os.Remove(filepath.Join(d, "fifo")) }, "missing"},
		{"type", "fifo", func(d string) error {
			os.Remove(filepath.Join(d, "fifo"))
			return os.WriteFile(filepath.Join(d, "fifo"), nil, 0o600)
		}, "type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst")
			must(t, os.Mkdir(dst, 0o700))
			must(t, newCopier(src, dst, false, nil).run())
			must(t, c.spoil(dst))
			diffs, err := verifyTree(src, dst, false, nil)
			must(t, err)
			found := false
			for _, d := range diffs {
				if d.Path == filepath.Join(dst, c.path) && strings.Contains(d.What, c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("verify found %v, want %q on %s", diffs, c.want, c.path)
			}
		})
	}
}

// TestScan: the scan counts entries and content bytes (hard links once),
// estimates sparse files by what they hold, and finds attributes cryptfs
// cannot store.
func TestScan(t *testing.T) {
	src := sourceTree(t)
	s, err := scanTree(src)
	must(t, err)
	if s.Entries != 10 || s.Dirs != 4 {
		t.Errorf("%d entries, %d directories; want 10, 4", s.Entries, s.Dirs)
	}
	if want := int64(6 + 3<<20 + 17 + 64<<20); s.Bytes != want {
		t.Errorf("%d bytes, want %d", s.Bytes, want)
	}
	if s.Estimate > 8<<20 {
		t.Errorf("estimate %d: the sparse file counted by its size", s.Estimate)
	}
	if s.UnsupportedCount != 0 {
		t.Errorf("unsupported xattrs in a tree without any: %v", s.Unsupported)
	}
	if os.Geteuid() == 0 {
		p := filepath.Join(src, "a/big.bin")
		if err := unix.Setxattr(p, "trusted.x", []byte("1"), 0); err == nil {
			s, err = scanTree(src)
			must(t, err)
			// Listed under both names of the hard-linked file.
			if s.UnsupportedCount != 2 || !strings.Contains(s.Unsupported[0], "trusted.x") {
				t.Errorf("trusted.x not found: %+v", s)
			}
		}
	}
}
