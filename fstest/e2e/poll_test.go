package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/fstest"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// processCPU returns the user plus system time of every thread of pid so
// far, from /proc/PID/stat.
func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	mustDo(t, err)
	// The fields after the command name (which may hold spaces) start
	// with the state, field 3; utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: too few fields: %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		mustDo(t, err)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// TestPollIdle: with --poll=adaptive the daemon serves a burst of requests
// from several processes at once, says so in cryptfs status, and then,
// idle, uses no CPU: the reader polls /dev/fuse only for a short window
// after a reply and then sleeps in read(2). A reader that kept polling an
// idle device would use a whole CPU over the 2 s measured here.
func TestPollIdle(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Transport: "dev", Poll: "adaptive", Args: []string{"--fast-path=kernel-cache"}})
	st, err := m.Status(t.Context())
	mustDo(t, err)
	if st.Poll != "adaptive" || !strings.Contains(st.TransportReason, "adaptive polling") {
		t.Fatalf("--poll=adaptive: status says poll %q (%s)", st.Poll, st.TransportReason)
	}
	out, code := cryptfstest.Run(t, "", "status", m.Dir)
	if code != 0 || !strings.Contains(out, "Polling:     adaptive") {
		t.Errorf("cryptfs status does not show the polling (exit code %d):\n%s", code, out)
	}

	// Back-to-back requests from four writers at once grow the window
	// (this process never touches the mount itself: each file is written
	// and read back by a child).
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(m.Dir, fmt.Sprint("w", w))
			script := fmt.Sprintf("mkdir %s && cd %s && for i in $(seq 200); do echo $i > f$i; cat f$i >/dev/null; done && ls | wc -l", dir, dir)
			out, err := exec.Command("sh", "-c", script).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "200" {
				t.Errorf("writer %d: %v: %q", w, err, out)
			}
		}()
	}
	wg.Wait()

	pid := m.PID()
	if pid == 0 {
		t.Fatal("no daemon pid")
	}
	time.Sleep(200 * time.Millisecond) // let the last window close
	before := processCPU(t, pid)
	time.Sleep(2 * time.Second)
	used := processCPU(t, pid) - before
	// Generous: the daemon's own timers (idle checks, the Go runtime's
	// housekeeping) take well under this; a polling loop would take ~2 s.
	if used > 200*time.Millisecond {
		t.Errorf("the idle daemon used %v of CPU in 2 s with --poll=adaptive: the reader keeps polling an idle mount", used)
	}
	t.Logf("idle daemon CPU over 2 s: %v", used)
	cryptfstest.Unmount(t, m)
	if strings.Contains(m.Log(), `"level":"error"`) {
		t.Errorf("the daemon logged errors:\n%s", m.Log())
	}
}

// TestPollSuite runs the POSIX suite on a mount whose reader polls
// /dev/fuse (--poll=adaptive, kernel-cache tier; CRYPTFS_POLL=adaptive
// runs every suite that way), then unmounts it cleanly.
func TestPollSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the polling suite run in -short mode")
	}
	cryptfstest.RequireFUSE(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Transport: "dev", Poll: "adaptive", Args: []string{"--fast-path=kernel-cache", "--allow-other"}})
	fstest.Run(t, m.Dir, cryptfsOptions())
	cryptfstest.Unmount(t, m)
	if strings.Contains(m.Log(), `"level":"error"`) {
		t.Errorf("the daemon logged errors during the suite:\n%s", m.Log())
	}
	fsck(t, m.Cipher, 0)
}

// TestPollNotOverURing: --poll=adaptive with FUSE over io_uring mounts and
// works, and nothing polls: the queue threads sleep on their own CPU and
// the /dev/fuse reader kept for FORGET and INTERRUPT does not poll.
// A bad --poll value is a usage error (exit code 2).
func TestPollNotOverURing(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cipher := cryptfstest.Init(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	mustDo(t, os.Mkdir(mnt, 0o755))
	if _, code := cryptfstest.Run(t, "", "mount", "--poll=always", cipher, mnt); code != 2 {
		t.Errorf("--poll=always: exit code %d, want 2", code)
	}
	cryptfstest.EnableURing(t) // skips where the kernel has no FUSE over io_uring
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Transport: "uring", Poll: "adaptive"})
	st, err := m.Status(t.Context())
	mustDo(t, err)
	if st.Transport != "uring" || st.Poll != "" || strings.Contains(st.TransportReason, "polling") {
		t.Errorf("--transport=uring --poll=adaptive: status says %q (%s), poll %q; want uring and no polling", st.Transport, st.TransportReason, st.Poll)
	}
	out, err := exec.Command("sh", "-c", "echo hello > "+m.Dir+"/f && cat "+m.Dir+"/f").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Errorf("the mount does not work: %v: %q", err, out)
	}
}
