package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// hungFUSE mounts a FUSE file system at dir whose daemon never answers
// (not even INIT): every access below dir waits, as on a hung network
// file system. The returned function (also run by t.Cleanup) aborts its
// connection (the waiters get ENOTCONN) and detaches it.
func hungFUSE(t *testing.T, dir string) (release func()) {
	t.Helper()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	mustDo(t, err)
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("hung", dir, "fuse.hung", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatalf("mount a hung FUSE file system: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if dev, err := mountinfo.FUSEDevice(dir); err == nil {
				mountinfo.AbortFUSE(dev)
			}
			unix.Unmount(dir, unix.MNT_DETACH)
			unix.Close(fd)
		})
	}
	t.Cleanup(release)
	return release
}

// TestStalledLowerDoesNotBlockMount: a request the daemon serves on the
// goroutine that reads requests (a LOOKUP with nothing else in flight)
// and that stalls in the lower file system (here a lower directory that is
// a hung FUSE mount, as a hung NFS server would be) must not keep every
// other request waiting: after a short while another reader serves them.
// Once the stall ends, the mount serves every request again.
//
// The stalled stat runs on CPU 0 and the other requests on CPU 1: with
// FUSE over io_uring (CRYPTFS_TRANSPORT=uring) each CPU has a queue read
// by one goroutine, which no other can take over, so the promise there is
// that a stall holds up the requests of its CPU only; and the queue of the
// stalled CPU serves again once the stall ends.
func TestStalledLowerDoesNotBlockMount(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	if runtime.NumCPU() < 2 {
		t.Skip("skipping: needs two CPUs (the stalled request on one, the others on another)")
	}
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "hang"), 0o755))
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "other"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "other", "g"), []byte("answered"), 0o644))
	cryptfstest.Unmount(t, m)

	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
	release := hungFUSE(t, lowerPathOf(t, cipher, "hang")) // cleaned up before the mount
	stuck := make(chan error, 1)
	go func() {
		stuck <- onCPU(0, func() error {
			_, err := os.Stat(filepath.Join(m.Dir, "hang", "x"))
			return err
		})
	}()
	select {
	case err := <-stuck:
		t.Fatalf("stat below the hung lower directory returned: %v; the test needs it to hang", err)
	case <-time.After(300 * time.Millisecond):
	}
	start := time.Now()
	var got []byte
	err := inTime(t, 10*time.Second, "read other/g while a lookup is stalled", func() error {
		return onCPU(1, func() error {
			var err error
			got, err = os.ReadFile(filepath.Join(m.Dir, "other", "g"))
			if err == nil {
				err = os.WriteFile(filepath.Join(m.Dir, "other", "h"), []byte("new"), 0o644)
			}
			return err
		})
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

	// The stall ends (the hung lower file system goes away): the stalled
	// stat returns, and both CPUs' requests are served again.
	release()
	if err := inTime(t, 10*time.Second, "the stalled stat, after the stall ended", func() error { return <-stuck }); err == nil {
		t.Errorf("stat below the aborted lower directory succeeded")
	}
	for cpu := range 2 {
		err := inTime(t, 10*time.Second, "a read after the stall ended", func() error {
			return onCPU(cpu, func() error {
				var err error
				got, err = os.ReadFile(filepath.Join(m.Dir, "other", "h"))
				return err
			})
		})
		if err != nil || string(got) != "new" {
			t.Errorf("read other/h on CPU %d after the stall ended: %q, %v", cpu, got, err)
		}
	}
}
