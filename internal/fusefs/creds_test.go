package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/meta"
)

// TestWithFSIDs: an entry made under withFSIDs belongs to the given uid and
// gid (the directory's group in a set-group-ID directory), even in a
// directory only root may write and with a set-group-ID bit for a group the
// thread is not in; afterwards the thread is back to fsuid 0, fsgid 0 and
// its capabilities, and an error from the creation is returned as it is.
func TestWithFSIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: switching file system ids needs root")
	}
	f := newTestFS(t, meta.KernelCache, nil, 0)
	dir := t.TempDir() // 0700 root: the user could not create here
	sgid := filepath.Join(dir, "sgid")
	must(t, os.Mkdir(sgid, 0o700))
	must(t, os.Chown(sgid, 0, 4321))
	must(t, unix.Chmod(sgid, 0o2700))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := capGet()
	must(t, err)
	for _, c := range []struct {
		path     string
		mode     uint32
		uid, gid uint32
	}{
		{filepath.Join(dir, "f"), 0o2755, 1234, 5678},
		{filepath.Join(sgid, "g"), 0o644, 1234, 4321},
	} {
		err := f.withFSIDs(1234, 5678, func() error {
			fd, err := unix.Open(c.path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, c.mode)
			if err == nil {
				unix.Close(fd)
			}
			return err
		})
		must(t, err)
		var st unix.Stat_t
		must(t, unix.Lstat(c.path, &st))
		if st.Uid != c.uid || st.Gid != c.gid || st.Mode&0o7777 != c.mode {
			t.Errorf("%s: %d:%d mode %o, want %d:%d mode %o", c.path, st.Uid, st.Gid, st.Mode&0o7777, c.uid, c.gid, c.mode)
		}
		if u, _ := unix.SetfsuidRetUid(-1); u != 0 {
			t.Errorf("fsuid %d after withFSIDs, want 0", u)
		}
		if g, _ := unix.SetfsgidRetGid(-1); g != 0 {
			t.Errorf("fsgid %d after withFSIDs, want 0", g)
		}
		if after, err := capGet(); err != nil || after != before {
			t.Errorf("capabilities %+v after withFSIDs, want %+v (%v)", after, before, err)
		}
	}
	err = f.withFSIDs(1234, 5678, func() error { return unix.Mkdir(filepath.Join(dir, "f"), 0o755) })
	if !errors.Is(err, unix.EEXIST) {
		t.Errorf("a failing creation: %v, want EEXIST", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
