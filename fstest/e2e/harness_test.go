package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// The harness's own promises (fstest/cryptfstest), on real mounts: what
// the tests above and the ones to come rely on. Each check would also
// catch the harness leaving a mount or a daemon behind.

// TestHarnessBackground: a background mount with extra flags and a log
// file; the harness knows the daemon, reads its log and stats, and
// Unmount waits for it.
func TestHarnessBackground(t *testing.T) {
	ctx := context.Background()
	logFile := filepath.Join(t.TempDir(), "daemon.log")
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Background: true, FastPath: "kernel-cache",
		LogFile: logFile, Args: []string{"--debug"}})
	if m.PID() <= 0 || m.LogFile != logFile {
		t.Fatalf("background mount: pid %d, log file %q, want a pid and %s", m.PID(), m.LogFile, logFile)
	}
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "f"), []byte("data"), 0o644))
	st, err := m.Status(ctx)
	mustDo(t, err)
	if st.PID != m.PID() || st.Tier != "kernel-cache" {
		t.Errorf("status %+v: want pid %d and the kernel-cache tier", st, m.PID())
	}
	stats, err := m.Stats(ctx)
	mustDo(t, err)
	creates := uint64(0)
	for _, o := range stats.Ops {
		if o.Opcode == "CREATE" {
			creates = o.Daemon
		}
	}
	if creates == 0 {
		t.Errorf("stats %+v: no CREATE after creating a file", stats.Ops)
	}
	if !strings.Contains(m.Log(), `"op":"CREATE"`) {
		t.Errorf("the --debug log file does not show the CREATE:\n%s", m.Log())
	}
	cryptfstest.Unmount(t, m)
	select {
	case <-m.Done():
	default:
		t.Errorf("daemon %d still running after Unmount returned", m.PID())
	}
	if cryptfstest.IsMounted(m.Dir) {
		t.Errorf("%s still mounted after Unmount", m.Dir)
	}
}

// TestHarnessKill: Kill is kill -9 of the daemon; it leaves a dead mount
// (ENOTCONN) for the test to look at, which Close removes; what was
// fsync'ed before reads back on a new mount of the tree.
func TestHarnessKill(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	f, err := os.Create(filepath.Join(m.Dir, "f"))
	mustDo(t, err)
	_, err = f.WriteString("synced")
	mustDo(t, err)
	mustDo(t, f.Sync())
	mustDo(t, f.Close())
	mustDo(t, m.Kill())
	var ee *exec.ExitError
	if err := m.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("daemon exit after Kill: %v, want killed by SIGKILL", err)
	}
	// ENOTCONN once the kernel has torn the connection down. With FUSE
	// over io_uring the daemon's rings hold /dev/fuse open until the
	// kernel has cancelled their commands, after the process is gone: a
	// request sent in between is queued and then failed with ECONNABORTED.
	var st unix.Stat_t
	if err := unix.Stat(m.Dir, &st); !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) {
		t.Errorf("stat of the mount after Kill: %v, want ENOTCONN (or ECONNABORTED)", err)
	}
	if !cryptfstest.IsMounted(m.Dir) {
		t.Errorf("the dead mount is gone after Kill, want it left for the test")
	}
	mustDo(t, m.Close())
	if cryptfstest.IsMounted(m.Dir) {
		t.Errorf("%s still mounted after Close", m.Dir)
	}
	m2 := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: m.Cipher})
	if got, err := os.ReadFile(filepath.Join(m2.Dir, "f")); err != nil || string(got) != "synced" {
		t.Errorf("after kill -9 and a new mount: %q, %v; want the fsync'ed content", got, err)
	}
}

// TestHarnessUnmountBusy: Unmount of a mount with an open file is
// refused with cryptfs unmount's exit code and leaves the daemon serving;
// it works once the file is closed.
func TestHarnessUnmountBusy(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	f, err := os.Create(filepath.Join(m.Dir, "open"))
	mustDo(t, err)
	defer f.Close()
	err = m.Unmount(context.Background())
	if code := cryptfstest.ExitCode(err); code <= 0 {
		t.Fatalf("unmount with an open file: %v (exit code %d), want a refusal", err, code)
	}
	select {
	case <-m.Done():
		t.Fatalf("the daemon exited after a refused unmount")
	default:
	}
	if _, err := f.WriteString("still served"); err != nil {
		t.Errorf("writing to the open file after the refused unmount: %v", err)
	}
	mustDo(t, f.Close())
	cryptfstest.Unmount(t, m)
}

// TestHarnessSecondMount: a second mount on the directory of a running
// one is refused (exit 15), and its failure leaves the first mount alone.
func TestHarnessSecondMount(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "f"), []byte("first"), 0o644))
	_, err := cryptfstest.TryMount(t, nil, cryptfstest.MountOptions{Cipher: m.Cipher, Dir: m.Dir})
	if code := cryptfstest.ExitCode(err); code != 15 {
		t.Errorf("second mount on %s: %v (exit code %d), want exit 15", m.Dir, err, code)
	}
	select {
	case <-m.Done():
		t.Fatalf("the first daemon exited")
	default:
	}
	if got, err := os.ReadFile(filepath.Join(m.Dir, "f")); err != nil || string(got) != "first" {
		t.Errorf("the first mount after the refused second one: %q, %v", got, err)
	}
	cryptfstest.Unmount(t, m)
}

// TestHarnessAbort: Abort frees a mount whose daemon hangs (stopped with
// SIGSTOP): a process waiting on it returns, and neither the mount nor the
// daemon is left.
func TestHarnessAbort(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	mustDo(t, m.Signal(syscall.SIGSTOP))
	stat := exec.Command("stat", filepath.Join(m.Dir, "nothing-here"))
	mustDo(t, stat.Start())
	done := make(chan error, 1)
	go func() { done <- stat.Wait() }()
	select {
	case <-done:
		t.Fatalf("stat returned although the daemon is stopped")
	case <-time.After(300 * time.Millisecond):
	}
	mustDo(t, m.Abort())
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("stat still hangs after Abort")
	}
	select {
	case <-m.Done():
	default:
		t.Errorf("daemon %d still running after Abort", m.PID())
	}
	if cryptfstest.IsMounted(m.Dir) {
		t.Errorf("%s still mounted after Abort", m.Dir)
	}
}

// TestHarnessOtherUser: the CLI as another user (nobody) with its own
// environment (XDG_RUNTIME_DIR): an unprivileged daemon mounts through
// fusermount3, the harness hears its READY=1, status and stats find its
// control socket in the user's runtime directory (from the uid, whatever
// XDG_RUNTIME_DIR says), and it unmounts as that user.
// /dev/fuse is 0600 on these machines: UserFUSE makes it 0666 for the
// test's duration and puts the mode back.
func TestHarnessOtherUser(t *testing.T) {
	const uid, gid = nobodyUID, nobodyGID
	cli, dirs := asNobody(t, "cryptfstest-user-")
	ctx := context.Background()
	_, err := cli.Init(ctx, dirs["cipher"])
	mustDo(t, err)
	m, err := cryptfstest.TryMount(t, cli, cryptfstest.MountOptions{Cipher: dirs["cipher"], Dir: dirs["mnt"]})
	mustDo(t, err)
	st, err := m.Status(ctx)
	mustDo(t, err)
	if st.PID != m.PID() {
		t.Errorf("status as the user: pid %d, want %d", st.PID, m.PID())
	}
	if owner := processUID(t, m.PID()); owner != uid {
		t.Errorf("the daemon runs as uid %d, want %d", owner, uid)
	}
	// The control socket is in the user's runtime directory, which
	// depends on the uid alone (XDG_RUNTIME_DIR is not consulted).
	found := false
	for _, d := range []string{fmt.Sprintf("/run/user/%d/cryptfs", uid), fmt.Sprintf("/tmp/cryptfs-%d", uid)} {
		if _, err := os.Stat(filepath.Join(d, fmt.Sprintf("%d.sock", st.Device))); err == nil {
			found = true
		}
	}
	if !found {
		t.Errorf("no control socket %d.sock in the runtime directory of uid %d", st.Device, uid)
	}
	if _, err := os.Stat(filepath.Join(dirs["run"], "cryptfs")); err == nil {
		t.Errorf("a control directory in XDG_RUNTIME_DIR, which another shell of the user would not find")
	}
	_, err = m.Stats(ctx)
	mustDo(t, err)
	cryptfstest.Unmount(t, m)
	if cryptfstest.IsMounted(m.Dir) {
		t.Errorf("%s still mounted after the user's unmount", m.Dir)
	}
}

// runnableByAll reports whether everyone may execute path: it and every
// directory above it have the x bit for others.
func runnableByAll(path string) bool {
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

// processUID returns the real uid of process pid.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	mustDo(t, err)
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			n, err := strconv.Atoi(f[1])
			mustDo(t, err)
			return n
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return -1
}
