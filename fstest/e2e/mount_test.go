package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/control"
)

// End-to-end behaviour of `cryptfs mount` and `cryptfs unmount` that the
// testscript specifications cannot show because they need a real mount.

// cleanupMount makes sure nothing stays mounted at mnt, whatever happened.
func cleanupMount(t *testing.T, mnt string) {
	t.Cleanup(func() {
		for i := 0; i < 3 && cryptfstest.IsMounted(mnt); i++ {
			exec.Command(cryptfstest.Binary(t), "unmount", mnt).Run()
			if cryptfstest.IsMounted(mnt) {
				cryptfstest.Detach(mnt)
			}
		}
	})
}

// TestBackgroundMount: mount returns once the mount answers, with the
// daemon in the background; status describes it; a second mount there is
// refused with exit 15; unmount waits until the daemon is gone.
func TestBackgroundMount(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cipher := cryptfstest.Init(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	mustDo(t, os.Mkdir(mnt, 0o755))
	cleanupMount(t, mnt)
	log := filepath.Join(t.TempDir(), "daemon.log")
	if out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", "mount", "--insecure-kdf", "--log-file", log, cipher, mnt); code != 0 {
		t.Fatalf("mount: exit %d\n%s", code, out)
	}
	// No waiting: the mount must answer as soon as the command returned.
	var st unix.Statfs_t
	mustDo(t, unix.Statfs(mnt, &st))
	if st.Type != 0x65735546 {
		t.Fatalf("%s is not a FUSE mount right after mount returned (f_type %#x)", mnt, st.Type)
	}
	mustDo(t, os.WriteFile(filepath.Join(mnt, "f"), []byte("data"), 0o644))

	out, code := cryptfstest.Run(t, "", "status", "--json", mnt)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	var status control.Status
	mustDo(t, json.Unmarshal([]byte(out), &status))
	if status.PID <= 0 || !status.Running() || status.Tier != "kernel-cache" || status.LogFile != log {
		t.Errorf("status %+v: want a pid, the kernel-cache tier (auto on a stock kernel) and the log file", status)
	}

	if out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", "mount", "--insecure-kdf", cipher, mnt); code != 15 {
		t.Errorf("mounting over a mount: exit %d, want 15\n%s", code, out)
	}
	if out, code := cryptfstest.Run(t, "", "unmount", mnt); code != 0 {
		t.Fatalf("unmount: exit %d\n%s", code, out)
	}
	if cryptfstest.IsMounted(mnt) {
		t.Fatalf("%s still mounted after unmount", mnt)
	}
	if status.Running() {
		t.Errorf("daemon %d still running after unmount returned", status.PID)
	}
	if out, code := cryptfstest.Run(t, "", "unmount", mnt); code != 17 {
		t.Errorf("unmounting what is not mounted: exit %d, want 17\n%s", code, out)
	}
}

// TestMountErrors: a wrong password is exit 10 and nothing gets mounted.
func TestMountErrors(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cipher := cryptfstest.Init(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	mustDo(t, os.Mkdir(mnt, 0o755))
	cleanupMount(t, mnt)
	if out, code := cryptfstest.Run(t, "not the password\n", "mount", "--insecure-kdf", cipher, mnt); code != 10 {
		t.Errorf("wrong password: exit %d, want 10\n%s", code, out)
	}
	if cryptfstest.IsMounted(mnt) {
		t.Errorf("mounted despite a wrong password")
	}
}

// TestReadOnlyMount: --ro serves reads and refuses every change with EROFS.
func TestReadOnlyMount(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "f"), []byte("data"), 0o644))
	cipher := m.Cipher
	cryptfstest.Unmount(t, m)
	ro := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--ro"}})
	if b, err := os.ReadFile(filepath.Join(ro.Dir, "f")); err != nil || string(b) != "data" {
		t.Errorf("read on a read-only mount: %q %v", b, err)
	}
	for what, err := range map[string]error{
		"create": os.WriteFile(filepath.Join(ro.Dir, "g"), nil, 0o644),
		"mkdir":  os.Mkdir(filepath.Join(ro.Dir, "d"), 0o755),
		"chmod":  os.Chmod(filepath.Join(ro.Dir, "f"), 0o600),
		"remove": os.Remove(filepath.Join(ro.Dir, "f")),
		"xattr":  unix.Setxattr(filepath.Join(ro.Dir, "f"), "user.x", []byte("y"), 0),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on a read-only mount: %v, want EROFS", what, err)
		}
	}
}

// TestPasswordSources: --extpass and --recovery-key unlock a mount.
func TestPasswordSources(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	dir := filepath.Join(t.TempDir(), "cipher")
	out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", "init", "--insecure-kdf", dir)
	if code != 0 {
		t.Fatalf("init: %s", out)
	}
	var key string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.TrimSpace(l); strings.Count(f, "-") >= 6 && !strings.Contains(f, " ") {
			key = f
		}
	}
	if key == "" {
		t.Fatalf("no recovery key in the init output:\n%s", out)
	}
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"extpass", "", []string{"--extpass", "echo '" + cryptfstest.Password + "'"}},
		{"recovery-key", key + "\n", []string{"--recovery-key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mnt := filepath.Join(t.TempDir(), "mnt")
			mustDo(t, os.Mkdir(mnt, 0o755))
			cleanupMount(t, mnt)
			args := append(append([]string{"mount", "--insecure-kdf"}, c.args...), dir, mnt)
			if out, code := cryptfstest.Run(t, c.stdin, args...); code != 0 {
				t.Fatalf("mount: exit %d\n%s", code, out)
			}
			if _, err := os.ReadDir(mnt); err != nil {
				t.Error(err)
			}
			if out, code := cryptfstest.Run(t, "", "unmount", mnt); code != 0 {
				t.Fatalf("unmount: %s", out)
			}
		})
	}
}

// TestSignalUnmounts: SIGINT to a foreground daemon unmounts cleanly.
func TestSignalUnmounts(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	m.Signal(syscall.SIGINT)
	select {
	case <-m.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not exit on SIGINT")
	}
	if err := m.Err(); err != nil {
		t.Errorf("daemon exit after SIGINT: %v\n%s", err, m.Log())
	}
	if cryptfstest.IsMounted(m.Dir) {
		t.Errorf("still mounted after SIGINT")
	}
}

// TestUndecryptableNamesSkipped: entries a sync tool added to the cipher
// tree (conflict copies, stray files) are left out of listings with one
// warning each; the rest of the directory lists normally.
func TestUndecryptableNamesSkipped(t *testing.T) {
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "real"), []byte("x"), 0o644))
	cryptfstest.Unmount(t, m)
	junk := []string{"notes (conflicted copy 2026-11-27).txt", strings.Repeat("A", 96), "longname.AAAA"}
	for _, j := range junk {
		mustDo(t, os.WriteFile(filepath.Join(cipher, j), []byte("junk"), 0o644))
	}
	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	for i := 0; i < 2; i++ {
		entries, err := os.ReadDir(m.Dir)
		if err != nil {
			t.Fatalf("listing a directory with undecryptable entries: %v", err)
		}
		if len(entries) != 1 || entries[0].Name() != "real" {
			t.Errorf("listing: %v, want just real", entries)
		}
	}
	cryptfstest.Unmount(t, m)
	for _, j := range junk {
		if n := strings.Count(m.Log(), j); n != 1 {
			t.Errorf("%d log lines name %q, want 1 (a warning)\n%s", n, j, m.Log())
		}
	}
}
