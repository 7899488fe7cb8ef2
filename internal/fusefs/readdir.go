package fusefs

import (
	"context"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"

	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/meta"
)

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
	if fs.cache.Tier() != meta.Off && !fs.shared {
		// The kernel may keep the listing in the directory's page cache
		// and serve later listings from it: it drops the cache itself on
		// every change it makes to the directory (create, unlink, rename,
		// link, mkdir, rmdir bump the inode's version), and the lower
		// directory changes only through the daemon (docs/fast-path.md);
		// InvalidateInode of the directory drops it too, and so does a
		// GETATTR answer (the daemon's or the program's) with another
		// mtime. Without it every ls lists, decrypts and stats the whole
		// lower directory again: in the ebpf tier, whose zero validity
		// is about attributes and entries, not listings, rm -rf of a
		// listed tree sent two READDIRPLUS per directory that the
		// kernel-cache tier does not (issue 17). Not in shared mode,
		// whose lower directories change outside, nor in off, the
		// baseline that caches nothing.
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

// list reads and decrypts a lower directory by the rules of
// docs/format.md, section 12.3 (ciphertree.ListDir). Internal files are
// hidden; sync tools' conflict copies are shown under the original's name
// plus the tool's marker, and recorded on n for lookups (conflict.go);
// names that do not decrypt, and conflict copies whose name another entry
// has, are skipped with one warning each.
func (fs *FS) list(n *inode) ([]dirEntry, error) {
	iv, err := fs.dirIV(n)
	if err == syscall.ENOENT && fs.shared {
		// A new empty directory whose IV a sync client has not brought
		// yet (errIVPending): empty until it has.
		return fs.dotEntries(n), nil
	}
	if err != nil {
		return nil, err
	}
	dfd, err := fs.dirFd(n)
	if err != nil {
		return nil, err
	}
	entries := fs.dotEntries(n)
	l, err := ciphertree.ListDir(fs.suite, dfd, iv, n.ID == rootID)
	if err != nil {
		return nil, err
	}
	warn := func(lname, msg string, err error) {
		path := fs.lowerPath(n, lname)
		if _, seen := fs.warned.LoadOrStore(path, true); !seen {
			ev := fs.log.Warn().Str("op", "readdir").Uint64("inode", n.ID).Str("path", path)
			if err != nil {
				ev = ev.Err(err)
			}
			ev.Msg(msg)
		}
	}
	for _, b := range l.Bad {
		warn(b.Lower, "skipping a lower entry whose name does not decrypt", b.Err)
	}
	for _, e := range l.Shadowed {
		warn(e.Lower, "skipping a sync tool's conflict copy: another entry of the directory has its name", nil)
	}
	fs.setConflicts(n, l)
	fs.mu.Lock()
	for _, e := range l.Entries {
		entries = append(entries, dirEntry{name: e.Name, lower: e.Lower, ino: fs.idFor(fs.rootDev, e.Ino), typ: fuseutil.DirentType(e.Type)})
	}
	fs.mu.Unlock()
	return entries, nil
}

// dotEntries returns the entries "." and ".." of directory n.
func (fs *FS) dotEntries(n *inode) []dirEntry {
	parent := uint64(rootID)
	if l := fs.linksOf(n); len(l) > 0 {
		parent = l[0].parent.ID
	}
	return []dirEntry{
		{name: ".", ino: n.ID, typ: fuseutil.DT_Directory},
		{name: "..", ino: parent, typ: fuseutil.DT_Directory},
	}
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
