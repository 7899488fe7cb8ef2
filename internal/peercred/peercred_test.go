package peercred

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// dialEnv makes the test binary a helper that connects to the socket at
// its value, prints the uid of the server, and exits.
const dialEnv = "PEERCRED_TEST_DIAL"

func TestMain(m *testing.M) {
	if sock := os.Getenv(dialEnv); sock != "" {
		c, err := net.Dial("unix", sock)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		uid, err := UID(c)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(uid)
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestUID: each end of a unix socket learns the other's uid, for a client
// of another user too (root only); a connection that is not a unix socket
// is an error.
func TestUID(t *testing.T) {
	dir, err := os.MkdirTemp("", "peercred-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, conn := range map[string]net.Conn{"client": c, "server": s} {
		if uid, err := UID(conn); err != nil || uid != os.Getuid() {
			t.Errorf("%s: UID = %d, %v; want %d", name, uid, err, os.Getuid())
		}
	}

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if uid, err := UID(a); err == nil {
		t.Errorf("UID of a net.Pipe = %d, want an error", uid)
	}

	if os.Geteuid() != 0 {
		t.Skip("skipping the other-user case: needs root")
	}
	// A client of uid 65534: the test binary re-executed, copied where
	// that user may run it.
	for _, p := range []string{dir, sock} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	helper := filepath.Join(dir, "peercred.test")
	copyFile(t, helper)
	cmd := exec.Command(helper)
	cmd.Env = []string{dialEnv + "=" + sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out := make(chan []byte, 1)
	go func() {
		b, err := cmd.Output()
		if err != nil {
			t.Errorf("the client as uid 65534: %v\n%s", err, b)
		}
		out <- b
	}()
	other, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := UID(other); err != nil || uid != 65534 {
		t.Errorf("server: UID of the other user's client = %d, %v; want 65534", uid, err)
	}
	other.Close()
	if got := string(<-out); got != strconv.Itoa(os.Getuid()) {
		t.Errorf("the other user's client sees server uid %q, want %d", got, os.Getuid())
	}
}

// copyFile copies this test binary to dst, mode 0755.
func copyFile(t *testing.T, dst string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}
