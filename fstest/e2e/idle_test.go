package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// TestIdleLock: `mount --idle` unmounts a mount that served no request for
// the idle time and that nothing holds, and never one that something
// holds: an open file, a working directory, a memory mapping, or requests
// still coming in. Once the holder lets go the mount goes, the daemon
// exits, and the log says so; while it is held, the log says why the
// unmount was refused.
func TestIdleLock(t *testing.T) {
	const idle = time.Second
	for _, c := range []struct {
		name string
		// hold keeps the mount busy and returns the function that lets
		// go; nil holds nothing.
		hold    func(t *testing.T, mnt string) (release func())
		refusal string // in the log while held
	}{
		{name: "nothing"},
		{name: "open file", refusal: "open file", hold: func(t *testing.T, mnt string) func() {
			f, err := os.Open(filepath.Join(mnt, "file"))
			mustDo(t, err)
			return func() { f.Close() }
		}},
		{name: "cwd", refusal: "cwd", hold: func(t *testing.T, mnt string) func() {
			cmd := exec.Command("sleep", "300")
			cmd.Dir = mnt
			mustDo(t, cmd.Start())
			return func() {
				cmd.Process.Kill()
				cmd.Wait()
			}
		}},
		{name: "mmap", refusal: "memory map", hold: func(t *testing.T, mnt string) func() {
			f, err := os.Open(filepath.Join(mnt, "file"))
			mustDo(t, err)
			mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
			f.Close() // the mapping alone holds the mount
			mustDo(t, err)
			return func() { unix.Munmap(mem) }
		}},
		{name: "requests", hold: func(t *testing.T, mnt string) func() {
			// No reference, but a request every 200 ms (--fast-path=off:
			// every stat reaches the daemon).
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
						os.Stat(filepath.Join(mnt, "file"))
					}
				}
			}()
			return func() {
				close(stop)
				<-done
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--idle=" + idle.String(), "--fast-path=off"}})
			mustDo(t, os.WriteFile(filepath.Join(m.Dir, "file"), []byte("content"), 0o644))
			if c.hold != nil {
				release := c.hold(t, m.Dir)
				time.Sleep(5 * idle)
				if !cryptfstest.IsMounted(m.Dir) {
					release()
					t.Fatalf("the idle lock unmounted a mount held by %s\n%s", c.name, m.Log())
				}
				if c.refusal != "" && !strings.Contains(m.Log(), "idle lock: idle, but the unmount was refused") {
					t.Errorf("no refusal logged while held by %s:\n%s", c.name, m.Log())
				}
				if c.refusal != "" && !strings.Contains(m.Log(), c.refusal) {
					t.Errorf("the refusal does not name the %s:\n%s", c.refusal, m.Log())
				}
				release()
			}
			select {
			case <-m.Done():
			case <-time.After(15 * time.Second):
				t.Fatalf("still mounted 15 s after the last use (idle %v)\n%s", idle, m.Log())
			}
			if cryptfstest.IsMounted(m.Dir) {
				t.Errorf("the daemon exited, but %s is still mounted", m.Dir)
			}
			if err := m.Err(); err != nil {
				t.Errorf("the daemon exited with %v\n%s", err, m.Log())
			}
			if !strings.Contains(m.Log(), "idle lock: no request and nothing open for the idle time; unmounted") {
				t.Errorf("the idle unmount is not logged:\n%s", m.Log())
			}
		})
	}
}
