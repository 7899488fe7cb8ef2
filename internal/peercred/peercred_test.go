package peercred

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestUID: each end of a unix socket learns the other's uid; a connection
// that is not a unix socket is an error. (Peers of another user: the
// control socket's TestPeerCredentials, which runs both ends as uid 65534
// through this function.)
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
}
