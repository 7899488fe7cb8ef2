package reversefs

import (
	"context"
	"strings"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// xattrSizeMax is the largest attribute value Linux passes (XATTR_SIZE_MAX).
const xattrSizeMax = 64 << 10

// Extended attributes: a plaintext file's or directory's user.*
// attributes appear under their encrypted names (crypt.EncryptXattrName)
// with values sealed under synthetic nonces (crypt.Reverse.SealXattrValue),
// as forward mode stores them. Other namespaces are not part of the view
// (EOPNOTSUPP, as forward mode answers), nor are names longer than forward
// mode can store (crypt.MaxXattrName) or values that would not fit in an
// attribute once sealed.

// xattrNode returns the view path of a node that can have attributes in
// the view: a plaintext regular file or directory.
func (fs *FS) xattrNode(id fuseops.InodeID) (string, bool, error) {
	key, err := fs.key(id)
	if err != nil {
		return "", false, err
	}
	switch key.class {
	case crypt.InodeClassOf(unix.S_IFREG), crypt.InodeClassOf(unix.S_IFDIR):
		return key.path, true, nil
	}
	return "", false, nil
}

// plainXattrs calls fn with each user.* attribute name of view path p.
func (fs *FS) plainXattrs(p string, fn func(proc, name string) error) error {
	fd, err := fs.open(p, unix.O_PATH)
	if err != nil {
		return errno(err)
	}
	defer unix.Close(fd)
	proc := ciphertree.ProcFd(fd)
	size, err := unix.Listxattr(proc, nil)
	for {
		if err != nil {
			return errno(err)
		}
		buf := make([]byte, size)
		var n int
		n, err = unix.Listxattr(proc, buf)
		if err == unix.ERANGE { // grew since we asked
			size, err = unix.Listxattr(proc, nil)
			continue
		}
		if err != nil {
			return errno(err)
		}
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if strings.HasPrefix(name, crypt.XattrPrefix) && len(name) > len(crypt.XattrPrefix) {
				if err := fn(proc, name); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// ListXattr lists the encrypted names of a node's user.* attributes.
func (fs *FS) ListXattr(_ context.Context, op *fuseops.ListXattrOp) error {
	p, ok, err := fs.xattrNode(op.Inode)
	if err != nil || !ok {
		return err
	}
	var list []byte
	err = fs.plainXattrs(p, func(_, name string) error {
		lower, err := fs.s.EncryptXattrName(name)
		if err != nil {
			return nil // too long for forward mode: not in the view
		}
		list = append(append(list, lower...), 0)
		return nil
	})
	if err != nil {
		return err
	}
	op.BytesRead, err = reply(op.Dst, list)
	return err
}

// GetXattr returns the sealed value of an encrypted attribute name.
func (fs *FS) GetXattr(_ context.Context, op *fuseops.GetXattrOp) error {
	if !strings.HasPrefix(op.Name, crypt.XattrPrefix) {
		return syscall.EOPNOTSUPP
	}
	p, ok, err := fs.xattrNode(op.Inode)
	if err != nil {
		return err
	}
	if !ok {
		return syscall.ENODATA
	}
	name, err := fs.s.DecryptXattrName(op.Name)
	if err != nil {
		return syscall.ENODATA
	}
	fd, err := fs.open(p, unix.O_PATH)
	if err != nil {
		return errno(err)
	}
	value, err := ciphertree.Getxattr(ciphertree.ProcFd(fd), name)
	unix.Close(fd)
	if err != nil {
		return errno(err)
	}
	if len(value)+crypt.BlockOverhead > xattrSizeMax {
		return syscall.E2BIG
	}
	sealed, err := fs.rev.SealXattrValue(p, op.Name, value)
	if err != nil {
		return errno(err)
	}
	op.BytesRead, err = reply(op.Dst, sealed)
	return err
}

// reply answers LISTXATTR or GETXATTR with v in dst: its size only when
// dst is empty (the caller asks how big a buffer to pass), ERANGE when
// dst is too small.
func reply(dst, v []byte) (int, error) {
	switch {
	case len(dst) == 0:
		return len(v), nil
	case len(dst) < len(v):
		return 0, syscall.ERANGE
	}
	return copy(dst, v), nil
}
