package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// attrs gives the restored entry at path (open as fd, or -1) the owner,
// mode and times of n: owner first (chown clears set-id bits), times last.
func (r *restorer) attrs(n ciphertree.Node, path string, fd int) error {
	st := &n.Stat
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if r.o.Owners {
		var err error
		if fd >= 0 {
			err = unix.Fchown(fd, int(st.Uid), int(st.Gid))
		} else {
			err = unix.Lchown(path, int(st.Uid), int(st.Gid))
		}
		if err != nil {
			return fmt.Errorf("%s: chown: %w", n.Path, err)
		}
	}
	if !isLink {
		var err error
		if fd >= 0 {
			err = unix.Fchmod(fd, st.Mode&0o7777)
		} else {
			err = unix.Chmod(path, st.Mode&0o7777)
		}
		if err != nil {
			return fmt.Errorf("%s: chmod: %w", n.Path, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	var err error
	if fd >= 0 {
		err = unix.UtimesNanoAt(unix.AT_FDCWD, ciphertree.ProcFd(fd), ts, 0)
	} else {
		err = unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("%s: set times: %w", n.Path, err)
	}
	return nil
}

// setXattrs sets the decrypted user attributes xs with set. An attribute
// that does not decrypt is an authentication failure of the file.
func setXattrs(plain, dst string, xs []ciphertree.Xattr, set func(name string, value []byte) error) error {
	for _, x := range xs {
		switch {
		case x.NameErr != nil:
			return fmt.Errorf("%s: extended attribute %q: %w", plain, x.Lower, x.NameErr)
		case x.ValueErr != nil:
			return fmt.Errorf("%s: extended attribute %s: %w", plain, x.Name, x.ValueErr)
		}
		if err := set(x.Name, x.Value); err != nil {
			return fmt.Errorf("%s: set extended attribute %s on %s: %w", plain, x.Name, dst, err)
		}
	}
	return nil
}

// syncfs makes everything written to the file system of directory dir
// durable.
func syncfs(dir string) error {
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	return unix.Syncfs(d)
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	return unix.Fsync(d)
}

// renameNoReplace renames old to new unless new exists.
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL { // a file system without RENAME_NOREPLACE
		var st unix.Stat_t
		if unix.Lstat(new, &st) == nil {
			return fmt.Errorf("%s: %w", new, ErrExists)
		}
		err = unix.Rename(old, new)
	}
	if err == unix.EEXIST {
		return fmt.Errorf("%s appeared during the restore: %w", new, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", old, new, err)
	}
	return nil
}
