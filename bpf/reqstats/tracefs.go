package reqstats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// tracefsDir returns a directory where tracefs is mounted, mounting it at
// /sys/kernel/tracing when none is (cilium/ebpf's tracepoint attach needs
// it and looks for it the same way).
func tracefsDir() (string, error) {
	if dir, err := findTracefs(); err != nil || dir != "" {
		return dir, err
	}
	const dir = "/sys/kernel/tracing"
	if err := unix.Mount("nodev", dir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil &&
		!errors.Is(err, unix.EBUSY) {
		return "", fmt.Errorf("no tracefs mounted, and mount tracefs on %s: %w", dir, err)
	}
	return dir, nil
}

// findTracefs returns the mount point of a tracefs, or of a debugfs with a
// tracing directory; "" if there is none.
func findTracefs() (string, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return "", err
	}
	var debugfs string
	for _, m := range ms {
		switch m.FSType {
		case "tracefs":
			return m.Mountpoint, nil
		case "debugfs":
			if _, err := os.Stat(filepath.Join(m.Mountpoint, "tracing", "events")); err == nil && debugfs == "" {
				debugfs = filepath.Join(m.Mountpoint, "tracing")
			}
		}
	}
	return debugfs, nil
}
