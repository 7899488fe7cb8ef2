package fstest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func specialChecks() []check {
	return []check{
		{"Fifo", checkFifo},
		{"UnixSocket", checkUnixSocket},
		{"DeviceNodes", checkDeviceNodes},
	}
}

// checkFifo: mkfifo creates a fifo of the requested mode; a writer and a reader opened in
// separate goroutines pass data through it; the fifo has size 0 afterwards and can be
// renamed and unlinked like any entry.
func checkFifo(t *testing.T, e *env) {
	p := e.path("fifo")
	umask := processUmask(t)
	must(t, unix.Mkfifo(p, 0o640), "mkfifo")
	st := lstat(t, p)
	if fileType(st.Mode) != unix.S_IFIFO || st.Mode&0o777 != 0o640&^umask {
		t.Errorf("fifo mode %o, want fifo %o", st.Mode, 0o640&^umask)
	}
	// A watchdog opens the fifo read-write (which never blocks) if the ends do not meet, to
	// release the blocked open; the check then fails instead of hanging.
	watchdog := time.AfterFunc(20*time.Second, func() {
		if f, err := openFile(p, unix.O_RDWR|unix.O_NONBLOCK, 0); err == nil {
			time.Sleep(100 * time.Millisecond)
			f.Close()
		}
	})
	defer watchdog.Stop()
	msg := randBytes(1, 200*kib) // larger than the pipe buffer, so both ends interleave
	done := make(chan error, 1)
	go func() {
		w, err := openFile(p, unix.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer w.Close()
		_, err = w.Write(msg)
		done <- err
	}()
	r, err := openFile(p, unix.O_RDONLY, 0)
	must(t, err, "open fifo for reading")
	defer r.Close()
	got, err := io.ReadAll(r)
	must(t, err, "read fifo")
	must(t, <-done, "write fifo")
	if !watchdog.Stop() {
		t.Fatalf("the fifo's ends did not meet within 20 s")
	}
	checkBytes(t, got, msg, "data through the fifo")
	if st := lstat(t, p); st.Size != 0 {
		t.Errorf("fifo size %d after use, want 0", st.Size)
	}
	must(t, rename(p, e.path("fifo2")), "rename fifo")
	if st := lstat(t, e.path("fifo2")); fileType(st.Mode) != unix.S_IFIFO {
		t.Errorf("renamed fifo has mode %o", st.Mode)
	}
	must(t, os.Remove(e.path("fifo2")), "unlink fifo")
	checkNames(t, listDir(t, e.dir), nil, "after unlinking the fifo")
}

// checkUnixSocket: binding a unix socket creates a socket entry that clients can connect to
// through the filesystem; it is listed and can be unlinked.
func checkUnixSocket(t *testing.T, e *env) {
	p := e.path("sock")
	addr := p
	if len(addr) >= 100 {
		// sun_path holds 108 bytes; reach long directories through /proc/self/fd.
		d := mustOpen(t, e.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		addr = fmt.Sprintf("/proc/self/fd/%d/sock", fd(d))
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	must(t, err, "bind unix socket")
	l.SetUnlinkOnClose(false)
	defer l.Close()
	st := lstat(t, p)
	if fileType(st.Mode) != unix.S_IFSOCK {
		t.Fatalf("bound socket has mode %o, want a socket", st.Mode)
	}
	checkNames(t, listDir(t, e.dir), []string{"sock"}, "after bind")
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(c, io.LimitReader(c, 5)) // echo five bytes
		accepted <- err
	}()
	c, err := net.Dial("unix", addr)
	must(t, err, "connect to the socket")
	defer c.Close()
	must(t, c.SetDeadline(time.Now().Add(20*time.Second)), "set deadline")
	_, err = c.Write([]byte("hello"))
	must(t, err, "write to the socket")
	got := make([]byte, 5)
	_, err = io.ReadFull(c, got)
	must(t, err, "read from the socket")
	if !bytes.Equal(got, []byte("hello")) {
		t.Errorf("echo %q", got)
	}
	must(t, <-accepted, "server side")
	must(t, os.Remove(p), "unlink socket")
	if exists(t, p) {
		t.Errorf("socket still exists after unlink")
	}
}

// checkDeviceNodes: mknod creates character and block device nodes with the given device
// numbers and modes (root only; the nodes are never opened).
func checkDeviceNodes(t *testing.T, e *env) {
	if e.opts.NoDeviceNodes {
		t.Skip("Options.NoDeviceNodes: the filesystem under test does not support device nodes")
	}
	if os.Geteuid() != 0 {
		t.Skip("creating device nodes needs root")
	}
	umask := processUmask(t)
	cases := []struct {
		name         string
		typ          uint32
		major, minor uint32
	}{
		{"char", unix.S_IFCHR, 1, 3},
		{"block", unix.S_IFBLK, 7, 0},
		{"char-big-minor", unix.S_IFCHR, 240, 1 << 16},
		{"block-big-major", unix.S_IFBLK, 4000, 5},
	}
	for _, c := range cases {
		p := e.path(c.name)
		dev := unix.Mkdev(c.major, c.minor)
		must(t, unix.Mknod(p, c.typ|0o640, int(dev)), "mknod %s", c.name)
		st := lstat(t, p)
		if fileType(st.Mode) != c.typ || st.Mode&0o777 != 0o640&^umask {
			t.Errorf("%s: mode %o, want %o", c.name, st.Mode, c.typ|(0o640&^umask))
		}
		if uint64(st.Rdev) != dev {
			t.Errorf("%s: rdev %d:%d, want %d:%d", c.name,
				unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)), c.major, c.minor)
		}
	}
	checkNames(t, listDir(t, e.dir), []string{"block", "block-big-major", "char", "char-big-minor"}, "device nodes")
}
