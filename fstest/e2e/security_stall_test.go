package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// hungFUSE mounts a FUSE file system at dir whose daemon never answers
// (not even INIT): every access below dir waits, as on a hung network
// file system. t.Cleanup aborts its connection (the waiters get
// ENOTCONN) and detaches it.
func hungFUSE(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	mustDo(t, err)
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("hung", dir, "fuse.hung", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatalf("mount a hung FUSE file system: %v", err)
	}
	t.Cleanup(func() {
		if dev, err := mountinfo.FUSEDevice(dir); err == nil {
			mountinfo.AbortFUSE(dev)
		}
		unix.Unmount(dir, unix.MNT_DETACH)
		unix.Close(fd)
	})
}

// TestStalledLowerDoesNotBlockMount: a request the daemon serves on the
// goroutine that reads requests (a LOOKUP with nothing else in flight)
// and that stalls in the lower file system (here a lower directory that is
// a hung FUSE mount, as a hung NFS server would be) must not keep every
// other request waiting: after a short while another reader serves them.
func TestStalledLowerDoesNotBlockMount(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "hang"), 0o755))
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "other"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "other", "g"), []byte("answered"), 0o644))
	cryptfstest.Unmount(t, m)

	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
	hungFUSE(t, lowerPathOf(t, cipher, "hang")) // cleaned up before the mount
	stuck := make(chan error, 1)
	go func() {
		_, err := os.Stat(filepath.Join(m.Dir, "hang", "x"))
		stuck <- err
	}()
	select {
	case err := <-stuck:
		t.Fatalf("stat below the hung lower directory returned: %v; the test needs it to hang", err)
	case <-time.After(300 * time.Millisecond):
	}
	start := time.Now()
	var got []byte
	err := inTime(t, 10*time.Second, "read other/g while a lookup is stalled", func() error {
		var err error
		got, err = os.ReadFile(filepath.Join(m.Dir, "other", "g"))
		if err == nil {
			err = os.WriteFile(filepath.Join(m.Dir, "other", "h"), []byte("new"), 0o644)
		}
		return err
	})
	if err != nil || string(got) != "answered" {
		t.Fatalf("read other/g: %q, %v", got, err)
	}
	t.Logf("answered %v after the stall began", time.Since(start))
	select {
	case err := <-stuck:
		t.Fatalf("the stalled stat returned early: %v", err)
	default:
	}
}
