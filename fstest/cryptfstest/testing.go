package cryptfstest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The testing layer: the core's operations for a test, failing it on
// error and tearing down in t.Cleanup.

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the cryptfs binary under test: $CRYPTFS_BIN if set (the
// Makefile sets it), otherwise one built from this source tree once per
// test process, in a temporary directory of mode 0755 (so that tests can
// run it as another user) that RemoveBinary deletes.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CRYPTFS_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	buildOnce.Do(func() {
		root := SourceRoot()
		if root == "" {
			buildErr = errors.New("CRYPTFS_BIN is not set and the cryptfs source tree is not here to build it")
			return
		}
		dir, err := os.MkdirTemp("", "cryptfs-bin-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "cryptfs")
		buildErr = Build(context.Background(), root, buildPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// RemoveBinary deletes the binary Binary built, if it built one. Call it
// from TestMain after m.Run in every package whose tests mount cryptfs, so
// that no test run leaves a build behind in the temporary directory.
func RemoveBinary() {
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}

// RequireFUSE skips the test unless this process can mount FUSE file
// systems (root and /dev/fuse).
func RequireFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting needs root (run the tests as root, e.g. sudo make test)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("skipping: /dev/fuse is missing (modprobe fuse; apt-get install fuse3)")
	}
}

// devFUSE is the mode of /dev/fuse that UserFUSE changed, while tests of
// this process use it.
var devFUSE struct {
	sync.Mutex
	users int
	mode  os.FileMode
}

// UserFUSE lets users other than root mount FUSE file systems until the
// test ends: it makes /dev/fuse 0666 where it is not (0600 on machines
// without udev's rule) and puts the old mode back in t.Cleanup, once the
// last test of this process that asked is done. It skips the test unless
// RequireFUSE passes and fusermount3 (the setuid helper of unprivileged
// mounts) is installed.
func UserFUSE(t testing.TB) {
	t.Helper()
	RequireFUSE(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("skipping: fusermount3 not found (apt-get install fuse3)")
	}
	devFUSE.Lock()
	defer devFUSE.Unlock()
	if devFUSE.users == 0 {
		st, err := os.Stat("/dev/fuse")
		if err != nil {
			t.Fatal(err)
		}
		devFUSE.mode = st.Mode().Perm()
		if devFUSE.mode&0o066 != 0o066 {
			if err := os.Chmod("/dev/fuse", devFUSE.mode|0o066); err != nil {
				t.Fatal(err)
			}
		}
	}
	devFUSE.users++
	t.Cleanup(func() {
		devFUSE.Lock()
		defer devFUSE.Unlock()
		if devFUSE.users--; devFUSE.users == 0 {
			if err := os.Chmod("/dev/fuse", devFUSE.mode); err != nil {
				t.Errorf("restoring the mode of /dev/fuse: %v", err)
			}
		}
	})
}

// NewCLI returns a CLI for the binary under test with the test defaults
// (Password on standard input, --insecure-kdf). Change its fields to run
// commands as another user, with more environment, or another password.
func NewCLI(t testing.TB) *CLI {
	t.Helper()
	return &CLI{Bin: Binary(t)}
}

// Init creates a cipher directory with cheap KDF parameters in a new
// temporary directory and returns its path. Extra init flags (e.g.
// --deterministic-names) may be given.
func Init(t testing.TB, flags ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cipher")
	if _, err := NewCLI(t).Init(context.Background(), dir, flags...); err != nil {
		t.Fatalf("cryptfs init: %v", err)
	}
	return dir
}

// NewMount mounts with the real binary (a foreground `cryptfs mount -f`
// unless o.Background) and registers its teardown (Close) with t.Cleanup.
// An empty o.Cipher is a new one from Init; an empty o.Dir is a new
// temporary directory. It skips the test where FUSE cannot be mounted and
// fails it if mounting fails.
func NewMount(t testing.TB, o MountOptions) *Mount {
	t.Helper()
	m, err := TryMount(t, NewCLI(t), o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TryMount is NewMount with a CLI of the caller's (nil: NewCLI), for a
// mount that may fail on purpose: it returns the error instead of failing
// the test. A mount that succeeds is torn down in t.Cleanup.
func TryMount(t testing.TB, c *CLI, o MountOptions) (*Mount, error) {
	t.Helper()
	RequireFUSE(t)
	if c == nil {
		c = NewCLI(t)
	}
	if o.Cipher == "" {
		o.Cipher = Init(t)
	}
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "mnt")
	}
	if o.transport() == "uring" {
		if ok, why := URingOffered(); !ok {
			t.Skipf("skipping: the mount needs --transport=uring (%s=%s?), but %s", TransportEnv, os.Getenv(TransportEnv), why)
		}
	}
	m, err := c.Mount(context.Background(), o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("teardown of the mount at %s: %v\n%s", m.Dir, err, m.Log())
		}
	})
	return m, nil
}

// EnableURing makes the kernel offer FUSE over io_uring to new mounts
// until the test ends: it sets the fuse module's enable_uring parameter
// (URingParam) and puts the old value back in t.Cleanup. It skips the
// test where the kernel has no FUSE over io_uring or the parameter cannot
// be written (not root). Connections that use io_uring keep it when the
// parameter is turned off again (Linux 6.18).
func EnableURing(t testing.TB) {
	t.Helper()
	old, err := os.ReadFile(URingParam)
	if err != nil {
		t.Skipf("skipping: this kernel has no FUSE over io_uring (%s: %v)", URingParam, err)
	}
	if string(old) == "Y\n" {
		return
	}
	if err := os.WriteFile(URingParam, []byte("Y"), 0); err != nil {
		t.Skipf("skipping: cannot enable FUSE over io_uring: %v", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(URingParam, old, 0); err != nil {
			t.Errorf("restoring %s: %v", URingParam, err)
		}
	})
}

// Unmount unmounts m with `cryptfs unmount` (flags are added) and waits
// for the daemon; it fails the test, with the daemon's log, if either
// fails.
func Unmount(t testing.TB, m *Mount, flags ...string) {
	t.Helper()
	if err := m.Unmount(context.Background(), flags...); err != nil {
		t.Fatalf("%v\n%s", err, m.Log())
	}
}

// Run runs the binary under test with stdin and returns its output
// (standard output and error) and exit code; it fails the test only if
// the command could not run at all.
func Run(t testing.TB, stdin string, args ...string) (string, int) {
	t.Helper()
	res, err := NewCLI(t).Run(context.Background(), stdin, args...)
	var ee *ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(res.Output), ExitCode(err)
}
