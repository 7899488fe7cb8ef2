package home

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProcessesSkipsZombies: a process that has exited but is not reaped
// yet (on a system whose init does not reap orphans such processes stay)
// does not count as the user's: migrate would refuse a user with none
// running. A live process of the same uid counts.
func TestProcessesSkipsZombies(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	defer dead.Wait()
	live := exec.Command("sleep", "30")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	// Wait until the first child has exited (its status says Z).
	for deadline := time.Now().Add(10 * time.Second); ; {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(dead.Process.Pid) + "/status")
		if err == nil && isZombie(string(st)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child did not become a zombie: %v %q", err, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	procs, err := Processes(os.Getuid(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var sawLive bool
	for _, p := range procs {
		switch p.PID {
		case dead.Process.Pid:
			t.Errorf("the zombie %d is listed as %s", p.PID, p)
		case live.Process.Pid:
			sawLive = strings.Contains(p.Comm, "sleep")
		}
	}
	if !sawLive {
		t.Errorf("the live child %d is not listed", live.Process.Pid)
	}
}
