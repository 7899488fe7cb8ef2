package mountinfo

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// Unmount unmounts the FUSE mount at mnt: with umount(2) as root, else
// with fusermount3 -u. lazy detaches it now even when busy (the kernel
// finishes when the last file is closed).
func Unmount(mnt string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		if err := unix.Unmount(mnt, flags); err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
		return nil
	}
	argv := []string{"-u"}
	if lazy {
		argv = append(argv, "-z")
	}
	out, err := exec.Command("fusermount3", append(argv, mnt)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u %s: %v: %s", mnt, err, strings.TrimSpace(string(out)))
	}
	return nil
}
