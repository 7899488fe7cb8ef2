package mountinfo

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrBusy means the mount is in use (a process has its working directory,
// an open file or a mapping in it, or something is mounted inside it), so
// a plain unmount was refused and nothing changed.
var ErrBusy = errors.New("the mount is busy")

// Unmount unmounts the FUSE mount at the absolute path mnt: with
// umount(2) as root, else with fusermount3 -u. lazy detaches it now even
// when busy (the kernel finishes when the last file is closed). Without
// lazy, a busy mount gives an error wrapping ErrBusy and stays as it was.
//
// As root the path is resolved without following symlinks (see
// OpenNoSymlinks: the parent directory is opened that way, the last
// component is unmounted through that descriptor with UMOUNT_NOFOLLOW),
// so a user who controls a component of it cannot redirect the unmount.
func Unmount(mnt string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := unix.UMOUNT_NOFOLLOW
		if lazy {
			flags |= unix.MNT_DETACH
		}
		return umountNoFollow(mnt, flags)
	}
	argv := []string{"-u"}
	if lazy {
		argv = append(argv, "-z")
	}
	out, err := exec.Command("fusermount3", append(argv, "--", mnt)...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "Device or resource busy") {
			return fmt.Errorf("unmount %s: %w", mnt, ErrBusy)
		}
		return fmt.Errorf("fusermount3 -u %s: %v: %s", mnt, err, msg)
	}
	return nil
}

// umountNoFollow is umount2(mnt, flags) with mnt's parent resolved
// without symlinks.
func umountNoFollow(mnt string, flags int) error {
	if !filepath.IsAbs(mnt) || filepath.Clean(mnt) == "/" {
		return fmt.Errorf("unmount %s: need an absolute path other than /", mnt)
	}
	mnt = filepath.Clean(mnt)
	dir, base := filepath.Split(mnt)
	pfd, err := OpenNoSymlinks(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	defer unix.Close(pfd)
	for {
		err = unix.Unmount(fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base), flags)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("unmount %s: %w", mnt, ErrBusy)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("unmount %s: %w", mnt, ErrNotMounted)
	}
	return fmt.Errorf("unmount %s: %w", mnt, err)
}
