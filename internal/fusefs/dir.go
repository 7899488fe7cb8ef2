package fusefs

import (
	"context"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/meta"
)

// dirOf returns the directory inode with the given ID.
func (fs *FS) dirOf(id fuseops.InodeID) (*inode, error) {
	p, err := fs.mustInode(uint64(id))
	if err != nil {
		return nil, err
	}
	if !p.isDir() {
		return nil, syscall.ENOTDIR
	}
	return p, nil
}

// LookUpInode answers LOOKUP from the cache or the lower directory.
func (fs *FS) LookUpInode(ctx context.Context, op *fuseops.LookUpInodeOp) error {
	p, err := fs.dirOf(op.Parent)
	if err != nil {
		return err
	}
	p.RLock()
	defer p.RUnlock()
	if id, ok := fs.cache.Child(&p.Node, op.Name); ok {
		if id == 0 {
			fs.negative(p, op.Name, &op.Entry)
			return nil
		}
		fs.mu.Lock()
		child := fs.inodes[id]
		if child != nil {
			child.refs++
		}
		fs.mu.Unlock()
		if child != nil {
			return fs.entry(p, op.Name, child, nil, &op.Entry)
		}
	}
	ln, err := fs.lowerName(p, op.Name)
	if err != nil {
		return err
	}
	pfd, err := fs.dirFd(p)
	if err != nil {
		return err
	}
	child, s, err := fs.find(p, pfd, ln.Lower, op.Name)
	if err == syscall.ENOENT {
		fs.negative(p, op.Name, &op.Entry)
		return nil
	}
	if err != nil {
		return err
	}
	return fs.entry(p, op.Name, child, s, &op.Entry)
}

// find looks a lower entry up and remembers it with one kernel reference.
func (fs *FS) find(p *inode, pfd int, lower, plain string) (*inode, *seen, error) {
	s := &seen{epoch: fs.cache.Epoch()}
	if err := unix.Fstatat(pfd, lower, &s.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, nil, err
	}
	dfd := -1
	if s.st.Mode&unix.S_IFMT == unix.S_IFDIR {
		var err error
		if dfd, err = openDirAt(pfd, lower, &s.st); err != nil {
			return nil, nil, err
		}
	}
	return fs.remember(p, lower, plain, &s.st, dfd, true, false), s, nil
}

// openDirAt opens an O_PATH descriptor of a subdirectory and checks it is
// the inode st describes (and refreshes st from it).
func openDirAt(pfd int, name string, st *unix.Stat_t) (int, error) {
	fd, err := ciphertree.Openat(pfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, err
	}
	var st2 unix.Stat_t
	if err := ciphertree.Fstat(fd, &st2); err != nil || (st != nil && st.Ino != 0 && st2.Ino != st.Ino) {
		unix.Close(fd)
		return -1, syscall.ESTALE
	}
	if st != nil {
		*st = st2
	}
	return fd, nil
}

// GetInodeAttributes answers GETATTR.
func (fs *FS) GetInodeAttributes(ctx context.Context, op *fuseops.GetInodeAttributesOp) error {
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	n.RLock()
	defer n.RUnlock()
	a, err := fs.attrs(n)
	if err != nil {
		return err
	}
	op.Attributes = a
	op.AttributesExpiration = fs.cache.AttrExpiration()
	return nil
}

// ForgetInode handles FORGET.
func (fs *FS) ForgetInode(ctx context.Context, op *fuseops.ForgetInodeOp) error {
	fs.forget(uint64(op.Inode), op.N)
	return nil
}

// BatchForget handles BATCH_FORGET.
func (fs *FS) BatchForget(ctx context.Context, op *fuseops.BatchForgetOp) error {
	for _, e := range op.Entries {
		fs.forget(uint64(e.Inode), e.N)
	}
	return nil
}

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
	}
	if err != nil {
		p.Unlock()
		return nil, err
	}
	return c, nil
}

// fail undoes the sidecar after the lower creation failed.
func (fs *FS) endCreate(c *creation, err error) {
	if err != nil && c.long {
		unix.Unlinkat(c.pfd, crypt.SidecarName(c.lower), 0)
	}
	if err == nil {
		fs.cache.ChangedAttr(&c.p.Node)
	}
	c.p.Unlock()
}

// chownNew gives a new lower file the caller's ownership when the daemon
// runs as root (the kernel would have done so on a local file system).
// The group stays the directory's when the directory is set-group-ID.
// chown clears the set-user-ID and set-group-ID bits, so mode (the
// requested permission bits) is applied again afterwards when it has them.
func (fs *FS) chownNew(ctx context.Context, c *creation, mode uint32) error {
	if !fs.asRoot {
		return nil
	}
	uid, gid := caller(ctx)
	if uid == 0 && gid == 0 {
		return nil // what the daemon (root) created it as, setgid directory or not
	}
	var pst, st unix.Stat_t
	if err := ciphertree.Fstat(c.pfd, &pst); err != nil {
		return err
	}
	if err := unix.Fstatat(c.pfd, c.lower, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	g := int(gid)
	if pst.Mode&unix.S_ISGID != 0 || st.Gid == gid {
		g = -1
	}
	u := int(uid)
	if st.Uid == uid {
		u = -1
	}
	if u == -1 && g == -1 {
		return nil
	}
	if err := unix.Fchownat(c.pfd, c.lower, u, g, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if mode&(unix.S_ISUID|unix.S_ISGID) == 0 || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	fd, err := ciphertree.Openat(c.pfd, c.lower, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fchmodat(unix.AT_FDCWD, ciphertree.ProcFd(fd), mode&0o7777, 0)
}

// MkDir creates a directory and its name IV.
func (fs *FS) MkDir(ctx context.Context, op *fuseops.MkDirOp) (err error) {
	c, err := fs.beginCreate(op.Parent, op.Name)
	if err != nil {
		return err
	}
	defer func() { fs.endCreate(c, err) }()
	mode := uint32(op.Mode.Perm()) | uint32(unixMode(op.Mode)&0o7000)
	if err = ciphertree.MakeDir(c.pfd, c.lower, mode, !fs.suite.DeterministicNames()); err != nil {
		return err
	}
	var st unix.Stat_t
	dfd, err := openDirAt(c.pfd, c.lower, &st)
	if err == nil {
		err = fs.chownNew(ctx, c, unixMode(op.Mode))
	}
	if err == nil {
		err = ciphertree.Fstat(dfd, &st)
	}
	if err != nil {
		if dfd >= 0 {
			ciphertree.RemoveInternal(dfd)
			unix.Close(dfd)
		}
		unix.Unlinkat(c.pfd, c.lower, unix.AT_REMOVEDIR)
		return err
	}
	child := fs.remember(c.p, c.lower, op.Name, &st, dfd, true, true)
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
	if err = unix.Mknodat(c.pfd, c.lower, unixMode(op.Mode), int(op.Rdev)); err != nil {
		return err
	}
	return fs.finishCreate(ctx, c, op.Name, unixMode(op.Mode), &op.Entry)
}

// finishCreate chowns and registers a newly created non-directory.
func (fs *FS) finishCreate(ctx context.Context, c *creation, name string, mode uint32, out *fuseops.ChildInodeEntry) error {
	var st unix.Stat_t
	err := fs.chownNew(ctx, c, mode)
	if err == nil {
		err = unix.Fstatat(c.pfd, c.lower, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		unix.Unlinkat(c.pfd, c.lower, 0)
		return err
	}
	child := fs.remember(c.p, c.lower, name, &st, -1, true, true)
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
	if err = unix.Symlinkat(stored, c.pfd, c.lower); err != nil {
		return err
	}
	return fs.finishCreate(ctx, c, op.Name, unix.S_IFLNK|0o777, &op.Entry)
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
	err = unix.Linkat(unix.AT_FDCWD, ciphertree.ProcFd(ofd), c.pfd, c.lower, unix.AT_SYMLINK_FOLLOW)
	unix.Close(ofd)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err = unix.Fstatat(c.pfd, c.lower, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	fs.cache.ChangedAttr(&t.Node)
	child := fs.remember(c.p, c.lower, op.Name, &st, -1, true, false)
	// entry takes the child's lock shared; we hold it exclusively.
	a, err := fs.freshAttrs(child)
	if err != nil {
		fs.forget(child.ID, 1)
		return err
	}
	fs.cache.SetChild(&c.p.Node, op.Name, child.ID, 0)
	fs.markPublished(child)
	op.Entry = fuseops.ChildInodeEntry{
		Child:                fuseops.InodeID(child.ID),
		Attributes:           a,
		AttributesExpiration: fs.cache.AttrExpiration(),
		EntryExpiration:      fs.cache.EntryExpiration(),
	}
	return nil
}

func (fs *FS) markPublished(n *inode) {
	if fs.fast != nil {
		fs.mu.Lock()
		n.published = true
		fs.mu.Unlock()
	}
}

// known returns the remembered inode of a lower file, if any.
func (fs *FS) known(st *unix.Stat_t) *inode {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if id, ok := fs.ids[devIno{st.Dev, st.Ino}]; ok {
		return fs.inodes[id]
	}
	return nil
}

// Unlink removes a name.
func (fs *FS) Unlink(ctx context.Context, op *fuseops.UnlinkOp) error {
	return fs.remove(op.Parent, op.Name, false)
}

// RmDir removes an empty directory (empty in the plaintext view: its IV
// file and stale sidecars go with it).
func (fs *FS) RmDir(ctx context.Context, op *fuseops.RmDirOp) error {
	return fs.remove(op.Parent, op.Name, true)
}

func (fs *FS) remove(parent fuseops.InodeID, name string, dir bool) error {
	if fs.readOnly {
		return syscall.EROFS
	}
	p, err := fs.dirOf(parent)
	if err != nil {
		return err
	}
	p.Lock()
	defer p.Unlock()
	ln, err := fs.lowerName(p, name)
	if err != nil {
		return err
	}
	lower, long := ln.Lower, ln.Long
	pfd, err := fs.dirFd(p)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, lower, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if dir {
		if !isDir {
			return syscall.ENOTDIR
		}
		if err := fs.emptyDirForRemoval(pfd, lower); err != nil {
			return err
		}
		if err := unix.Unlinkat(pfd, lower, unix.AT_REMOVEDIR); err != nil {
			return err
		}
	} else {
		if isDir {
			return syscall.EISDIR
		}
		if err := unix.Unlinkat(pfd, lower, 0); err != nil {
			return err
		}
	}
	if long {
		unix.Unlinkat(pfd, crypt.SidecarName(lower), 0)
	}
	if child := fs.known(&st); child != nil {
		fs.removeLink(child, p, lower)
		if isDir || st.Nlink <= 1 {
			fs.markDead(child)
		}
		child.Lock()
		fs.cache.ChangedAttr(&child.Node)
		if dir {
			fs.cache.ForgetChildren(&child.Node)
		}
		child.Unlock()
	}
	fs.cache.ChangedAttr(&p.Node)
	fs.cache.SetChild(&p.Node, name, 0, 0)
	return nil
}

// emptyDirForRemoval checks that a lower directory holds no user entries
// and deletes cryptfs's internal files from it.
func (fs *FS) emptyDirForRemoval(pfd int, lname string) error {
	dfd, err := openDirAt(pfd, lname, nil)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	empty, err := ciphertree.IsEmpty(dfd)
	if err != nil {
		return err
	}
	if !empty {
		return syscall.ENOTEMPTY
	}
	return ciphertree.RemoveInternal(dfd)
}

// Rename moves a name, replacing an existing target as rename(2) does.
func (fs *FS) Rename(ctx context.Context, op *fuseops.RenameOp) error {
	if fs.readOnly {
		return syscall.EROFS
	}
	op1, err := fs.dirOf(op.OldParent)
	if err != nil {
		return err
	}
	np, err := fs.dirOf(op.NewParent)
	if err != nil {
		return err
	}
	// Lock both directories in ID order.
	switch {
	case op1 == np:
		op1.Lock()
		defer op1.Unlock()
	case op1.ID < np.ID:
		op1.Lock()
		np.Lock()
		defer op1.Unlock()
		defer np.Unlock()
	default:
		np.Lock()
		op1.Lock()
		defer np.Unlock()
		defer op1.Unlock()
	}
	oldName, err := fs.lowerName(op1, op.OldName)
	if err != nil {
		return err
	}
	newName, err := fs.lowerName(np, op.NewName)
	if err != nil {
		return err
	}
	oldLower, oldLong := oldName.Lower, oldName.Long
	newLower, newEnc, newLong := newName.Lower, newName.Encoded, newName.Long
	opfd, err := fs.dirFd(op1)
	if err != nil {
		return err
	}
	npfd, err := fs.dirFd(np)
	if err != nil {
		return err
	}
	var src, dst unix.Stat_t
	if err := unix.Fstatat(opfd, oldLower, &src, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	dstExists := true
	if err := unix.Fstatat(npfd, newLower, &dst, unix.AT_SYMLINK_NOFOLLOW); err == unix.ENOENT {
		dstExists = false
	} else if err != nil {
		return err
	}
	if dstExists && dst.Ino == src.Ino && dst.Dev == src.Dev {
		return nil // same file: rename(2) does nothing
	}
	srcDir := src.Mode&unix.S_IFMT == unix.S_IFDIR
	if dstExists {
		dstDir := dst.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case srcDir && !dstDir:
			return syscall.ENOTDIR
		case !srcDir && dstDir:
			return syscall.EISDIR
		case dstDir:
			if err := fs.emptyDirForRemoval(npfd, newLower); err != nil {
				return err
			}
		}
	}
	if newLong {
		if err := ciphertree.WriteSidecar(npfd, newLower, newEnc); err != nil {
			return err
		}
	}
	if err := unix.Renameat(opfd, oldLower, npfd, newLower); err != nil {
		if newLong && !dstExists {
			unix.Unlinkat(npfd, crypt.SidecarName(newLower), 0)
		}
		return err
	}
	if oldLong && (op1 != np || oldLower != newLower) {
		unix.Unlinkat(opfd, crypt.SidecarName(oldLower), 0)
	}

	if dstExists {
		if t := fs.known(&dst); t != nil {
			fs.removeLink(t, np, newLower)
			if dst.Mode&unix.S_IFMT == unix.S_IFDIR || dst.Nlink <= 1 {
				fs.markDead(t)
			}
			t.Lock()
			fs.cache.ChangedAttr(&t.Node)
			if t.isDir() {
				fs.cache.ForgetChildren(&t.Node)
			}
			t.Unlock()
		}
	}
	if s := fs.known(&src); s != nil {
		fs.moveLink(s, op1, oldLower, link{parent: np, lower: newLower, plain: op.NewName})
		s.Lock()
		fs.cache.ChangedAttr(&s.Node) // ctime
		s.Unlock()
	}
	fs.cache.SetChild(&op1.Node, op.OldName, 0, 0)
	fs.cache.ChangedChild(&np.Node, op.NewName)
	fs.cache.ChangedAttr(&op1.Node)
	if np != op1 {
		fs.cache.ChangedAttr(&np.Node)
	}
	return nil
}

// dirHandle is an open directory: a snapshot of its entries taken at the
// first READDIR (and again when the kernel rewinds to offset 0).
type dirHandle struct {
	n       *inode
	entries []dirEntry
	loaded  bool
}

type dirEntry struct {
	name  string // plaintext
	lower string
	ino   uint64
	typ   fuseutil.DirentType
}

// OpenDir opens a directory handle.
func (fs *FS) OpenDir(ctx context.Context, op *fuseops.OpenDirOp) error {
	n, err := fs.dirOf(op.Inode)
	if err != nil {
		return err
	}
	op.Handle = fs.addHandle(&dirHandle{n: n})
	if fs.cache.Tier() == meta.KernelCache {
		// The kernel may keep the listing in the directory's page cache
		// and serve later listings from it: it drops the cache itself on
		// every change it makes to the directory (create, unlink, rename,
		// link, mkdir, rmdir bump the inode's version), and the lower
		// directory changes only through the daemon (docs/fast-path.md);
		// InvalidateInode of the directory drops it too. Without it every
		// ls lists, decrypts and stats the whole lower directory again.
		op.CacheDir, op.KeepCache = true, true
	}
	return nil
}

// ReleaseDirHandle closes a directory handle.
func (fs *FS) ReleaseDirHandle(ctx context.Context, op *fuseops.ReleaseDirHandleOp) error {
	fs.mu.Lock()
	delete(fs.handles, op.Handle)
	fs.mu.Unlock()
	return nil
}

// list reads and decrypts a lower directory. Internal files are hidden;
// names that do not decrypt (for example a sync tool's conflict copy) are
// skipped with one warning each.
func (fs *FS) list(n *inode) ([]dirEntry, error) {
	iv, err := fs.dirIV(n)
	if err != nil {
		return nil, err
	}
	dfd, err := fs.dirFd(n)
	if err != nil {
		return nil, err
	}
	parent := uint64(rootID)
	if l := fs.linksOf(n); len(l) > 0 {
		parent = l[0].parent.ID
	}
	entries := []dirEntry{
		{name: ".", ino: n.ID, typ: fuseutil.DT_Directory},
		{name: "..", ino: parent, typ: fuseutil.DT_Directory},
	}
	atRoot := n.ID == rootID
	err = ciphertree.ReadDir(dfd, func(lname string, ino uint64, typ uint8) bool {
		if crypt.IsReserved(lname, atRoot) {
			return true
		}
		name, err := ciphertree.DecodeName(fs.suite, dfd, iv, lname)
		if err != nil {
			path := fs.lowerPath(n, lname)
			if _, seen := fs.warned.LoadOrStore(path, true); !seen {
				fs.log.Warn().Str("op", "readdir").Uint64("inode", n.ID).Str("path", path).Err(err).
					Msg("skipping a lower entry whose name does not decrypt")
			}
			return true
		}
		fs.mu.Lock()
		id := fs.idFor(fs.rootDev, ino)
		fs.mu.Unlock()
		entries = append(entries, dirEntry{name: name, lower: lname, ino: id, typ: fuseutil.DirentType(typ)})
		return true
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

func (fs *FS) dirHandle(id fuseops.HandleID) (*dirHandle, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h, ok := fs.handles[id].(*dirHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	return h, nil
}

// snapshot returns the handle's entries, reading them at offset 0.
func (fs *FS) snapshot(h *dirHandle, offset fuseops.DirOffset) ([]dirEntry, error) {
	h.n.RLock()
	defer h.n.RUnlock()
	if offset == 0 || !h.loaded {
		entries, err := fs.list(h.n)
		if err != nil {
			return nil, err
		}
		h.entries, h.loaded = entries, true
	}
	return h.entries, nil
}

// ReadDir answers READDIR.
func (fs *FS) ReadDir(ctx context.Context, op *fuseops.ReadDirOp) error {
	h, err := fs.dirHandle(op.Handle)
	if err != nil {
		return err
	}
	entries, err := fs.snapshot(h, op.Offset)
	if err != nil {
		return err
	}
	for i := int(op.Offset); i < len(entries); i++ {
		e := entries[i]
		n := fuseutil.WriteDirent(op.Dst[op.BytesRead:], fuseutil.Dirent{
			Offset: fuseops.DirOffset(i + 1),
			Inode:  fuseops.InodeID(e.ino),
			Name:   e.name,
			Type:   e.typ,
		})
		if n == 0 {
			break
		}
		op.BytesRead += n
	}
	return nil
}

// ReadDirPlus answers READDIRPLUS: entries with attributes, each counted
// as a lookup by the kernel.
func (fs *FS) ReadDirPlus(ctx context.Context, op *fuseops.ReadDirPlusOp) error {
	h, err := fs.dirHandle(op.Handle)
	if err != nil {
		return err
	}
	entries, err := fs.snapshot(h, op.Offset)
	if err != nil {
		return err
	}
	p := h.n
	p.RLock()
	defer p.RUnlock()
	pfd, err := fs.dirFd(p)
	if err != nil {
		return err
	}
	for i := int(op.Offset); i < len(entries); i++ {
		e := entries[i]
		d := fuseutil.DirentPlus{Dirent: fuseutil.Dirent{
			Offset: fuseops.DirOffset(i + 1),
			Inode:  fuseops.InodeID(e.ino),
			Name:   e.name,
			Type:   e.typ,
		}}
		var child *inode
		if e.name != "." && e.name != ".." {
			// The kernel links "." and ".." to nothing; every other entry
			// becomes a kernel reference.
			var s *seen
			child, s, err = fs.find(p, pfd, e.lower, e.name)
			if err != nil {
				continue // gone since the snapshot
			}
			if err := fs.entry(p, e.name, child, s, &d.Entry); err != nil {
				continue
			}
			d.Dirent.Inode = d.Entry.Child
		}
		n := fuseutil.WriteDirentPlus(op.Dst[op.BytesRead:], d)
		if n == 0 {
			if child != nil {
				fs.forget(child.ID, 1)
			}
			break
		}
		op.BytesRead += n
	}
	return nil
}

// ReadSymlink answers READLINK.
func (fs *FS) ReadSymlink(ctx context.Context, op *fuseops.ReadSymlinkOp) error {
	n, err := fs.mustInode(uint64(op.Inode))
	if err != nil {
		return err
	}
	if n.kind != unix.S_IFLNK {
		return syscall.EINVAL
	}
	n.RLock()
	defer n.RUnlock()
	op.Target, err = fs.symlinkTarget(n)
	return err
}

// StatFS reports the lower file system's figures.
func (fs *FS) StatFS(ctx context.Context, op *fuseops.StatFSOp) error {
	root := fs.getInode(rootID)
	fd, err := fs.dirFd(root)
	if err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	op.BlockSize = uint32(st.Bsize)
	op.Blocks = st.Blocks
	op.BlocksFree = st.Bfree
	op.BlocksAvailable = st.Bavail
	op.IoSize = maxRequestBytes
	op.Inodes = st.Files
	op.InodesFree = st.Ffree
	return nil
}

func (fs *FS) addHandle(h any) fuseops.HandleID {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.nextHandle++
	fs.handles[fs.nextHandle] = h
	return fs.nextHandle
}
