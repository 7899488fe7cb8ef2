package control

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Where runtime directories live; tests of this package point them at a
// temporary directory.
var roots = struct {
	run     string // root's: run/cryptfs
	runUser string // a user's: runUser/<uid>/cryptfs when that exists
	tmp     string // a user's otherwise: tmp/cryptfs-<uid>
}{"/run", "/run/user", "/tmp"}

// runtimeDirs returns where the daemons of uid may keep their sockets, in
// the order RuntimeDir tries them: /run/cryptfs for root; for a user
// /run/user/<uid>/cryptfs (when /run/user/<uid> exists) and
// /tmp/cryptfs-<uid>. They depend on the uid alone, never on the
// environment (XDG_RUNTIME_DIR, TMPDIR), so that every shell of the user
// and root find the same socket.
func runtimeDirs(uid int) []string {
	if uid == 0 {
		return []string{filepath.Join(roots.run, "cryptfs")}
	}
	return []string{
		filepath.Join(roots.runUser, strconv.Itoa(uid), "cryptfs"),
		filepath.Join(roots.tmp, "cryptfs-"+strconv.Itoa(uid)),
	}
}

// RuntimeDir returns the runtime directory of this process's user (its
// effective uid), creating it if needed, for the daemon's control socket
// and default log file: /run/cryptfs for root; /run/user/<uid>/cryptfs
// when /run/user/<uid> is a directory (not a symlink) of the user's with
// mode 0700; /tmp/cryptfs-<uid> otherwise. Each directory is created with
// mkdir (never through an existing path) and then checked with lstat: a
// directory, not a symlink, owned by the user, mode 0700. A directory that
// fails the check (one another user created first, to read the log or to
// impersonate the daemon) is refused with what to do about it.
func RuntimeDir() (string, error) {
	uid := os.Geteuid()
	dirs := runtimeDirs(uid)
	if uid != 0 {
		if checkDir(filepath.Dir(dirs[0]), uid) != nil {
			dirs = dirs[1:] // no private /run/user/<uid>
		}
	}
	dir := dirs[0]
	if uid == 0 {
		// A minimal system (an initramfs) may have no /run yet; it is
		// root's own to make.
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create the runtime directory %s: %w", dir, err)
	}
	if err := checkDir(dir, uid); err != nil {
		return "", fmt.Errorf("refusing the runtime directory: %w; it holds the daemon's control socket and log, so it must be yours alone: remove it (as its owner or root) and mount again", err)
	}
	return dir, nil
}

// checkDir requires path to be a directory, not a symlink, owned by uid,
// with mode 0700.
func checkDir(path string, uid int) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var problems []string
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		problems = append(problems, "a symlink")
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		problems = append(problems, "not a directory")
	}
	if int(st.Uid) != uid {
		problems = append(problems, fmt.Sprintf("owned by uid %d, not %d", st.Uid, uid))
	}
	if st.Mode&0o7777 != 0o700 && st.Mode&unix.S_IFMT != unix.S_IFLNK {
		problems = append(problems, fmt.Sprintf("mode %04o, not 0700", st.Mode&0o7777))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s is %s", path, join(problems))
	}
	return nil
}

func join(s []string) string {
	switch len(s) {
	case 1:
		return s[0]
	case 2:
		return s[0] + " and " + s[1]
	}
	out := ""
	for i, x := range s {
		if i == len(s)-1 {
			out += "and " + x
		} else {
			out += x + ", "
		}
	}
	return out
}

// OpenLog opens (creating, mode 0600) the log file at path for appending:
// never through a symlink as its last component (O_NOFOLLOW), and only a
// regular file owned by this process's user, so a file another user
// planted cannot receive the log.
func OpenLog(path string) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o600)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("open log file %s: it is a symlink; refusing to follow it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open log file %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open log file %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() {
		unix.Close(fd)
		return nil, fmt.Errorf("open log file %s: not a regular file of uid %d (uid %d, mode %o); refusing to write the log to it", path, os.Geteuid(), st.Uid, st.Mode)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}
