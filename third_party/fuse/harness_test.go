//go:build linux

package fuse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"
)

// The tests never serve a mount from their own process (a Go process that
// opens files on a FUSE mount it serves can deadlock): TestMain re-executes
// the test binary with FUSETEST_SERVE set, and that process mounts memFS,
// prints one "ready" line and then answers commands on stdin until the file
// system is unmounted:
//
//	swap NAME DATA       replace NAME's content, tell the kernel (InvalidateInode)
//	swapquiet NAME DATA  the same without telling the kernel
//	stats                ops per source, "slow" reads waiting and interrupted
//
// Each command is answered with one line of JSON.
func TestMain(m *testing.M) {
	if os.Getenv("FUSETEST_SERVE") != "" {
		os.Exit(serveMain())
	}
	os.Exit(m.Run())
}

// serverOptions are what a test varies in the serving process.
type serverOptions struct {
	Transport string `json:"transport"` // "", "dev", "auto" or "uring"
	Poll      bool   `json:"poll"`      // adaptive polling of /dev/fuse
	Depth     int    `json:"depth"`     // io_uring queue depth (0: the default)

	Env []string `json:"-"` // more environment for the serving process
}

type statsReply struct {
	Ops             map[string]map[string]int `json:"ops"`
	SlowWaiting     int                       `json:"slow_waiting"`
	SlowInterrupted int                       `json:"slow_interrupted"`
	Error           string                    `json:"error,omitempty"`
}

func serveMain() int {
	dir := os.Getenv("FUSETEST_MOUNTPOINT")
	var opts serverOptions
	if err := json.Unmarshal([]byte(os.Getenv("FUSETEST_OPTIONS")), &opts); err != nil {
		fmt.Printf("error bad FUSETEST_OPTIONS: %v\n", err)
		return 2
	}
	fs := newMemFS()
	srv := &server{fs: fs}
	notifier := fuse.NewNotifier()
	cfg := &fuse.MountConfig{FSName: "fusetest", Subtype: "fusetest"}
	if err := configure(cfg, opts); err != nil {
		fmt.Printf("error %v\n", err)
		return 2
	}
	mfs, err := fuse.Mount(dir, fuse.NewServerWithNotifier(notifier, srv), cfg)
	if err != nil {
		fmt.Printf("error mount: %v\n", err)
		return 1
	}
	status, _ := json.Marshal(mountStatus(mfs))
	fmt.Printf("ready %s\n", status)

	go func() {
		in := bufio.NewScanner(os.Stdin)
		out := json.NewEncoder(os.Stdout)
		for in.Scan() {
			f := strings.Fields(in.Text())
			if len(f) == 0 {
				continue
			}
			var reply statsReply
			switch f[0] {
			case "swap", "swapquiet":
				id, ok := fs.swap(f[1], []byte(f[2]))
				switch {
				case !ok:
					reply.Error = "no such file"
				case f[0] == "swap":
					if err := notifier.InvalidateInode(id, 0, 0); err != nil {
						reply.Error = err.Error()
					}
				}
			case "stats":
				reply.Ops = srv.counts.snapshot()
				reply.SlowWaiting = int(fs.slowWaiting.Load())
				reply.SlowInterrupted = int(fs.slowInterrupted.Load())
			default:
				reply.Error = "unknown command"
			}
			out.Encode(reply)
		}
	}()

	if err := mfs.Join(context.Background()); err != nil {
		fmt.Printf("error join: %v\n", err)
		return 1
	}
	return 0
}

// testServer is a running serving process, seen from the test.
type testServer struct {
	t      testing.TB
	dir    string
	cmd    *exec.Cmd
	stdin  *os.File
	out    *bufio.Reader
	status map[string]any // the "ready" line
	exited chan struct{}
	err    error // the process's exit, valid once exited is closed
	mu     sync.Mutex
}

// startServer mounts memFS on a new directory from a new process. It skips
// the test where it cannot run (not root, no /dev/fuse).
func startServer(t testing.TB, opts serverOptions) *testServer {
	t.Helper()
	s, err := launch(t, opts)
	if err != nil {
		t.Fatalf("serving process: %v", err)
	}
	return s
}

// launch starts a serving process; its error is the process's own report
// if it could not mount.
func launch(t testing.TB, opts serverOptions) (*testServer, error) {
	t.Helper()
	requireFUSE(t)
	dir := t.TempDir()
	optJSON, _ := json.Marshal(opts)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FUSETEST_SERVE=1", "FUSETEST_MOUNTPOINT="+dir, "FUSETEST_OPTIONS="+string(optJSON))
	cmd.Env = append(cmd.Env, opts.Env...)
	stdin, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutR, stdout, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	stdout.Close()
	s := &testServer{t: t, dir: dir, cmd: cmd, stdin: stdinW, out: bufio.NewReader(stdoutR), exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.cleanup)

	line, err := s.readLine(10 * time.Second)
	if err != nil {
		return nil, err
	}
	rest, ok := strings.CutPrefix(line, "ready ")
	if !ok {
		return s, errors.New(line)
	}
	if err := json.Unmarshal([]byte(rest), &s.status); err != nil {
		return nil, fmt.Errorf("ready line %q: %v", line, err)
	}
	return s, nil
}

func requireFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
}

func (s *testServer) readLine(timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := s.out.ReadString('\n')
		ch <- result{strings.TrimSpace(l), err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no answer within %v", timeout)
	}
}

// command sends one command and decodes its answer.
func (s *testServer) command(format string, args ...any) statsReply {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := fmt.Fprintf(s.stdin, format+"\n", args...); err != nil {
		s.t.Fatalf("command: %v", err)
	}
	line, err := s.readLine(10 * time.Second)
	if err != nil {
		s.t.Fatalf("command %q: %v", format, err)
	}
	var r statsReply
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		s.t.Fatalf("command %q: answer %q: %v", format, line, err)
	}
	if r.Error != "" {
		s.t.Fatalf("command %q: %s", format, r.Error)
	}
	return r
}

func (s *testServer) stats() statsReply { return s.command("stats") }

func (s *testServer) path(name string) string { return filepath.Join(s.dir, name) }

// unmount unmounts and waits for the serving process to exit.
func (s *testServer) unmount() error {
	if err := unix.Unmount(s.dir, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", s.dir, err)
	}
	return s.wait(10 * time.Second)
}

// wait waits for the serving process to exit and returns how it exited.
func (s *testServer) wait(timeout time.Duration) error {
	select {
	case <-s.exited:
		return s.err
	case <-time.After(timeout):
		return fmt.Errorf("the serving process did not exit within %v", timeout)
	}
}

// connection is the fusectl directory of the mount.
func (s *testServer) connection() (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(s.dir, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("/sys/fs/fuse/connections/%d", unix.Minor(st.Dev)|unix.Major(st.Dev)<<20), nil
}

// abort aborts the connection through fusectl.
func (s *testServer) abort() error {
	conn, err := s.connection()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(conn, "abort"), []byte("1"), 0)
}

// cleanup leaves nothing behind whatever the test did: the mount is aborted
// and detached, the process killed.
func (s *testServer) cleanup() {
	s.stdin.Close()
	if mounted(s.dir) {
		s.abort()
		unix.Unmount(s.dir, unix.MNT_DETACH)
	}
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// mounted reports whether dir is a mount point (from /proc/self/mountinfo).
func mounted(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func opName(op any) string {
	switch op.(type) {
	case *fuseops.LookUpInodeOp:
		return "LOOKUP"
	case *fuseops.GetInodeAttributesOp:
		return "GETATTR"
	case *fuseops.SetInodeAttributesOp:
		return "SETATTR"
	case *fuseops.ForgetInodeOp:
		return "FORGET"
	case *fuseops.BatchForgetOp:
		return "BATCH_FORGET"
	case *fuseops.CreateFileOp:
		return "CREATE"
	case *fuseops.UnlinkOp:
		return "UNLINK"
	case *fuseops.OpenFileOp:
		return "OPEN"
	case *fuseops.ReadFileOp:
		return "READ"
	case *fuseops.WriteFileOp:
		return "WRITE"
	case *fuseops.FlushFileOp:
		return "FLUSH"
	case *fuseops.ReleaseFileHandleOp:
		return "RELEASE"
	case *fuseops.GetXattrOp:
		return "GETXATTR"
	case *fuseops.OpenDirOp:
		return "OPENDIR"
	case *fuseops.ReadDirOp:
		return "READDIR"
	case *fuseops.ReleaseDirHandleOp:
		return "RELEASEDIR"
	case *fuseops.StatFSOp:
		return "STATFS"
	}
	return fmt.Sprintf("%T%v", op, op)
}
