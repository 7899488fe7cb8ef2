package mountinfo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrSymlink means a path given to a privileged operation has a symlink
// in it: as root, cryptfs refuses them, since a user who controls one
// component could redirect a mount or an unmount elsewhere.
var ErrSymlink = errors.New("the path has a symlink in it; as root, cryptfs follows none (give the real path, e.g. $(realpath PATH))")

// OpenNoSymlinks opens the absolute path without following a symlink in
// any of its components (openat2 RESOLVE_NO_SYMLINKS; on kernels without
// openat2, one component at a time with O_NOFOLLOW). flags are open(2)
// flags, typically O_PATH|O_DIRECTORY; O_CLOEXEC is added. A symlink
// anywhere gives an error wrapping ErrSymlink.
func OpenNoSymlinks(path string, flags int) (int, error) {
	if !filepath.IsAbs(path) {
		return -1, fmt.Errorf("open %s: not an absolute path", path)
	}
	path = filepath.Clean(path)
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ELOOP):
			return -1, fmt.Errorf("%s: %w", path, ErrSymlink)
		case errors.Is(err, unix.ENOSYS):
			return openWalk(path, flags)
		}
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
}

// openWalk is OpenNoSymlinks without openat2: every component is opened
// relative to the previous one with O_NOFOLLOW.
func openWalk(path string, flags int) (int, error) {
	dfd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if path == "/" {
		parts = nil
	}
	for i, p := range parts {
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			f = flags | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		next, err := unix.Openat(dfd, p, f, 0)
		symlink := errors.Is(err, unix.ELOOP) || (err != nil && isSymlinkAt(dfd, p))
		unix.Close(dfd)
		if symlink {
			return -1, fmt.Errorf("%s: %w", path, ErrSymlink)
		}
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", path, err)
		}
		dfd = next
	}
	if len(parts) == 0 {
		unix.Close(dfd)
		return unix.Open("/", flags|unix.O_CLOEXEC, 0)
	}
	return dfd, nil
}

func isSymlinkAt(dfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// MountID returns the ID of the mount the open descriptor fd is on (the
// mnt_id of /proc/self/fdinfo), without asking its file system anything.
func MountID(fd int) (int, error) {
	return FdinfoMountID(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
}

// FdinfoMountID reads the mnt_id line of a /proc/PID/fdinfo/N file: the
// ID of the mount that descriptor is on.
func FdinfoMountID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "mnt_id:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return -1, fmt.Errorf("%s: no mnt_id", path)
}
