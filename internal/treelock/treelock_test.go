package treelock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseLocks(t *testing.T) {
	const sample = `1: FLOCK  ADVISORY  WRITE 2536 fe:00:9986234 0 EOF
1: -> FLOCK  ADVISORY  WRITE 2600 fe:00:9986234 0 EOF
2: FLOCK  ADVISORY  READ 25159 fe:00:42 0 EOF
3: FLOCK  ADVISORY  READ 25160 fe:00:42 0 EOF
4: POSIX  ADVISORY  WRITE 700 fe:00:42 0 EOF
5: OFDLCK ADVISORY  READ -1 fe:00:42 0 EOF
6: FLOCK  ADVISORY  WRITE 1 103:02:9986234 0 EOF
`
	for _, c := range []struct {
		keys []string
		want string
	}{
		{[]string{"fe:00:9986234"}, "[{2536 false}]"},
		{[]string{"fe:00:42"}, "[{25159 true} {25160 true}]"},
		{[]string{"fe:00:1", "fe:00:42"}, "[{25159 true} {25160 true}]"},
		{[]string{"fe:00:7"}, "[]"},
	} {
		got, err := parseLocks(bufio.NewScanner(strings.NewReader(sample)), c.keys)
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("parseLocks(%v) = %v, %v; want %s", c.keys, got, err, c.want)
		}
	}
}

// holdLock makes another process hold a lock on dir (flock(1) with
// -x or -s) until the test ends.
func holdLock(t *testing.T, dir, mode string) int {
	t.Helper()
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("skipping: flock(1) is not installed")
	}
	cmd := exec.Command("flock", mode, dir, "sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// flock(1) locks, then runs sleep as a child that inherits the
	// descriptor; /proc/locks names whoever took it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		hs, err := Holders(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) > 0 {
			return hs[0].PID
		}
		if time.Now().After(deadline) {
			t.Fatal("flock(1) did not take the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAcquire: exclusive locks exclude everyone, shared ones each other
// only with an exclusive one; Probe agrees with Acquire without taking a
// lock; the refusal names the holder's pid; Close releases.
func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := Holders(dir)
	if err != nil || len(hs) != 1 || hs[0].PID != os.Getpid() || hs[0].Shared {
		t.Errorf("Holders with our exclusive lock: %v, %v", hs, err)
	}
	// Locks are per open file: a second Acquire in the same process
	// conflicts like one of another process.
	for _, shared := range []bool{false, true} {
		_, err := Acquire(dir, Options{Shared: shared})
		var ie *InUseError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
			t.Errorf("second Acquire (shared=%v) while held: %v", shared, err)
		}
		if err := Probe(dir, Options{Shared: shared}); !errors.Is(err, ErrInUse) {
			t.Errorf("Probe (shared=%v) while held: %v", shared, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Probe(dir, Options{}); err != nil {
		t.Errorf("Probe after Close: %v", err)
	}

	r1, err := Acquire(dir, Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Acquire(dir, Options{Shared: true, NoSymlinks: true})
	if err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	defer r2.Close()
	if err := Probe(dir, Options{Shared: true}); err != nil {
		t.Errorf("Probe shared with two readers: %v", err)
	}
	if _, err := Acquire(dir, Options{}); !errors.Is(err, ErrInUse) {
		t.Errorf("exclusive with readers: %v", err)
	}
}

// TestAcquireOtherProcess: a lock of another process (flock(1)) refuses
// ours and is named by pid.
func TestAcquireOtherProcess(t *testing.T) {
	dir := t.TempDir()
	pid := holdLock(t, dir, "-x")
	_, err := Acquire(dir, Options{Shared: true})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", pid)) {
		t.Errorf("Acquire while flock(1) holds it: %v, want ErrInUse naming pid %d", err, pid)
	}
}

// TestAcquireNoSymlinks: with NoSymlinks, a path through a symlink is
// refused.
func TestAcquireNoSymlinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/real", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir+"/real", dir+"/link"); err != nil {
		t.Fatal(err)
	}
	if l, err := Acquire(dir+"/link", Options{NoSymlinks: true}); err == nil {
		l.Close()
		t.Errorf("Acquire through a symlink with NoSymlinks succeeded")
	}
	l, err := Acquire(dir+"/link", Options{})
	if err != nil {
		t.Fatalf("Acquire through a symlink without NoSymlinks: %v", err)
	}
	var a, b unix.Stat_t
	unix.Fstat(l.Dir(), &a)
	unix.Stat(dir+"/real", &b)
	if a.Ino != b.Ino {
		t.Errorf("Dir() is inode %d, want the directory's %d", a.Ino, b.Ino)
	}
	l.Close()
}

// TestLockFileFallback: where flock on the directory is refused (EINVAL,
// as on file systems that only lock files), the lock is taken on
// .cryptfs.lock, which conflicts and is named alike.
func TestLockFileFallback(t *testing.T) {
	flockDir = func(int, int) error { return unix.EINVAL }
	defer func() { flockDir = flock }()
	dir := t.TempDir()
	l, err := Acquire(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(dir + "/" + FileName); err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, %v", st, err)
	}
	if _, err := Acquire(dir, Options{Shared: true}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("second Acquire with the lock file held: %v", err)
	}
	if err := Probe(dir, Options{}); !errors.Is(err, ErrInUse) {
		t.Errorf("Probe with the lock file held: %v", err)
	}
	l.Close()
	if err := Probe(dir, Options{}); err != nil {
		t.Errorf("Probe after Close: %v", err)
	}
	// A lock file that is not a regular file is refused.
	dir2 := t.TempDir()
	if err := os.Symlink("/etc/passwd", dir2+"/"+FileName); err != nil {
		t.Fatal(err)
	}
	if l, err := Acquire(dir2, Options{}); err == nil {
		l.Close()
		t.Errorf("Acquire with a symlinked lock file succeeded")
	}
}
