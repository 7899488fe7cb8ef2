package daemon

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/fusefs"
)

// OpenDevice opens /dev/fuse for MountDevice. The descriptor is close-on-
// exec; hand it to a daemon explicitly (exec.Cmd.ExtraFiles).
func OpenDevice() (*os.File, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/fuse"), nil
}

// MountDevice mounts a cryptfs FUSE file system at dir on the /dev/fuse
// descriptor dev (OpenDevice) for the user uid (group gid): mount(2) with
// user_id=uid,group_id=gid, so the kernel lets that user (and, with
// o.AllowOther, everyone) use the mount and lets that user unmount it with
// fusermount3. A daemon, which may run as that user, serves dev as
// Options.Device; the caller closes its own copy once the daemon has one:
// the connection ends when the last copy is closed. Until a daemon answers,
// processes that use the mount wait.
//
// This is how root mounts a user's home directory: no fusermount3, no
// change of /dev/fuse's mode. dir may be a /proc/self/fd/N path of a
// directory the caller opened and checked (mount(2) follows that link to
// the directory itself, not to whatever its path names by then). Needs
// CAP_SYS_ADMIN.
func MountDevice(dev *os.File, dir string, uid, gid int, o fusefs.MountOptions) error {
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,default_permissions", dev.Fd(), uid, gid)
	if o.AllowOther {
		data += ",allow_other"
	}
	flags := uintptr(unix.MS_NODEV | unix.MS_NOSUID)
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(o.Source, dir, "fuse.cryptfs", flags, data); err != nil {
		return fmt.Errorf("mount(2) %s: %w", dir, err)
	}
	return nil
}

// device returns the /dev/fuse descriptor serveTier serves: Options.Device
// (mounted by someone else, e.g. root for this user), or one this process
// mounts at o.Mountpoint itself (the ebpf tier, which attaches its program
// to the descriptor).
func (o *Options) device(target string, mopts fusefs.MountOptions) (*os.File, error) {
	if o.Device != nil {
		return o.Device, nil
	}
	return mountDevice(target, mopts)
}

// attachTo attaches the fast-path program to the connection of fd when the
// tier attaches one (the ebpf tier on a kernel with the hook); otherwise it
// does nothing.
func (t *tierChoice) attachTo(fd int) error {
	if !t.attach {
		return nil
	}
	return t.fp.Attach(fd)
}
