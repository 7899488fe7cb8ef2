package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/bpf/reqstats"
	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/fusefs"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"github.com/cryptfs/cryptfs/meta"
)

func TestParseMode(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{"auto", Mode{Auto: true}, false},
		{"ebpf", Mode{Tier: meta.EBPF}, false},
		{"kernel-cache", Mode{Tier: meta.KernelCache}, false},
		{"off", Mode{Tier: meta.Off}, false},
		{"fast", Mode{}, true},
		{"", Mode{}, true},
	} {
		got, err := ParseMode(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseMode(%q) = %+v, %v", c.in, got, err)
		}
	}
}

// TestMergeStats: upcalls and latency come from the tracepoints when
// there are any (including requests the daemon never saw), else from the
// daemon's counters; the daemon's counts and errors and the program's
// hits are always shown; opcodes come out sorted by name.
func TestMergeStats(t *testing.T) {
	daemon := []fusefs.OpStats{
		{Opcode: fuseop.Lookup, Count: 5, Errors: 1, Hist: []uint64{0, 5}},
		{Opcode: fuseop.Getattr, Count: 2, Hist: []uint64{2}},
	}
	only := mergeStats(daemon, nil, nil)
	if only.Source != "daemon" || len(only.Ops) != 2 || only.Ops[1].Opcode != "LOOKUP" ||
		only.Ops[1].Upcalls != 5 || only.Ops[1].Daemon != 5 || only.Ops[1].Errors != 1 || only.Ops[0].Upcalls != 2 {
		t.Errorf("daemon counters only: %+v", only)
	}
	trace := &reqstats.Snapshot{Ops: map[fuseop.Opcode]reqstats.OpStats{
		fuseop.Lookup: {Sent: 6},
		fuseop.Init:   {Sent: 1},
	}}
	fast := fastpath.Stats{fuseop.Getattr: {Hits: 40, Misses: 2}}
	all := mergeStats(daemon, trace, fast)
	byName := map[string]control.OpFigures{}
	var order []string
	for _, o := range all.Ops {
		byName[o.Opcode] = o
		order = append(order, o.Opcode)
	}
	if all.Source != "tracepoint" {
		t.Errorf("source %q, want tracepoint", all.Source)
	}
	if strings.Join(order, ",") != "GETATTR,INIT,LOOKUP" {
		t.Errorf("opcodes in order %v, want by name", order)
	}
	if l := byName["LOOKUP"]; l.Upcalls != 6 || l.Daemon != 5 {
		t.Errorf("LOOKUP %+v: want 6 upcalls (tracepoint), 5 answered by the daemon", l)
	}
	if g := byName["GETATTR"]; g.Upcalls != 0 || g.Daemon != 2 || g.FastHits != 40 {
		t.Errorf("GETATTR %+v: want no traced upcall, 2 daemon, 40 fast-path hits", g)
	}
	if i := byName["INIT"]; i.Upcalls != 1 || i.Daemon != 0 {
		t.Errorf("INIT %+v: want 1 upcall the daemon did not count", i)
	}
}

// TestSdNotify: with NOTIFY_SOCKET set (a path, or "@" for the abstract
// namespace) the state reaches the socket; without it nothing happens.
func TestSdNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "notify")
		name := path
		if abstract {
			name = "\x00cryptfs-test-" + filepath.Base(filepath.Dir(path))
		}
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		env := name
		if abstract {
			env = "@" + name[1:]
		}
		t.Setenv("NOTIFY_SOCKET", env)
		sdNotify("READY=1\nSTATUS=test")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		c.Close()
		if err != nil || string(buf[:n]) != "READY=1\nSTATUS=test" {
			t.Errorf("abstract=%v: got %q, %v", abstract, buf[:n], err)
		}
	}
	t.Setenv("NOTIFY_SOCKET", "")
	sdNotify("READY=1") // must not fail or block
}

// The end-to-end test runs Serve in a child process (this test binary,
// re-executed): a process must never open files on a FUSE mount it
// serves itself.
const childEnv = "CRYPTFS_DAEMON_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child serves the mount the parent describes in the environment and
// reports readiness on standard output.
func child() int {
	master, err := hex.DecodeString(os.Getenv("CRYPTFS_TEST_KEY"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	mode, err := ParseMode(os.Getenv("CRYPTFS_TEST_TIER"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err = Serve(ctx, Options{
		CipherDir:  os.Getenv("CRYPTFS_TEST_CIPHER"),
		Mountpoint: os.Getenv("CRYPTFS_TEST_MOUNT"),
		Master:     master,
		FastPath:   mode,
		BPFShadow:  os.Getenv("CRYPTFS_TEST_SHADOW") != "",
		ReadOnly:   os.Getenv("CRYPTFS_TEST_RO") != "",
		Log:        zerolog.New(os.Stderr).Level(zerolog.WarnLevel),
		Ready: func(err error) {
			if err != nil {
				fmt.Println("error", err)
			} else {
				fmt.Println("ok")
			}
		},
	})
	if err != nil {
		return 1
	}
	return 0
}

// TestServe mounts through Serve in each tier (ebpf in shadow mode, where
// BPF is available), writes and reads a file through the mount, checks
// status and stats on the control socket and the file offline through
// ciphertree, and unmounts with SIGTERM.
func TestServe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipping: no /dev/fuse: %v", err)
	}
	for _, tier := range []string{"off", "kernel-cache", "ebpf"} {
		t.Run(tier, func(t *testing.T) { testServe(t, tier) })
	}
}

func testServe(t *testing.T, tier string) {
	shadow := tier == "ebpf"
	if shadow {
		fp, err := fastpath.Load()
		if errors.Is(err, fastpath.ErrUnavailable) {
			t.Skipf("skipping: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		fp.Close()
	}
	cipher, mnt := newCipher(t), t.TempDir()
	master := bytes.Repeat([]byte{5}, crypt.KeyLen)
	cmd, exited, stderr, line := startChild(t, tier, cipher, mnt, master)
	if line != "ok" {
		t.Fatalf("daemon: %q; stderr:\n%s", line, stderr.String())
	}

	data := bytes.Repeat([]byte("cryptfs "), 1000)
	if err := os.WriteFile(filepath.Join(mnt, "f"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	dev, err := control.Device(mnt)
	if err != nil {
		t.Fatal(err)
	}
	st, err := control.GetStatus(dev)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != cmd.Process.Pid || st.Tier != tier || st.Device != dev || st.CipherDir != cipher || (shadow && st.BPFProgramID == 0) {
		t.Errorf("status %+v: want pid %d, tier %s, device %d", st, cmd.Process.Pid, tier, dev)
	}
	stats, err := control.GetStats(dev)
	if err != nil {
		t.Fatal(err)
	}
	figures := map[string]control.OpFigures{}
	for _, o := range stats.Ops {
		figures[o.Opcode] = o
	}
	if c := figures["CREATE"]; c.Daemon != 1 || c.Upcalls != 1 {
		t.Errorf("CREATE figures %+v: want 1 upcall answered by the daemon", c)
	}
	if figures["WRITE"].Daemon == 0 {
		t.Errorf("no WRITE counted: %+v", stats)
	}

	// Files created and removed leave the inode table as it was, in every
	// tier: the kernel's FORGETs free them (in the ebpf tier through the
	// withdrawal of rule 4; they used to stay for good).
	sub := filepath.Join(mnt, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprint(i)), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := control.GetStatus(dev); st.Inodes < 100 {
		t.Errorf("%d inodes in the table with 100 files in use, want at least 100", st.Inodes)
	}
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := control.GetStatus(dev)
		if err != nil {
			t.Fatal(err)
		}
		if st.Inodes <= 2 { // the root and f
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d inodes in the table after the 101 created were removed, want 2", st.Inodes)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exit: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not exit after SIGTERM")
	}
	if _, err := mountinfo.At(mnt); err == nil {
		t.Fatal("still mounted after SIGTERM")
	}
	// What the daemon wrote, read offline.
	s, err := crypt.New(master, crypt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Wipe()
	tr, err := ciphertree.Open(cipher, s)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	f, err := tr.OpenFile("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("offline read: %d bytes, %v", len(got), err)
	}
}

// newCipher returns a new cipher directory (just the top directory's IV).
func newCipher(t *testing.T) string {
	t.Helper()
	cipher := t.TempDir()
	dfd, err := unix.Open(cipher, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ciphertree.WriteDirIV(dfd)
	unix.Close(dfd)
	if err != nil {
		t.Fatal(err)
	}
	return cipher
}

// startChild runs Serve in a child process (this test binary) and returns
// once it reported: line is "ok" or "error ...". exited receives its exit.
func startChild(t *testing.T, tier, cipher, mnt string, master []byte, extraEnv ...string) (cmd *exec.Cmd, exited chan error, stderr *lockedBuffer, line string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CRYPTFS_TEST_KEY="+hex.EncodeToString(master),
		"CRYPTFS_TEST_TIER="+tier, "CRYPTFS_TEST_CIPHER="+cipher, "CRYPTFS_TEST_MOUNT="+mnt)
	if tier == "ebpf" {
		cmd.Env = append(cmd.Env, "CRYPTFS_TEST_SHADOW=1")
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	stderr = &lockedBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyLine := make(chan string, 1)
	exited = make(chan error, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		readyLine <- strings.TrimSpace(line)
		io.Copy(io.Discard, r)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if _, err := mountinfo.At(mnt); err == nil {
			if dev, err := mountinfo.FUSEDevice(mnt); err == nil {
				mountinfo.AbortFUSE(dev)
			}
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		cmd.Process.Kill()
	})
	select {
	case line = <-readyLine:
	case <-time.After(60 * time.Second):
		t.Fatalf("the daemon did not report; stderr:\n%s", stderr.String())
	}
	return cmd, exited, stderr, line
}

// TestServeOneDaemonPerTree: the daemon's own lock refuses a second
// daemon of the same cipher tree (the command line's probe aside), naming
// the first mount and its pid, and nothing is mounted for it; two
// read-only daemons share a tree.
func TestServeOneDaemonPerTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting needs root")
	}
	cipher, mnt1, mnt2 := newCipher(t), t.TempDir(), t.TempDir()
	master := bytes.Repeat([]byte{7}, crypt.KeyLen)
	first, _, stderr, line := startChild(t, "off", cipher, mnt1, master)
	if line != "ok" {
		t.Fatalf("first daemon: %q\n%s", line, stderr.String())
	}
	for _, ro := range []string{"", "1"} {
		_, exited, _, line := startChild(t, "off", cipher, mnt2, master, "CRYPTFS_TEST_RO="+ro)
		want := fmt.Sprintf("already mounted at %s (daemon pid %d)", mnt1, first.Process.Pid)
		if !strings.HasPrefix(line, "error") || !strings.Contains(line, want) {
			t.Errorf("second daemon (read-only %q): %q, want an error saying %q", ro, line, want)
		}
		<-exited
		if _, err := mountinfo.At(mnt2); err == nil {
			t.Errorf("the refused daemon left a mount at %s", mnt2)
		}
	}
	first.Process.Signal(syscall.SIGTERM)

	// Read-only daemons share.
	cipher = newCipher(t)
	mnt1, mnt2 = t.TempDir(), t.TempDir()
	for _, mnt := range []string{mnt1, mnt2} {
		if _, _, stderr, line := startChild(t, "off", cipher, mnt, master, "CRYPTFS_TEST_RO=1"); line != "ok" {
			t.Errorf("read-only daemon at %s: %q\n%s", mnt, line, stderr.String())
		}
	}
	_, exited, _, line := startChild(t, "off", cipher, t.TempDir(), master)
	if !strings.Contains(line, "read-only") || !strings.Contains(line, mnt1) || !strings.Contains(line, mnt2) {
		t.Errorf("a writer beside two readers: %q, want a refusal naming both read-only mounts", line)
	}
	<-exited
}

// lockedBuffer is a bytes.Buffer the child's stderr copier and the test
// may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
