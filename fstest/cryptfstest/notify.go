package cryptfstest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
)

// NotifySocket is a NOTIFY_SOCKET of our own, as systemd offers one to a
// Type=notify service: a datagram socket in a new directory, read until a
// message carries READY=1.
type NotifySocket struct {
	Path  string // the value for NOTIFY_SOCKET
	dir   string
	l     *net.UnixConn
	ready chan error
}

// ListenNotify creates a notify socket and starts reading it. With others
// set, every user may send to it (for a daemon that runs as another user).
// The caller closes it.
func ListenNotify(others bool) (*NotifySocket, error) {
	dir, err := os.MkdirTemp("", "cryptfstest-notify-")
	if err != nil {
		return nil, err
	}
	n := &NotifySocket{Path: filepath.Join(dir, "notify"), dir: dir, ready: make(chan error, 1)}
	n.l, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.Path, Net: "unixgram"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if others {
		for p, mode := range map[string]os.FileMode{dir: 0o711, n.Path: 0o666} {
			if err := os.Chmod(p, mode); err != nil {
				n.Close()
				return nil, err
			}
		}
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := n.l.ReadFromUnix(buf)
			if err != nil {
				n.ready <- err
				return
			}
			if strings.Contains(string(buf[:k]), "READY=1") {
				n.ready <- nil
				return
			}
		}
	}()
	return n, nil
}

// Ready receives nil once READY=1 has arrived, or the error that ended
// the reading (such as Close).
func (n *NotifySocket) Ready() <-chan error { return n.ready }

// Close closes the socket and removes its directory.
func (n *NotifySocket) Close() error {
	err := n.l.Close()
	if rerr := os.RemoveAll(n.dir); err == nil {
		err = rerr
	}
	return err
}
