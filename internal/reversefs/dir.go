package reversefs

import (
	"context"
	"slices"
	"strings"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// OpenDir lists a directory of the view once; ReadDir serves the listing
// (and lists again when read from offset 0, e.g. after rewinddir).
func (fs *FS) OpenDir(_ context.Context, op *fuseops.OpenDirOp) error {
	key, err := fs.key(op.Inode)
	if err != nil {
		return err
	}
	if key.class != crypt.InodeClassOf(unix.S_IFDIR) {
		return syscall.ENOTDIR
	}
	entries, err := fs.list(key.path)
	if err != nil {
		return err
	}
	op.Handle = fs.addHandle(&handle{fd: -1, dir: key.path, entries: entries})
	return nil
}

// ReadDir returns the listing from op.Offset on.
func (fs *FS) ReadDir(_ context.Context, op *fuseops.ReadDirOp) error {
	h, err := fs.handle(op.Handle)
	if err != nil {
		return err
	}
	fs.mu.Lock()
	rewound := op.Offset == 0 && h.read
	h.read = true
	fs.mu.Unlock()
	if rewound {
		fresh, err := fs.list(h.dir)
		if err != nil {
			return err
		}
		fs.mu.Lock()
		h.entries = fresh
		fs.mu.Unlock()
	}
	fs.mu.Lock()
	entries := h.entries
	fs.mu.Unlock()
	if int(op.Offset) > len(entries) {
		return syscall.EINVAL
	}
	for _, e := range entries[op.Offset:] {
		n := fuseutil.WriteDirent(op.Dst[op.BytesRead:], e)
		if n == 0 {
			break
		}
		op.BytesRead += n
	}
	return nil
}

// ReleaseDirHandle forgets a listing.
func (fs *FS) ReleaseDirHandle(_ context.Context, op *fuseops.ReleaseDirHandleOp) error {
	fs.release(op.Handle)
	return nil
}

// ReadDirPlus is not enabled (MountConfig): listings come with types and
// inode numbers, attributes with the lookups that follow.
func (fs *FS) ReadDirPlus(context.Context, *fuseops.ReadDirPlusOp) error { return syscall.ENOSYS }

// list is the view's listing of the directory at view path dir: ".", "..",
// its IV file, the config at the root, and every plaintext entry under
// its lower name (plus a sidecar for a long name), sorted by name.
func (fs *FS) list(dir string) ([]fuseutil.Dirent, error) {
	fd, err := fs.open(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, errno(err)
	}
	defer unix.Close(fd)
	iv, err := fs.rev.DirIV(dir)
	if err != nil {
		return nil, errno(err)
	}
	type plainEntry struct {
		name string
		typ  uint8
	}
	var plain []plainEntry
	err = ciphertree.ReadDir(fd, func(name string, _ uint64, typ uint8) bool {
		if !fs.isHidden(dir, name) {
			plain = append(plain, plainEntry{name, typ})
		}
		return true
	})
	if err != nil {
		return nil, errno(err)
	}
	var out []fuseutil.Dirent
	add := func(name string, typ fuseutil.DirentType, key nodeKey) {
		out = append(out, fuseutil.Dirent{Name: name, Type: typ, Inode: fuseops.InodeID(fs.peek(key))})
	}
	for _, e := range plain {
		if e.typ == unix.DT_UNKNOWN {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				continue // gone since the listing
			}
			e.typ = crypt.InodeClassOf(st.Mode) // DT_* equals S_IFMT >> 12
		}
		n, err := ciphertree.EncodeName(fs.s, iv, e.name)
		if err != nil {
			continue // not a name (never from a Linux directory)
		}
		p := join(dir, e.name)
		add(n.Lower, fuseutil.DirentType(e.typ), nodeKey{class: e.typ, path: p})
		if n.Long {
			add(crypt.SidecarName(n.Lower), fuseutil.DT_File, nodeKey{class: crypt.InodeClassSidecar, path: p})
		}
	}
	if !fs.s.DeterministicNames() {
		add(crypt.DirIVFile, fuseutil.DT_File, nodeKey{class: crypt.InodeClassDirIV, path: dir})
	}
	if dir == "" {
		add(ViewConfigName, fuseutil.DT_File, nodeKey{class: crypt.InodeClassConfig})
	}
	slices.SortFunc(out, func(a, b fuseutil.Dirent) int { return strings.Compare(a.Name, b.Name) })
	dirKey := nodeKey{class: crypt.InodeClassOf(unix.S_IFDIR), path: dir}
	parent := fuseops.InodeID(fuseops.RootInodeID)
	if dir != "" {
		pd, _ := split(dir)
		parent = fuseops.InodeID(fs.peek(nodeKey{class: dirKey.class, path: pd}))
	}
	out = append([]fuseutil.Dirent{
		{Name: ".", Type: fuseutil.DT_Directory, Inode: fuseops.InodeID(fs.peek(dirKey))},
		{Name: "..", Type: fuseutil.DT_Directory, Inode: parent},
	}, out...)
	for i := range out {
		out[i].Offset = fuseops.DirOffset(i + 1)
	}
	return out, nil
}
