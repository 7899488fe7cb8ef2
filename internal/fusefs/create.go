package fusefs

import (
	"context"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// creation is what MkDir, MkNode, CreateFile and CreateSymlink share:
// the parent locked, the lower name chosen and the sidecar of a long name
// written.
type creation struct {
	p     *inode
	pfd   int
	lower string
	long  bool
}

func (fs *FS) beginCreate(parent fuseops.InodeID, name string) (*creation, error) {
	if fs.readOnly {
		return nil, syscall.EROFS
	}
	p, err := fs.dirOf(parent)
	if err != nil {
		return nil, err
	}
	p.Lock()
	c := &creation{p: p}
	ln, err := fs.lowerName(p, name)
	if err == nil {
		c.lower, c.long = ln.Lower, ln.Long
		c.pfd, err = fs.dirFd(p)
	}
	if err == nil && c.long {
		err = ciphertree.WriteSidecar(c.pfd, ln.Lower, ln.Encoded)
		err = fs.internalFailed("create", p, crypt.SidecarName(ln.Lower), err)
	}
	if err != nil {
		p.Unlock()
		return nil, err
	}
	return c, nil
}

// endCreate ends what beginCreate began: it removes the sidecar of a long
// name when the lower creation failed (err), drops the parent's cached
// attributes when it succeeded, and unlocks the parent.
func (fs *FS) endCreate(c *creation, err error) {
	if err != nil && c.long {
		unix.Unlinkat(c.pfd, crypt.SidecarName(c.lower), 0)
	}
	if err == nil {
		fs.changedAttr(c.p)
	}
	c.p.Unlock()
}

// MkDir creates a directory and its name IV.
func (fs *FS) MkDir(ctx context.Context, op *fuseops.MkDirOp) (err error) {
	c, err := fs.beginCreate(op.Parent, op.Name)
	if err != nil {
		return err
	}
	defer func() { fs.endCreate(c, err) }()
	mode := uint32(op.Mode.Perm()) | uint32(unixMode(op.Mode)&0o7000)
	err = fs.asCaller(ctx, func() error {
		return ciphertree.MakeDir(c.pfd, c.lower, mode, !fs.suite.DeterministicNames())
	})
	if err != nil {
		return err
	}
	var st unix.Stat_t
	dfd, err := openDirAt(c.pfd, c.lower, &st)
	if err != nil {
		ciphertree.RemoveDir(c.pfd, c.lower)
		return err
	}
	child := fs.remember(c.p, c.lower, op.Name, &st, fs.birthAt(dfd, ""), dfd, true, true)
	if !fs.suite.DeterministicNames() {
		fs.ivs.add(child)
	}
	return fs.entry(c.p, op.Name, child, &seen{st: st, fresh: true}, &op.Entry)
}

// MkNode creates a fifo, socket or device node (or a regular file).
func (fs *FS) MkNode(ctx context.Context, op *fuseops.MkNodeOp) (err error) {
	c, err := fs.beginCreate(op.Parent, op.Name)
	if err != nil {
		return err
	}
	defer func() { fs.endCreate(c, err) }()
	err = fs.asCaller(ctx, func() error { return unix.Mknodat(c.pfd, c.lower, unixMode(op.Mode), int(op.Rdev)) })
	if err != nil {
		return err
	}
	return fs.finishCreate(c, op.Name, &op.Entry)
}

// finishCreate registers a newly created non-directory.
func (fs *FS) finishCreate(c *creation, name string, out *fuseops.ChildInodeEntry) error {
	var st unix.Stat_t
	birth, err := fs.statAt(c.pfd, c.lower, &st)
	if err != nil {
		unix.Unlinkat(c.pfd, c.lower, 0)
		return err
	}
	child := fs.remember(c.p, c.lower, name, &st, birth, -1, true, true)
	return fs.entry(c.p, name, child, &seen{st: st, fresh: true}, out)
}

// CreateSymlink stores an encrypted symlink target.
func (fs *FS) CreateSymlink(ctx context.Context, op *fuseops.CreateSymlinkOp) (err error) {
	stored, err := fs.suite.EncryptSymlink(op.Target)
	if err != nil {
		return syscall.ENAMETOOLONG
	}
	c, err := fs.beginCreate(op.Parent, op.Name)
	if err != nil {
		return err
	}
	defer func() { fs.endCreate(c, err) }()
	if err = fs.asCaller(ctx, func() error { return unix.Symlinkat(stored, c.pfd, c.lower) }); err != nil {
		return err
	}
	return fs.finishCreate(c, op.Name, &op.Entry)
}

// CreateLink adds a hard link: the lower file gets a second name, so both
// names share one file ID and one lower inode.
func (fs *FS) CreateLink(ctx context.Context, op *fuseops.CreateLinkOp) (err error) {
	t, err := fs.mustInode(uint64(op.Target))
	if err != nil {
		return err
	}
	if t.isDir() {
		return syscall.EPERM
	}
	c, err := fs.beginCreate(op.Parent, op.Name)
	if err != nil {
		return err
	}
	defer func() { fs.endCreate(c, err) }()
	t.Lock()
	defer t.Unlock()
	ofd, err := fs.open(t, unix.O_PATH)
	if err != nil {
		return err
	}
	fs.ownChanging(t, ofd)
	err = unix.Linkat(unix.AT_FDCWD, ciphertree.ProcFd(ofd), c.pfd, c.lower, unix.AT_SYMLINK_FOLLOW)
	fs.ownChanged(t, ofd) // the ctime moved (shared mode)
	unix.Close(ofd)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	birth, err := fs.statAt(c.pfd, c.lower, &st)
	if err != nil {
		return err
	}
	fs.changedAttr(t)
	child := fs.remember(c.p, c.lower, op.Name, &st, birth, -1, true, false)
	// entry takes the child's lock shared; we hold it exclusively.
	a, err := fs.freshAttrs(child)
	if err != nil {
		fs.forget(child.ID, 1)
		return err
	}
	fs.publishEntry(c.p, op.Name, child, a, &op.Entry)
	return nil
}

// CreateFile creates and opens a regular file. An empty plaintext file is
// an empty lower file: the header is written with the first byte.
func (fs *FS) CreateFile(ctx context.Context, op *fuseops.CreateFileOp) (err error) {
	c, err := fs.beginCreate(op.Parent, op.Name)
	if err != nil {
		return err
	}
	defer func() { fs.endCreate(c, err) }()
	fd := -1
	err = fs.asCaller(ctx, func() (err error) {
		fd, err = ciphertree.Openat(c.pfd, c.lower, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, unixMode(op.Mode)&0o7777)
		return err
	})
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err = ciphertree.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		unix.Unlinkat(c.pfd, c.lower, 0)
		return err
	}
	child := fs.remember(c.p, c.lower, op.Name, &st, fs.birthAt(fd, ""), -1, true, true)
	if err = fs.entry(c.p, op.Name, child, &seen{st: st, fresh: true}, &op.Entry); err != nil {
		unix.Close(fd)
		return err
	}
	op.Handle = fs.addFileHandle(child, fd, true)
	fs.pinHeader(op.Handle, fd)
	fs.pinCtime(op.Handle, child, fd)
	return nil
}
