package config

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// readFile reads the config file at path, at most maxFileLen+1 bytes.
// Only a regular file is opened: the path is first opened O_PATH (which
// opens nothing: no FIFO wait, no device driver), its type checked, and
// only then that very inode is opened through /proc/self/fd, with
// O_NONBLOCK and O_NOCTTY as a second guard. Anything else (a FIFO, a
// device node, a socket, a directory) is refused with ErrCorrupt instead
// of blocking the mount or fsck forever. Symlinks are followed: --config
// may name a link the user made.
func readFile(path string) ([]byte, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%w: %s is not a regular file (mode %#o)", ErrCorrupt, path, st.Mode&unix.S_IFMT)
	}
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(pfd), os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileLen+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}
