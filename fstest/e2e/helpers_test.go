package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/reqstats"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/control"
)

// Small helpers for system calls on a mount and for comparing what comes
// back. They are the ones of fstest/util.go that these tests used when
// they lived in package fstest, kept as they were so that the tests do not
// change; fstest keeps its own unexported.

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

// fd returns the descriptor of f for raw system calls.
func fd(f *os.File) int { return int(f.Fd()) }

// mustDo fails the test at once on err.
func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
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

// readFile returns the content of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

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
		for b := buf[:n]; len(b) > 0; {
			if len(b) < 19 {
				return out, fmt.Errorf("getdents %s: truncated dirent (%d bytes left)", f.Name(), len(b))
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return out, fmt.Errorf("getdents %s: bad dirent record length %d", f.Name(), reclen)
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
	}
}

// listDir returns the names in dir, without "." and "..", sorted, failing the test on
// error.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	f, err := openFile(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ents, err := readDirents(f, 8192)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		if e.name != "." && e.name != ".." {
			names = append(names, e.name)
		}
	}
	slices.Sort(names)
	return names
}

// readNames lists a directory, sorted.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// requestCollector opens the tracepoint collector of FUSE requests for the
// mount at dir, or skips the test where the kernel has no fuse tracepoints.
// The caller closes it.
func requestCollector(t *testing.T, dir string) *reqstats.Collector {
	t.Helper()
	dev, err := control.Device(dir)
	if err != nil {
		t.Fatal(err)
	}
	col, err := reqstats.Open(dev)
	if errors.Is(err, reqstats.ErrUnavailable) {
		t.Skipf("skipping: the fuse tracepoints are unavailable: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return col
}

// nobody and nogroup, the other user of the tests that run the binary as one.
const nobodyUID, nobodyGID = 65534, 65534

// asNobody prepares a run of the cryptfs binary as nobody (65534): a
// directory open to all (t.TempDir's parent is 0700) holding cipher, mnt
// and run directories of nobody's, and a CLI running as nobody with run as
// its XDG_RUNTIME_DIR. It needs user FUSE and skips where the binary cannot
// be run by another user.
func asNobody(t *testing.T, prefix string) (*cryptfstest.CLI, map[string]string) {
	t.Helper()
	cryptfstest.UserFUSE(t)
	const uid, gid = nobodyUID, nobodyGID
	bin := cryptfstest.Binary(t)
	if !runnableByAll(bin) {
		t.Skipf("skipping: %s cannot be run by another user (it or a directory above it is not open to all); build it elsewhere or unset CRYPTFS_BIN", bin)
	}
	base, err := os.MkdirTemp("", prefix)
	mustDo(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	mustDo(t, os.Chmod(base, 0o755))
	dirs := map[string]string{}
	for _, d := range []string{"cipher", "mnt", "run"} {
		dirs[d] = filepath.Join(base, d)
		mustDo(t, os.Mkdir(dirs[d], 0o700))
		mustDo(t, os.Chown(dirs[d], uid, gid))
	}
	return &cryptfstest.CLI{Bin: bin, Cred: &syscall.Credential{Uid: uid, Gid: gid},
		Env: []string{"XDG_RUNTIME_DIR=" + dirs["run"]}}, dirs
}
