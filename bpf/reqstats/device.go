package reqstats

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DeviceOf returns the device number of the FUSE connection mounted at
// mountpoint, major<<20 | minor as the kernel's fuse tracepoints and
// /sys/fs/fuse/connections name it. It reads /proc/self/mountinfo and never
// touches the mount itself, so it cannot hang on a dead daemon. mountpoint
// is made absolute and cleaned but symlinks are not resolved. When several
// mounts stack on the same point, the topmost counts.
func DeviceOf(mountpoint string) (uint32, error) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return 0, fmt.Errorf("reqstats: device of %s: %w", mountpoint, err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0, fmt.Errorf("reqstats: device of %s: %w", mountpoint, err)
	}
	defer f.Close()
	dev, err := deviceOf(f, abs)
	if err != nil {
		return 0, fmt.Errorf("reqstats: device of %s: %w", mountpoint, err)
	}
	return dev, nil
}

func deviceOf(r io.Reader, mountpoint string) (uint32, error) {
	var (
		found bool
		last  mountinfo
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m, ok := parseMountinfoLine(sc.Text())
		if ok && m.mountpoint == mountpoint {
			found, last = true, m
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read mount table: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("not a mount point")
	}
	if last.fstype != "fuse" && last.fstype != "fuseblk" && !strings.HasPrefix(last.fstype, "fuse.") {
		return 0, fmt.Errorf("mounted file system is %s, not FUSE", last.fstype)
	}
	if last.major >= 1<<12 || last.minor >= 1<<20 {
		return 0, fmt.Errorf("device %d:%d out of range", last.major, last.minor)
	}
	return last.major<<20 | last.minor, nil
}
