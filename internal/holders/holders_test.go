package holders

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// scanEnv makes the test binary a helper that prints At(its value) as
// JSON and exits (TestUnreadable runs it as another user).
const scanEnv = "HOLDERS_TEST_SCAN"

func TestMain(m *testing.M) {
	if mnt := os.Getenv(scanEnv); mnt != "" {
		r, err := At(mnt)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(r)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mountTmpfs mounts a tmpfs at a new directory that every user may reach
// (root only) and returns its path; the mount goes when the test ends.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a tmpfs needs root")
	}
	base, err := os.MkdirTemp("", "holders-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	return mnt
}

// mount mounts a tmpfs at dir until the test ends.
func mount(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount("holders-test", dir, "tmpfs", 0, "size=64m,mode=0777"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// start starts cmd and kills it when the test ends.
func start(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// startIn runs the shell script in dir until the test ends, and waits
// until it has exec'd sleep (its descriptors and cwd are then in place).
func startIn(t *testing.T, dir, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	start(t, cmd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
		if strings.TrimSpace(string(comm)) == "sleep" {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never ran sleep", script)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFind: each way a process holds a mount is named (working
// directory, executable, open file, memory mapping), by mount ID and
// device, also inside a mount stacked in it; a process in the directory
// underneath the mount (there before it) and one elsewhere are not.
func TestFind(t *testing.T) {
	mnt := mountTmpfs(t)
	under := startIn(t, mnt, "exec sleep 100")
	mount(t, mnt)
	f := filepath.Join(mnt, "f")
	if err := os.WriteFile(f, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}

	r, err := At(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Holders) != 0 || len(r.Submounts) != 0 || r.Mount.Mountpoint != mnt {
		t.Fatalf("holders of an unused mount: %+v", r)
	}
	// (Even root may be unable to read a process with capabilities it
	// lacks, such as a container's init: Describe then says so.)
	if d := Describe(mnt); strings.Contains(d, "pid ") || strings.Contains(d, "a mount inside") {
		t.Errorf("Describe of an unused mount: %q", d)
	}

	cwd := startIn(t, mnt, "exec sleep 100")
	open := startIn(t, "/", "exec 3<"+f+"; exec sleep 100")
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(mnt, "sleep")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(exe, "100")
	run.Dir = "/"
	start(t, run)
	// This process maps the file and closes it: the mapping alone holds.
	m, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(m.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	sub := filepath.Join(mnt, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, sub)
	inSub := startIn(t, sub, "exec sleep 100")
	outside := startIn(t, "/", "exec sleep 100")

	r, err = At(mnt)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int][]string{}
	for _, h := range r.Holders {
		got[h.PID] = append(got[h.PID], h.What+" "+h.Path)
		if h.UID != 0 {
			t.Errorf("%v: uid %d, want 0", h, h.UID)
		}
	}
	for _, want := range []struct {
		pid  int
		what string
	}{
		{cwd.Process.Pid, "cwd " + mnt},
		{open.Process.Pid, "open file " + f},
		{run.Process.Pid, "executable " + exe},
		{run.Process.Pid, "memory map " + exe},
		{os.Getpid(), "memory map " + f},
		{inSub.Process.Pid, "cwd " + sub},
	} {
		if !slices.Contains(got[want.pid], want.what) {
			t.Errorf("pid %d: holds %q, want %q", want.pid, got[want.pid], want.what)
		}
	}
	for _, p := range []*exec.Cmd{under, outside} {
		if hs := got[p.Process.Pid]; hs != nil {
			t.Errorf("pid %d does not hold the mount, but is named: %q", p.Process.Pid, hs)
		}
	}
	if !slices.IsSortedFunc(r.Holders, func(a, b Holder) int { return a.PID - b.PID }) {
		t.Errorf("holders not ordered by pid: %v", r.Holders)
	}
	if len(r.Submounts) != 1 || r.Submounts[0].Mountpoint != sub {
		t.Errorf("submounts %+v, want %s", r.Submounts, sub)
	}
	s := r.String()
	for _, want := range []string{
		fmt.Sprintf("pid %d (sleep, uid 0): cwd %s", cwd.Process.Pid, mnt),
		fmt.Sprintf("pid %d (sleep, uid 0): open file %s", open.Process.Pid, f),
		"a mount inside it: " + sub + " (tmpfs)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	if d := Describe(mnt); strings.Contains(d, "\n") || !strings.Contains(d, "; a mount inside it: "+sub) {
		t.Errorf("Describe: %q, want one line naming the submount", d)
	}
}

// TestUnreadable: a scan by a user who may not read other users'
// processes counts them in Unreadable instead of naming or missing them
// silently, and still names the user's own process.
func TestUnreadable(t *testing.T) {
	mnt := mountTmpfs(t)
	mount(t, mnt)
	startIn(t, mnt, "exec sleep 100") // root's: unreadable to the helper

	// The helper is this test binary, copied where nobody can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	helper := filepath.Join(filepath.Dir(mnt), "holders.test")
	dst, err := os.OpenFile(helper, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helper)
	cmd.Dir = mnt // the helper holds the mount itself
	cmd.Env = []string{scanEnv + "=" + mnt}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the helper as uid 65534: %v\n%s", err, out)
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Unreadable == 0 {
		t.Errorf("uid 65534 found no unreadable process: %+v", r)
	}
	if len(r.Holders) != 1 || r.Holders[0].UID != 65534 || r.Holders[0].What != "cwd" || r.Holders[0].Path != mnt {
		t.Errorf("uid 65534 sees holders %v, want just its own cwd", r.Holders)
	}
	if !strings.Contains(r.String(), " processes not inspected: no permission") {
		t.Errorf("String() does not count the unreadable processes:\n%s", r.String())
	}
}
