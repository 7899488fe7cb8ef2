package mountinfo

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenNoSymlinks: a path with a symlink anywhere is refused, with
// openat2 and with the component walk of older kernels alike; a plain
// path opens the directory itself.
func TestOpenNoSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real", "sub")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub", filepath.Join(dir, "real", "last")); err != nil {
		t.Fatal(err)
	}
	var want unix.Stat_t
	if err := unix.Stat(real, &want); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func(string, int) (int, error){"openat2": OpenNoSymlinks, "walk": openWalk} {
		fd, err := open(real, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			t.Errorf("%s: %s: %v", name, real, err)
		} else {
			var st unix.Stat_t
			unix.Fstat(fd, &st)
			unix.Close(fd)
			if st.Ino != want.Ino {
				t.Errorf("%s opened inode %d, want %d", name, st.Ino, want.Ino)
			}
		}
		for _, p := range []string{filepath.Join(dir, "link", "sub"), filepath.Join(dir, "real", "last")} {
			if fd, err := open(p, unix.O_PATH|unix.O_DIRECTORY); !errors.Is(err, ErrSymlink) {
				unix.Close(fd)
				t.Errorf("%s: %s: %v, want ErrSymlink", name, p, err)
			}
		}
	}
}

// testMount mounts a tmpfs on a new directory for the test (root only)
// and returns the directory and its mount.
func testMount(t *testing.T) (string, Mount) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting needs root")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("cryptfs-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for {
			if _, err := At(dir); err != nil {
				return
			}
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	})
	m, err := At(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// TestUnmountBusy: a plain unmount of a mount that processes hold (a
// working directory, an open file) is refused with ErrBusy and changes
// nothing; once they are gone it succeeds, and another one says
// ErrNotMounted. (Naming the holders is package holders' test.)
func TestUnmountBusy(t *testing.T) {
	dir, _ := testMount(t)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(script, cwd string) *exec.Cmd {
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = cwd
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	cwd := start("exec sleep 100", dir)
	open := start("exec 3<"+filepath.Join(dir, "f")+"; exec sleep 100", "/")
	// Once a shell has exec'd sleep, its cwd and descriptor are in place.
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range []*exec.Cmd{cwd, open} {
		for {
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(c.Process.Pid) + "/comm")
			if strings.TrimSpace(string(comm)) == "sleep" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d never ran sleep", c.Process.Pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	for _, holder := range []*exec.Cmd{cwd, open} {
		if err := Unmount(dir, false); !errors.Is(err, ErrBusy) {
			t.Errorf("unmount of a busy mount: %v, want ErrBusy", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
			t.Errorf("after the refused unmount: %v", err)
		}
		holder.Process.Kill()
		holder.Wait()
	}
	if err := Unmount(dir, false); err != nil {
		t.Errorf("unmount once nothing holds it: %v", err)
	}
	if _, err := At(dir); err == nil {
		t.Errorf("still mounted")
	}
	if err := Unmount(dir, false); !errors.Is(err, ErrNotMounted) {
		t.Errorf("unmount of what is not mounted: %v, want ErrNotMounted", err)
	}
}

// TestUnmountNoSymlinks: as root, an unmount through a path with a
// symlink in it is refused and the mount stays.
func TestUnmountNoSymlinks(t *testing.T) {
	dir, _ := testMount(t)
	link := filepath.Join(filepath.Dir(filepath.Dir(dir)), "link-"+filepath.Base(filepath.Dir(dir)))
	if err := os.Symlink(filepath.Dir(dir), link); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(link)
	final := filepath.Join(t.TempDir(), "final")
	if err := os.Symlink(dir, final); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(link, "mnt"), final} {
		if err := Unmount(p, false); !errors.Is(err, ErrSymlink) && !errors.Is(err, ErrNotMounted) {
			t.Errorf("unmount %s: %v, want a refusal", p, err)
		}
		if _, err := At(dir); err != nil {
			t.Fatalf("unmount through %s removed the mount", p)
		}
	}
	if err := Unmount(dir, false); err != nil {
		t.Errorf("unmount by the real path: %v", err)
	}
}
