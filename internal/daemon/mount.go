package daemon

import (
	"os"

	"github.com/cryptfs/cryptfs/internal/fusefs"
)

// mountDevice mounts a FUSE file system at dir with mount(2) on a /dev/fuse
// descriptor this process opens and keeps, so that it can attach the
// fast-path program to the connection (an ioctl on that descriptor). Serve
// it with fuse.Mount("/dev/fd/N", ...); the mount options of o go into the
// mount data here, because jacobsa/fuse does not mount a /dev/fd/N path
// itself. Needs CAP_SYS_ADMIN.
func mountDevice(dir string, o fusefs.MountOptions) (*os.File, error) {
	dev, err := OpenDevice()
	if err != nil {
		return nil, err
	}
	if err := MountDevice(dev, dir, os.Getuid(), os.Getgid(), o); err != nil {
		dev.Close()
		return nil, err
	}
	return dev, nil
}
