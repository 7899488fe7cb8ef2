package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// TestMain removes the cryptfs binary the tests built, and fails the run
// if a daemon of the binary under test outlived the tests. System
// directories that the home tests create on the way (systemDirs) and that
// did not exist before the run are removed when empty, with a line saying
// so: each test removes what it created, but a home migration or session
// process that outlives its test can create them again.
func TestMain(m *testing.M) {
	before := daemons()
	var absent []string
	for _, d := range systemDirs {
		if _, err := os.Lstat(d); err != nil {
			absent = append(absent, d)
		}
	}
	code := m.Run()
	for i := len(absent) - 1; i >= 0; i-- {
		if err := os.Remove(absent[i]); err == nil {
			fmt.Fprintf(os.Stderr, "e2e: removed %s, left behind by a test\n", absent[i])
		}
	}
	for pid, cmdline := range daemons() {
		if _, ok := before[pid]; !ok {
			fmt.Fprintf(os.Stderr, "FAIL: a cryptfs daemon outlived the tests: pid %d: %s\n", pid, cmdline)
			code = 1
		}
	}
	cryptfstest.RemoveBinary()
	os.Exit(code)
}

// daemons returns the processes running $CRYPTFS_BIN (the binary under
// test, as make test sets it), by pid, with their command line; none when
// it is not set.
func daemons() map[int]string {
	out := map[int]string{}
	bin := os.Getenv("CRYPTFS_BIN")
	if bin == "" {
		return out
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return out
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == bin {
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			out[pid] = string(cmdline)
		}
	}
	return out
}

// systemDirs are the directories outside the tests' own temporary ones
// that cryptfs creates for home directories, outermost first.
var systemDirs = []string{"/etc/cryptfs", "/etc/cryptfs/home", "/home/.cryptfs", "/home/.cryptfs/.migrations",
	"/run/cryptfs", "/run/cryptfs/sessions", "/run/cryptfs/migrate"}
