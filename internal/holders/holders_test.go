package holders

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFind: cwd, an open file and a mapping inside a mount are named, by
// mount ID and device, and a process in the directory underneath the
// mount (opened before it) is not.
func TestFind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	// Underneath: a process whose cwd is the directory the mount covers.
	under := exec.Command("sleep", "60")
	under.Dir = mnt
	if err := under.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { under.Process.Kill(); under.Wait() }()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("skipping: mount tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(mnt, "f"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}

	target, err := Lookup(mnt)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Find(target)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Holders) != 0 {
		t.Fatalf("holders of an unused mount: %v", r)
	}

	inside := exec.Command("sleep", "60")
	inside.Dir = mnt
	if err := inside.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { inside.Process.Kill(); inside.Wait() }()
	f, err := os.Open(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := os.Open(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(m.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)

	r, err = Find(target)
	if err != nil {
		t.Fatal(err)
	}
	got := r.String()
	for _, want := range []string{
		"pid " + strconv.Itoa(inside.Process.Pid) + " (sleep, uid 0): cwd",
		"pid " + strconv.Itoa(os.Getpid()) + " (",
		": open file " + filepath.Join(mnt, "f"),
		": mapped " + filepath.Join(mnt, "f"),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("holders lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "pid "+strconv.Itoa(under.Process.Pid)+" ") {
		t.Errorf("the process underneath the mount is named:\n%s", got)
	}
}
