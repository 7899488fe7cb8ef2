package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// The helper process of the credential tests: a server or a client run
// as another user.
const helperEnv = "CRYPTFS_CONTROL_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve":
		// Serve on the socket path in argv until killed.
		s, err := ListenAt(os.Getenv("CRYPTFS_CONTROL_TEST_SOCKET"), &fakeHandler{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		os.Chmod(s.Path(), 0o666)
		fmt.Println("ok")
		time.Sleep(time.Hour)
	case "call":
		var st Status
		_, err := callAt(os.Getenv("CRYPTFS_CONTROL_TEST_SOCKET"), 0, "status", &st)
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDeviceOfNonFUSE(t *testing.T) {
	if _, err := Device("/"); err == nil {
		t.Error("Device(/) succeeded; / is not a FUSE mount here")
	}
}

type fakeHandler struct{ calls atomic.Int32 }

func (h *fakeHandler) Status() Status {
	h.calls.Add(1)
	return Status{PID: 42, Tier: "kernel-cache", Started: time.Unix(1, 0), Device: testDev}
}
func (h *fakeHandler) Stats() Stats {
	h.calls.Add(1)
	return Stats{Source: "daemon", Ops: []OpFigures{{Opcode: "LOOKUP", Upcalls: 7}}}
}

const testDev = 1<<20 | 999

// testRoots points the runtime directories at a new temporary directory
// for the test and returns it.
func testRoots(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	old := roots
	roots.run, roots.runUser, roots.tmp = filepath.Join(base, "run"), filepath.Join(base, "run", "user"), filepath.Join(base, "tmp")
	for _, d := range []string{roots.run, roots.runUser, roots.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(roots.tmp, 0o1777)
	t.Cleanup(func() { roots = old })
	return base
}

// testMount is a mount of connection testDev owned by this process's user.
func testMount() mountinfo.Mount {
	return mountinfo.Mount{Major: testDev >> 20, Minor: testDev & (1<<20 - 1), Mountpoint: "/test", FSType: "fuse.cryptfs",
		SuperOptions: fmt.Sprintf("rw,user_id=%d,group_id=0", os.Geteuid())}
}

// TestRoundTrip serves a handler on a socket and queries it as the
// cryptfs status and stats commands do: by the mount's owner and device.
func TestRoundTrip(t *testing.T) {
	testRoots(t)
	s, err := Listen(testDev, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 || filepath.Base(s.Path()) != fmt.Sprint(testDev)+".sock" {
		t.Errorf("socket %s: %v %v, want mode 0600 named after the device", s.Path(), fi, err)
	}
	st, err := StatusOf(testMount())
	if err != nil || st.PID != 42 || st.Tier != "kernel-cache" {
		t.Errorf("StatusOf: %+v %v", st, err)
	}
	stats, err := StatsOf(testMount())
	if err != nil || len(stats.Ops) != 1 || stats.Ops[0].Upcalls != 7 {
		t.Errorf("StatsOf: %+v %v", stats, err)
	}
	other := testMount()
	other.Minor++
	if _, err := StatusOf(other); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("StatusOf another connection: %v, want ErrNoDaemon", err)
	}
	s.Close()
	if _, err := StatusOf(testMount()); err == nil {
		t.Error("StatusOf after Close succeeded")
	}
	if _, err := os.Stat(s.Path()); err == nil {
		t.Error("the socket is still there after Close")
	}
}

// TestCloseKeepsASuccessorsSocket: a daemon that exits after another took
// over its (reused) device number must not remove the other's socket.
func TestCloseKeepsASuccessorsSocket(t *testing.T) {
	testRoots(t)
	old, err := Listen(testDev, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	successor, err := Listen(testDev, &fakeHandler{}) // removes the stale path, makes its own
	if err != nil {
		t.Fatal(err)
	}
	defer successor.Close()
	old.Close()
	if _, err := StatusOf(testMount()); err != nil {
		t.Errorf("the successor's socket is gone after the old server closed: %v", err)
	}
}

// TestRuntimeDir: the directory is created 0700 and reused; one that is a
// symlink, has another mode or (as root) another owner is refused with
// what is wrong; a user's private /run/user/<uid> is preferred to /tmp.
func TestRuntimeDir(t *testing.T) {
	base := testRoots(t)
	uid := os.Geteuid()
	want := runtimeDirs(uid)
	dir, err := RuntimeDir()
	if err != nil {
		t.Fatal(err)
	}
	last := want[len(want)-1] // root: /run/cryptfs; a user without /run/user/<uid>: /tmp/cryptfs-<uid>
	if dir != last {
		t.Errorf("RuntimeDir = %s, want %s", dir, last)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v %v, want a 0700 directory", dir, fi, err)
	}
	if again, err := RuntimeDir(); err != nil || again != dir {
		t.Errorf("second RuntimeDir = %s, %v", again, err)
	}
	refuse := func(what string, prepare func(dir string) error, wantMsg string) {
		t.Helper()
		os.RemoveAll(dir)
		if err := prepare(dir); err != nil {
			t.Fatal(err)
		}
		_, err := RuntimeDir()
		if err == nil || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("%s: %v, want a refusal saying %q", what, err, wantMsg)
		}
		os.RemoveAll(dir)
	}
	refuse("mode 0777", func(d string) error {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		return os.Chmod(d, 0o777)
	}, "mode 0777, not 0700")
	target := filepath.Join(base, "elsewhere")
	os.Mkdir(target, 0o700)
	refuse("symlink", func(d string) error { return os.Symlink(target, d) }, "a symlink")
	if uid == 0 {
		refuse("another owner", func(d string) error {
			if err := os.Mkdir(d, 0o700); err != nil {
				return err
			}
			return os.Chown(d, 65534, 65534)
		}, "owned by uid 65534, not 0")
	}

	// A user: /run/user/<uid> when it is theirs and private.
	const user = 4242
	dirs := runtimeDirs(user)
	if !strings.HasPrefix(dirs[0], roots.runUser+"/4242/") || !strings.HasPrefix(dirs[1], roots.tmp+"/cryptfs-4242") {
		t.Errorf("runtimeDirs(%d) = %v", user, dirs)
	}
}

// TestOpenLog: the log opens for appending with mode 0600; a symlink, a
// file of another user and a FIFO are refused.
func TestOpenLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "log")
	f, err := OpenLog(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("one\n")
	f.Close()
	f, err = OpenLog(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("two\n")
	f.Close()
	if b, _ := os.ReadFile(p); string(b) != "one\ntwo\n" {
		t.Errorf("log content %q, want both lines appended", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", fi.Mode())
	}
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(victim, link)
	if f, err := OpenLog(link); err == nil || !strings.Contains(err.Error(), "symlink") {
		f.Close()
		t.Errorf("OpenLog through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target changed: %q", b)
	}
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o600)
	if f, err := OpenLog(fifo); err == nil {
		f.Close()
		t.Errorf("OpenLog of a FIFO succeeded")
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(dir, "theirs")
		os.WriteFile(theirs, nil, 0o666)
		os.Chown(theirs, 65534, 65534)
		if f, err := OpenLog(theirs); err == nil {
			f.Close()
			t.Errorf("OpenLog of another user's file succeeded")
		}
	}
}

// TestRequestBounded: a request longer than the limit, or one that never
// ends, is dropped without reaching the handler, and the server keeps
// answering others.
func TestRequestBounded(t *testing.T) {
	old := ioTimeout
	ioTimeout = 500 * time.Millisecond
	defer func() { ioTimeout = old }()
	h := &fakeHandler{}
	s, err := ListenAt(filepath.Join(t.TempDir(), "s.sock"), h)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	long := `{"cmd":"status","pad":"` + strings.Repeat("x", 1<<20) + "\"}\n"
	go c.Write([]byte(long)) // blocks once the server stops reading
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 100)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a 1 MiB request: read %d bytes, %v; want the connection closed", n, err)
	}
	// One that never ends: the deadline cuts it.
	c2, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte(`{"cmd":"sta`))
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 100)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("an unfinished request: %v; want the connection closed after the server's deadline", err)
	}
	if n := h.calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times for dropped requests", n)
	}
	var st Status
	if _, err := callAt(s.Path(), os.Geteuid(), "status", &st); err != nil || st.PID != 42 {
		t.Errorf("a proper request afterwards: %+v, %v", st, err)
	}
}

// helper starts the copy bin of this test binary as uid 65534 in a
// helper role.
func helper(t *testing.T, bin, role, socket string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "CRYPTFS_CONTROL_TEST_SOCKET="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

// TestPeerCredentials: the daemon answers only root and its own user,
// whatever the socket's mode; a client accepts only a server of the
// mount's owner or root (a socket another user planted is refused).
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to run a process as another user")
	}
	// The test binary's directory is private: a copy the user can run.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "control-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	bin := filepath.Join(dir, "control.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if !everyoneCanRun(bin) {
		t.Skipf("skipping: %s cannot be run by another user", bin)
	}

	// Server: root's, socket opened to everyone; a client of another user.
	h := &fakeHandler{}
	s, err := ListenAt(filepath.Join(dir, "root.sock"), h)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.Chmod(s.Path(), 0o666)
	out, err := helper(t, bin, "call", s.Path()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("another user's request: %s %v; want permission denied", out, err)
	}
	if n := h.calls.Load(); n != 0 {
		t.Errorf("the handler answered another user (%d calls)", n)
	}

	// Client: a server run by another user at the path.
	path := filepath.Join(dir, "planted.sock")
	srv := helper(t, bin, "serve", path)
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ok" {
		t.Fatalf("helper server: %q", line)
	}
	var st Status
	if _, err := callAt(path, 4242, "status", &st); !errors.Is(err, ErrImpostor) {
		t.Errorf("a server of uid 65534 for a mount of uid 4242: %v, want ErrImpostor", err)
	}
	if _, err := callAt(path, 65534, "status", &st); err != nil {
		// The server is that user's; as root we may ask it.
		t.Errorf("the owner's server asked by root: %v", err)
	}
}

func everyoneCanRun(path string) bool {
	for p := path; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

var _ = json.Marshal
