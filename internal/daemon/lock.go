package daemon

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"github.com/cryptfs/cryptfs/internal/treelock"
)

// lockTree takes the cipher tree's lock for the daemon's life (package
// treelock): exclusive, or shared for a read-only mount. As root the
// cipher directory's path is resolved without following symlinks, and the
// daemon then serves exactly the directory it locked (Lock.Dir).
func lockTree(o Options) (*treelock.Lock, error) {
	return treelock.Acquire(o.CipherDir, treelock.Options{Shared: o.ReadOnly, NoSymlinks: os.Geteuid() == 0})
}

// mountTarget returns the path to give mount(2) for the mountpoint and a
// function that releases it. As root it is /proc/self/fd/N of the
// mountpoint opened without following symlinks, so that a user who
// controls a component of the path cannot redirect the mount; otherwise
// (fusermount3 mounts for us, and checks the path itself) the path.
func mountTarget(mnt string) (string, func(), error) {
	if os.Geteuid() != 0 {
		return mnt, func() {}, nil
	}
	fd, err := mountinfo.OpenNoSymlinks(mnt, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", nil, fmt.Errorf("mountpoint: %w", err)
	}
	release := func() {
		if fd >= 0 {
			unix.Close(fd)
			fd = -1
		}
	}
	return fmt.Sprintf("/proc/self/fd/%d", fd), release, nil
}
