package daemon

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/fusefs"
)

// mountDevice mounts a FUSE file system at dir with mount(2) on a /dev/fuse
// descriptor this process opens and keeps, so that it can attach the
// fast-path program to the connection (an ioctl on that descriptor). Serve
// it with fuse.Mount("/dev/fd/N", ...); the mount options of o go into the
// mount data here, because jacobsa/fuse does not mount a /dev/fd/N path
// itself. Needs CAP_SYS_ADMIN.
func mountDevice(dir string, o fusefs.MountOptions) (*os.File, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	dev := os.NewFile(uintptr(fd), "/dev/fuse")
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,default_permissions", fd, os.Getuid(), os.Getgid())
	if o.AllowOther {
		data += ",allow_other"
	}
	flags := uintptr(unix.MS_NODEV | unix.MS_NOSUID)
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(o.Source, dir, "fuse.cryptfs", flags, data); err != nil {
		dev.Close()
		return nil, fmt.Errorf("mount(2) %s: %w", dir, err)
	}
	return dev, nil
}
