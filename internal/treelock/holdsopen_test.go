package treelock

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHoldsOpen: /proc/locks names inodes by number only, so a holder
// counts only while it is alive and has a descriptor on the inode itself,
// not on a removed directory that had the same number.
func TestHoldsOpen(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "tree")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	inodes := []unix.Stat_t{st}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	self := os.Getpid()
	if !holdsOpen(self, inodes) {
		t.Errorf("a process with the directory open does not hold it")
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if holdsOpen(self, inodes) {
		t.Errorf("a descriptor on the removed directory (\"(deleted)\") counts for its inode number")
	}
	if holdsOpen(1<<22+7, inodes) { // above pid_max's default
		t.Errorf("a process that does not exist holds it")
	}

	// A zombie (exited, not reaped) holds nothing.
	z := exec.Command("true")
	if err := z.Start(); err != nil {
		t.Fatal(err)
	}
	defer z.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(z.Process.Pid) + "/stat")
		if err == nil && strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child did not become a zombie: %v %q", err, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if holdsOpen(z.Process.Pid, inodes) {
		t.Errorf("a zombie holds it")
	}
}
