package control

import (
	"os"
	"testing"
	"time"
)

func TestDeviceOfNonFUSE(t *testing.T) {
	if _, err := Device("/"); err == nil {
		t.Error("Device(/) succeeded; / is not a FUSE mount here")
	}
}

type fakeHandler struct{}

func (fakeHandler) Status() Status {
	return Status{PID: 42, Tier: "kernel-cache", Started: time.Unix(1, 0)}
}
func (fakeHandler) Stats() Stats {
	return Stats{Source: "daemon", Ops: []OpFigures{{Opcode: "LOOKUP", Upcalls: 7}}}
}

// TestRoundTrip serves a handler on a socket and queries it as the
// cryptfs status and stats commands do.
func TestRoundTrip(t *testing.T) {
	t.Setenv("CRYPTFS_RUNTIME_DIR", t.TempDir())
	const dev = 1<<20 | 999
	s, err := Listen(dev, fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(SocketPath(dev)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %s: %v %v, want mode 0600", SocketPath(dev), fi, err)
	}
	st, err := GetStatus(dev)
	if err != nil || st.PID != 42 || st.Tier != "kernel-cache" {
		t.Errorf("GetStatus: %+v %v", st, err)
	}
	stats, err := GetStats(dev)
	if err != nil || len(stats.Ops) != 1 || stats.Ops[0].Upcalls != 7 {
		t.Errorf("GetStats: %+v %v", stats, err)
	}
	s.Close()
	if _, err := GetStatus(dev); err == nil {
		t.Error("GetStatus after Close succeeded")
	}
	if _, err := os.Stat(SocketPath(dev)); err == nil {
		t.Error("the socket is still there after Close")
	}
}

// TestCloseKeepsASuccessorsSocket: a daemon that exits after another took
// over its (reused) device number must not remove the other's socket.
func TestCloseKeepsASuccessorsSocket(t *testing.T) {
	t.Setenv("CRYPTFS_RUNTIME_DIR", t.TempDir())
	const dev = 2<<20 | 7
	old, err := Listen(dev, fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	successor, err := Listen(dev, fakeHandler{}) // removes the stale path, makes its own
	if err != nil {
		t.Fatal(err)
	}
	defer successor.Close()
	old.Close()
	if _, err := GetStatus(dev); err != nil {
		t.Errorf("the successor's socket is gone after the old server closed: %v", err)
	}
}
