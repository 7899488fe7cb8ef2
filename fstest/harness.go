package fstest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// The cryptfs mount harness: it runs the real `cryptfs mount -f` binary in
// its own process (a Go process must never serve a FUSE mount it also
// uses), waits for its systemd-style readiness notification, and tears
// everything down in t.Cleanup even when the test fails: unmount, then
// abort the connection and kill the daemon if it does not exit, so no
// mount, daemon or D-state process is left behind.

// Password is the password of the cipher directories the harness creates.
const Password = "correct horse battery staple"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the cryptfs binary under test: $CRYPTFS_BIN if set,
// otherwise one built from this module once per test process.
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
		dir, err := os.MkdirTemp("", "cryptfs-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "cryptfs")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/cryptfs")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/cryptfs: %v\n%s", err, out)
		}
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

// Init creates a cipher directory with cheap KDF parameters and returns
// its path. Extra init flags (e.g. --deterministic-names) may be given.
func Init(t testing.TB, flags ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cipher")
	args := append([]string{"init", "--insecure-kdf"}, flags...)
	cmd := exec.Command(Binary(t), append(args, dir)...)
	cmd.Stdin = strings.NewReader(Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cryptfs init: %v\n%s", err, out)
	}
	return dir
}

// Mount is a running `cryptfs mount -f`.
type Mount struct {
	Dir    string // the mountpoint
	Cipher string // the cipher directory
	cmd    *exec.Cmd
	log    *syncBuffer
	done   chan struct{}
	err    error
}

// MountOptions configure MountCryptfs.
type MountOptions struct {
	Cipher string   // an existing cipher directory; "" creates one with Init
	Args   []string // extra mount flags, e.g. "--fast-path=off"
}

// MountCryptfs mounts a cipher directory with the real binary and
// registers its teardown.
func MountCryptfs(t testing.TB, o MountOptions) *Mount {
	t.Helper()
	RequireFUSE(t)
	if o.Cipher == "" {
		o.Cipher = Init(t)
	}
	m := &Mount{Dir: filepath.Join(t.TempDir(), "mnt"), Cipher: o.Cipher, log: &syncBuffer{}, done: make(chan struct{})}
	if err := os.Mkdir(m.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	args := append([]string{"mount", "-f", "--insecure-kdf"}, o.Args...)
	args = append(args, m.Cipher, m.Dir)
	m.cmd = exec.Command(Binary(t), args...)
	m.cmd.Stdin = strings.NewReader(Password + "\n")
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() { m.teardown(t) })

	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := l.ReadFromUnix(buf)
			if err != nil {
				ready <- err
				return
			}
			if strings.Contains(string(buf[:n]), "READY=1") {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("waiting for the daemon: %v\n%s", err, m.log)
		}
	case <-m.done:
		t.Fatalf("cryptfs mount exited early: %v\n%s", m.err, m.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("cryptfs mount not ready after 30s\n%s", m.log)
	}
	return m
}

// Log returns what the daemon logged so far.
func (m *Mount) Log() string { return m.log.String() }

// Unmount unmounts through `cryptfs unmount` and waits for the daemon.
func (m *Mount) Unmount(t testing.TB) {
	t.Helper()
	out, err := exec.Command(Binary(t), "unmount", m.Dir).CombinedOutput()
	if err != nil {
		t.Fatalf("cryptfs unmount: %v\n%s", err, out)
	}
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon still running 30s after unmount\n%s", m.log)
	}
	if m.err != nil {
		t.Fatalf("daemon exited with %v\n%s", m.err, m.log)
	}
}

// Kill kills the daemon with SIGKILL and aborts its connection, leaving a
// dead mount behind (which teardown removes).
func (m *Mount) Kill() {
	if dev, err := fuseDevice(m.Dir); err == nil {
		abortConnection(dev)
	}
	m.cmd.Process.Kill()
	<-m.done
}

// Done is closed when the daemon process has exited.
func (m *Mount) Done() <-chan struct{} { return m.done }

func (m *Mount) teardown(t testing.TB) {
	select {
	case <-m.done:
	default:
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(15 * time.Second):
			t.Errorf("daemon ignored SIGTERM for 15s; aborting its connection and killing it\n%s", m.log)
			m.Kill()
		}
	}
	// Whatever happened, nothing may stay mounted.
	for i := 0; i < 3 && isMounted(m.Dir); i++ {
		if dev, err := fuseDevice(m.Dir); err == nil {
			abortConnection(dev)
		}
		unix.Unmount(m.Dir, unix.MNT_DETACH)
	}
	if isMounted(m.Dir) {
		t.Errorf("%s is still mounted after teardown", m.Dir)
	}
}

// isMounted reports whether a FUSE mount sits at path.
func isMounted(path string) bool {
	_, err := mountinfo.FUSEDevice(path)
	return err == nil
}

func fuseDevice(path string) (uint32, error) { return mountinfo.FUSEDevice(path) }

func abortConnection(dev uint32) { mountinfo.AbortFUSE(dev) }

// syncBuffer is a bytes.Buffer safe for the daemon's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
