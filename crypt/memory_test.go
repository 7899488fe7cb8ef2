package crypt

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/internal/harden"
)

// The memory test runs a Suite in a child process (this test binary,
// re-executed) and looks for the master key and every subkey in the
// child's memory while it is stopped: after the Suite was made and used,
// and after Wipe. SECURITY.md's "Key handling" states the same counts.

const memChildEnv = "CRYPT_MEMORY_TEST_MASTER"

// memChildren maps the environment variable that makes this test binary
// a memory test's child to that child's function (the master key in hex).
var memChildren = map[string]func(masterHex string) int{
	memChildEnv:        memChild,
	memSignalsChildEnv: memSignalsChild,
}

func init() {
	for env, child := range memChildren {
		if m, ok := os.LookupEnv(env); ok {
			os.Exit(child(m))
		}
	}
}

// memChild makes a Suite from the master key in hex, uses every key,
// stops itself (SIGSTOP) for the parent to look, wipes the Suite, and
// stops again.
func memChild(masterHex string) int {
	master, err := hex.DecodeString(masterHex)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	s, err := New(master, Options{})
	var rev *Reverse
	if err == nil {
		rev, err = NewReverse(master, s)
	}
	Wipe(master)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	var id FileID
	iv := DirIV{1, 2, 3}
	for i := range 2000 {
		name := fmt.Sprintf("file-%d-%s", i, strings.Repeat("n", i%200))
		enc, err := s.EncryptName(iv, name)
		if err == nil {
			_, err = s.DecryptName(iv, enc)
		}
		block := make([]byte, BlockSize)
		var stored []byte
		if err == nil {
			stored, err = s.SealBlock(nil, block, id, uint64(i))
		}
		if err == nil {
			_, err = s.OpenBlock(nil, stored, id, uint64(i))
		}
		var xn string
		if err == nil {
			xn, err = s.EncryptXattrName("user.attr" + strconv.Itoa(i))
		}
		if err == nil {
			_, err = s.DecryptXattrName(xn)
		}
		var sealed []byte
		if err == nil {
			sealed, err = s.SealXattrValue(xn, []byte("value"))
		}
		if err == nil {
			_, err = s.OpenXattrValue(xn, sealed)
		}
		var target string
		if err == nil {
			target, err = s.EncryptSymlink("../target")
		}
		if err == nil {
			_, err = s.DecryptSymlink(target)
		}
		if err == nil {
			_, err = rev.SealBlock(nil, block, id, uint64(i))
		}
		if err == nil {
			_, err = rev.EncryptSymlink(name, "../target")
		}
		if err == nil {
			_, err = rev.SealXattrValue(name, xn, []byte("value"))
		}
		if err == nil {
			_, err = rev.DirIV(name)
		}
		if err == nil {
			_, err = rev.Inode(0, 8, name)
		}
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
	}
	// The root's file ID and directory IV, last: keyed BLAKE2b of an empty
	// message, whose key block x/crypto copies to the stack (reverse.go,
	// prf). Nothing runs after them that would overwrite that stack.
	if _, err := rev.DirIV(""); err != nil {
		fmt.Println("error", err)
		return 1
	}
	if _, err := rev.FileID(""); err != nil {
		fmt.Println("error", err)
		return 1
	}
	runtime.GC()
	fmt.Println("used")
	syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	rev.Wipe()
	s.Wipe()
	runtime.GC()
	fmt.Println("wiped")
	syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	return 0
}

// waitStopped waits until process pid is in the stopped state.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.LastIndexByte(string(data), ')'); i > 0 && strings.HasPrefix(string(data[i+1:]), " T") {
			return
		}
	}
	t.Fatalf("process %d did not stop", pid)
}

// TestKeysInMemory: while a Suite and a Reverse are in use, the master key
// is nowhere in the process and each subkey they hold is there exactly
// once, in a keyring (a mapping of its own, excluded from core dumps,
// locked where RLIMIT_MEMLOCK allows); the key-check subkey is not there.
// After Wipe, none of them is anywhere.
func TestKeysInMemory(t *testing.T) {
	master := make([]byte, KeyLen)
	for i := range master {
		master[i] = byte(0x5a ^ i*7)
	}
	needles := [][]byte{master}
	names := []string{"master"}
	for _, p := range Purposes() {
		k, err := DeriveSubkey(master, p)
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, k)
		names = append(names, p)
	}
	child := startMemChild(t, memChildEnv, master)
	for _, phase := range []string{"used", "wiped"} {
		child.await(phase)
		hits := child.find(needles)
		count := make([]int, len(needles))
		for _, h := range hits {
			count[h.Needle]++
			if phase == "used" && !h.Mapping.HasFlag("dd") {
				t.Errorf("%s at %#x in %s (flags %v): outside the keyring", names[h.Needle], h.Addr, h.Mapping.Path, h.Mapping.Flags)
			}
		}
		for i, n := range count {
			want := 0
			if phase == "used" && i > 0 && names[i] != purposeKeyCheck {
				want = 1
			}
			if n != want {
				t.Errorf("%s: %s found %d times in the child's memory, want %d", phase, names[i], n, want)
			}
		}
		t.Logf("%s: %v", phase, count)
		child.resume()
	}
	child.wait()
}

// memChildProc is a child process of this test binary that runs a memory
// test's child function (chosen by an environment variable) and stops
// itself at each phase for the parent to look.
type memChildProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

// startMemChild starts the child, with the master key in hex in env.
func startMemChild(t *testing.T, env string, master []byte) *memChildProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+hex.EncodeToString(master))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &memChildProc{t: t, cmd: cmd, lines: bufio.NewScanner(out)}
}

// await reads the child's next line, which must be phase, and waits until
// the child has stopped itself.
func (c *memChildProc) await(phase string) {
	c.t.Helper()
	if !c.lines.Scan() || c.lines.Text() != phase {
		c.t.Fatalf("child: %q, want %q", c.lines.Text(), phase)
	}
	waitStopped(c.t, c.cmd.Process.Pid)
}

// find looks for needles in the stopped child's memory; it skips the test
// when that memory cannot be read.
func (c *memChildProc) find(needles [][]byte) []harden.Hit {
	c.t.Helper()
	hits, err := harden.FindInProcess(c.cmd.Process.Pid, needles)
	if err != nil {
		c.t.Skipf("skipping: cannot read the child's memory: %v", err)
	}
	return hits
}

func (c *memChildProc) resume() { c.cmd.Process.Signal(syscall.SIGCONT) }

// wait waits for the child to exit and fails the test if it did not exit 0.
func (c *memChildProc) wait() {
	c.t.Helper()
	if err := c.cmd.Wait(); err != nil {
		c.t.Fatalf("child: %v", err)
	}
}
