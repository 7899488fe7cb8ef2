package mountinfo

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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

// TestHolders finds a process by its working directory, one by an open
// file and one by a memory mapping inside a mount, and none elsewhere.
func TestHolders(t *testing.T) {
	dir, m := testMount(t)
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
	var mapped *exec.Cmd
	if _, err := exec.LookPath("python3"); err == nil {
		mapped = start(`exec python3 -c 'import mmap,sys,time; f=open(sys.argv[1],"rb"); m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ); f.close(); print("ok",flush=True); time.sleep(100)' `+filepath.Join(dir, "f"), "/")
	}
	outside := start("exec sleep 100", "/")
	var hs []Holder
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		hs, _, err = Holders([]Mount{m})
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]string{}
		for _, h := range hs {
			got[h.PID] += h.What + " " + h.Path + ";"
		}
		ok := strings.Contains(got[cwd.Process.Pid], "cwd "+dir) &&
			strings.Contains(got[open.Process.Pid], "open file "+filepath.Join(dir, "f")) &&
			(mapped == nil || strings.Contains(got[mapped.Process.Pid], "memory map "+filepath.Join(dir, "f")))
		if ok {
			if got[outside.Process.Pid] != "" {
				t.Errorf("a process outside the mount is listed: %s", got[outside.Process.Pid])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holders %v: want the cwd, open file and mapping processes", hs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if mapped == nil {
		t.Log("python3 missing: the memory map case was not checked")
	}

	// Busy: a plain unmount is refused and changes nothing.
	if err := Unmount(dir, false); !errors.Is(err, ErrBusy) {
		t.Errorf("unmount of a busy mount: %v, want ErrBusy", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
		t.Errorf("after the refused unmount: %v", err)
	}
	for _, c := range []*exec.Cmd{cwd, open, mapped} {
		if c != nil {
			c.Process.Kill()
			c.Wait()
		}
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
