package fstest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// retry calls f again while it fails with EINTR, as package os does: a FUSE request
// interrupted by the Go runtime's preemption signal may surface as EINTR.
func retry[T any](f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}

// retry0 is retry for calls that return only an error.
func retry0(f func() error) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// openFile opens path with open(2) flags and mode (special bits included, unlike
// os.OpenFile) and wraps the descriptor in an *os.File so that closing twice is harmless.
func openFile(path string, flags int, mode uint32) (*os.File, error) {
	fd, err := retry(func() (int, error) { return unix.Open(path, flags|unix.O_CLOEXEC, mode) })
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// mustOpen is openFile that fails the check on error and closes the file when it ends.
func mustOpen(t *testing.T, path string, flags int, mode uint32) *os.File {
	t.Helper()
	f, err := openFile(path, flags, mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fd returns the descriptor of f for raw system calls.
func fd(f *os.File) int { return int(f.Fd()) }

// must fails the check if err is not nil.
func must(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// wantErrno reports an error unless err carries the errno want.
func wantErrno(t *testing.T, err error, want unix.Errno, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	switch {
	case err == nil:
		t.Errorf("%s: succeeded, want %s (%v)", what, unix.ErrnoName(want), want)
	case !errors.Is(err, want):
		t.Errorf("%s: got %v, want %s (%v)", what, err, unix.ErrnoName(want), want)
	}
}

// errnoName names the errno in err for messages ("ok" for nil).
func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

// randBytes returns n deterministic pseudo-random bytes for seed.
func randBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	// ChaCha8.Read never fails.
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// writeFile creates (or truncates) path with mode 0644 and the content data.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	must(t, os.WriteFile(path, data, 0o644), "write %s", path)
}

// readFile returns the content of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err, "read %s", path)
	return b
}

// pwrite writes all of b at off through f.
func pwrite(t *testing.T, f *os.File, b []byte, off int64) {
	t.Helper()
	_, err := f.WriteAt(b, off)
	must(t, err, "pwrite %d bytes at %d to %s", len(b), off, f.Name())
}

// pread reads up to n bytes at off with one pread(2) and returns what it got.
func pread(t *testing.T, f *os.File, n int, off int64) []byte {
	t.Helper()
	b := make([]byte, n)
	got, err := retry(func() (int, error) { return unix.Pread(fd(f), b, off) })
	must(t, err, "pread %d bytes at %d from %s", n, off, f.Name())
	return b[:got]
}

// readAt reads exactly n bytes at off, looping over short reads, and fails the check if the
// file ends earlier.
func readAt(t *testing.T, f *os.File, n int, off int64) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := f.ReadAt(b, off)
	must(t, err, "read %d bytes at %d from %s", n, off, f.Name())
	return b
}

// lstat returns the lstat(2) of path.
func lstat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, retry0(func() error { return unix.Lstat(path, &st) }), "lstat %s", path)
	return st
}

// fstat returns the fstat(2) of f.
func fstat(t *testing.T, f *os.File) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, retry0(func() error { return unix.Fstat(fd(f), &st) }), "fstat %s", f.Name())
	return st
}

// exists reports whether path can be lstat'ed; errors other than ENOENT fail the check.
func exists(t *testing.T, path string) bool {
	t.Helper()
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return false
	}
	must(t, err, "lstat %s", path)
	return true
}

// fileType returns the S_IFMT bits of a mode.
func fileType(mode uint32) uint32 { return mode & unix.S_IFMT }

// diffBytes describes the first difference of got from want, or returns "".
func diffBytes(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	if len(got) != len(want) {
		n := min(len(got), len(want))
		if i := firstDiff(got[:n], want[:n]); i >= 0 {
			return fmt.Sprintf("length %d, want %d; first difference at byte %d: %#02x, want %#02x",
				len(got), len(want), i, got[i], want[i])
		}
		return fmt.Sprintf("length %d, want %d (common prefix equal)", len(got), len(want))
	}
	i := firstDiff(got, want)
	return fmt.Sprintf("first difference at byte %d: %#02x, want %#02x", i, got[i], want[i])
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// checkBytes reports an error if got differs from want.
func checkBytes(t *testing.T, got, want []byte, format string, args ...any) {
	t.Helper()
	if d := diffBytes(got, want); d != "" {
		t.Errorf("%s: %s", fmt.Sprintf(format, args...), d)
	}
}

// dirent is one entry returned by getdents64(2).
type dirent struct {
	ino  uint64
	off  int64 // position after this entry, for lseek
	typ  uint8 // DT_*
	name string
}

// readDirents reads the directory open as f from its current position to the end with
// getdents64(2) calls of bufSize bytes, including "." and "..".
func readDirents(f *os.File, bufSize int) ([]dirent, error) {
	buf := make([]byte, bufSize)
	var out []dirent
	for {
		n, err := retry(func() (int, error) { return unix.Getdents(fd(f), buf) })
		if err != nil {
			return out, fmt.Errorf("getdents %s: %w", f.Name(), err)
		}
		if n == 0 {
			return out, nil
		}
		ents, err := parseDirents(buf[:n])
		if err != nil {
			return out, fmt.Errorf("getdents %s: %w", f.Name(), err)
		}
		out = append(out, ents...)
	}
}

// parseDirents decodes a buffer of struct linux_dirent64.
func parseDirents(b []byte) ([]dirent, error) {
	var out []dirent
	for len(b) > 0 {
		if len(b) < 19 {
			return out, fmt.Errorf("truncated dirent (%d bytes left)", len(b))
		}
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < 19 || reclen > len(b) {
			return out, fmt.Errorf("bad dirent record length %d", reclen)
		}
		name := b[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, dirent{
			ino:  binary.NativeEndian.Uint64(b[0:8]),
			off:  int64(binary.NativeEndian.Uint64(b[8:16])),
			typ:  b[18],
			name: string(name),
		})
		b = b[reclen:]
	}
	return out, nil
}

// listDir returns the names in dir, without "." and "..", sorted, failing the check on
// error.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	f := mustOpen(t, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer f.Close()
	ents, err := readDirents(f, 8192)
	must(t, err, "list %s", dir)
	return sortedNames(ents)
}

// sortedNames returns the names of ents without "." and "..", sorted.
func sortedNames(ents []dirent) []string {
	var names []string
	for _, e := range ents {
		if e.name != "." && e.name != ".." {
			names = append(names, e.name)
		}
	}
	slices.Sort(names)
	return names
}

// checkNames reports an error unless got and want hold the same names exactly once each.
func checkNames(t *testing.T, got, want []string, what string) {
	t.Helper()
	count := make(map[string]int)
	for _, n := range got {
		count[n]++
	}
	var missing, extra, dup []string
	for _, n := range want {
		if count[n] == 0 {
			missing = append(missing, strconv.Quote(n))
		}
	}
	wantSet := make(map[string]bool, len(want))
	for _, n := range want {
		wantSet[n] = true
	}
	for n, c := range count {
		if !wantSet[n] {
			extra = append(extra, strconv.Quote(n))
		}
		if c > 1 {
			dup = append(dup, fmt.Sprintf("%q x%d", n, c))
		}
	}
	if len(missing)+len(extra)+len(dup) == 0 {
		return
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(dup)
	t.Errorf("%s: %d names listed, want %d; missing %s; unexpected %s; duplicated %s",
		what, len(got), len(want), abbrev(missing), abbrev(extra), abbrev(dup))
}

// abbrev joins a list of names for a message, eliding long lists.
func abbrev(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	if len(s) > 10 {
		return strings.Join(s[:10], ", ") + fmt.Sprintf(" and %d more", len(s)-10)
	}
	return strings.Join(s, ", ")
}

// processUmask returns the umask of this process from /proc/self/status, which (unlike
// umask(2)) reads it without changing it.
func processUmask(t *testing.T) uint32 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	must(t, err, "read umask")
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			must(t, err, "parse umask %q", v)
			return uint32(m)
		}
	}
	t.Fatalf("no Umask line in /proc/self/status (err %v)", sc.Err())
	return 0
}

// ts makes a Timespec.
func ts(sec, nsec int64) unix.Timespec { return unix.Timespec{Sec: sec, Nsec: nsec} }

// tsLess reports whether a is earlier than b.
func tsLess(a, b unix.Timespec) bool {
	return a.Sec < b.Sec || (a.Sec == b.Sec && a.Nsec < b.Nsec)
}

// tsString formats a Timespec for messages.
func tsString(x unix.Timespec) string { return fmt.Sprintf("%d.%09d", x.Sec, x.Nsec) }

// pastTime is a timestamp well in the past that checks set before an operation that must
// move a timestamp forward, so that the check does not depend on clock granularity.
var pastTime = ts(1_000_000_000, 123_456_789)

// waitClockPast waits until timestamps the filesystem hands out from now on are later than
// x, so that a check can then require an operation to move a ctime past x. It waits for
// real time to pass x by more than a kernel tick (the coarse clock used for inode times lags
// by up to one jiffy, 10 ms at HZ=100) and then until a probe file's times, set to "now" by
// the filesystem itself, are later than x, which covers filesystems with coarse
// timestamps. No assertion depends on how long this takes.
func waitClockPast(t *testing.T, e *env, x unix.Timespec) {
	t.Helper()
	if d := time.Until(time.Unix(x.Sec, x.Nsec).Add(25 * time.Millisecond)); d > 0 {
		time.Sleep(d)
	}
	probe := filepath.Join(e.clock, "probe-"+filepath.Base(e.dir))
	writeFile(t, probe, nil)
	defer os.Remove(probe)
	now := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, probe, now, 0), "touch %s", probe)
		st := lstat(t, probe)
		if tsLess(x, st.Mtim) && tsLess(x, st.Ctim) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("filesystem clock did not pass %s within 10 s (probe mtime %s ctime %s)",
				tsString(x), tsString(st.Mtim), tsString(st.Ctim))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
