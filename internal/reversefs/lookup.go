package reversefs

import (
	"context"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/filemode"
)

// sidecarPrefix starts the name of every long-name sidecar.
var sidecarPrefix = crypt.SidecarName("longname.")

// virtualTime is the time of the view's own files (IV files and
// sidecars): their bytes never change for a given cipher path, so a
// constant time keeps every size+mtime check true.
var virtualTime = time.Unix(0, 0)

// LookUpInode resolves a cipher name in a directory of the view.
func (fs *FS) LookUpInode(_ context.Context, op *fuseops.LookUpInodeOp) error {
	parent, err := fs.key(op.Parent)
	if err != nil {
		return err
	}
	key, err := fs.resolve(parent, op.Name)
	if err != nil {
		return err
	}
	attrs, err := fs.attrs(key)
	if err != nil {
		return err
	}
	id, err := fs.ref(key)
	if err != nil {
		return errno(err)
	}
	exp := time.Now().Add(cacheTTL)
	op.Entry = fuseops.ChildInodeEntry{Child: id, Attributes: attrs, AttributesExpiration: exp, EntryExpiration: exp}
	return nil
}

// resolve maps a lower (cipher) name in directory parent to the node it
// names. Names that are not in the view give ENOENT.
func (fs *FS) resolve(parent nodeKey, name string) (nodeKey, error) {
	if parent.class != crypt.InodeClassOf(unix.S_IFDIR) {
		return nodeKey{}, syscall.ENOTDIR
	}
	dir := parent.path
	switch {
	case name == crypt.DirIVFile:
		if fs.s.DeterministicNames() {
			return nodeKey{}, syscall.ENOENT
		}
		return nodeKey{class: crypt.InodeClassDirIV, path: dir}, nil
	case name == ViewConfigName && dir == "":
		return nodeKey{class: crypt.InodeClassConfig}, nil
	case strings.HasPrefix(name, sidecarPrefix):
		long := strings.TrimPrefix(name, crypt.ReservedPrefix+".")
		plain, err := fs.findLong(dir, long)
		if err != nil {
			return nodeKey{}, err
		}
		return nodeKey{class: crypt.InodeClassSidecar, path: join(dir, plain)}, nil
	}
	var plain string
	if crypt.IsLongName(name) {
		p, err := fs.findLong(dir, name)
		if err != nil {
			return nodeKey{}, err
		}
		plain = p
	} else {
		iv, err := fs.rev.DirIV(dir)
		if err != nil {
			return nodeKey{}, errno(err)
		}
		if plain, err = fs.s.DecryptName(iv, name); err != nil {
			return nodeKey{}, syscall.ENOENT
		}
		if fs.isHidden(dir, plain) {
			return nodeKey{}, syscall.ENOENT
		}
	}
	p := join(dir, plain)
	var st unix.Stat_t
	if err := fs.lstat(p, &st); err != nil {
		return nodeKey{}, errno(err)
	}
	return nodeKey{class: crypt.InodeClassOf(st.Mode), path: p}, nil
}

// findLong returns the plaintext name in directory dir whose lower name is
// the long name long, by encrypting the directory's long names.
func (fs *FS) findLong(dir, long string) (string, error) {
	if !crypt.IsLongName(long) {
		return "", syscall.ENOENT
	}
	iv, err := fs.rev.DirIV(dir)
	if err != nil {
		return "", errno(err)
	}
	fd, err := fs.open(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", errno(err)
	}
	defer unix.Close(fd)
	found := ""
	err = ciphertree.ReadDir(fd, func(name string, _ uint64, _ uint8) bool {
		if crypt.EncodedNameLen(len(name)) <= crypt.MaxLowerName || fs.isHidden(dir, name) {
			return true
		}
		n, err := ciphertree.EncodeName(fs.s, iv, name)
		if err == nil && n.Lower == long {
			found = name
			return false
		}
		return true
	})
	if err != nil {
		return "", errno(err)
	}
	if found == "" {
		return "", syscall.ENOENT
	}
	return found, nil
}

// GetInodeAttributes reports a node's attributes as they are now.
func (fs *FS) GetInodeAttributes(_ context.Context, op *fuseops.GetInodeAttributesOp) error {
	key, err := fs.key(op.Inode)
	if err != nil {
		return err
	}
	if op.Attributes, err = fs.attrs(key); err != nil {
		return err
	}
	op.AttributesExpiration = time.Now().Add(cacheTTL)
	return nil
}

// attrs are the view's attributes of a node. A plaintext node whose path
// now holds another type of file is gone (ENOENT).
func (fs *FS) attrs(key nodeKey) (fuseops.InodeAttributes, error) {
	var st unix.Stat_t
	switch key.class {
	case crypt.InodeClassDirIV:
		if err := fs.lstat(key.path, &st); err != nil {
			return fuseops.InodeAttributes{}, errno(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fuseops.InodeAttributes{}, syscall.ENOENT
		}
		return virtualAttrs(&st, crypt.DirIVLen, 0o400), nil
	case crypt.InodeClassSidecar:
		dir, name := split(key.path)
		encoded, err := fs.encodedName(dir, name)
		if err != nil {
			return fuseops.InodeAttributes{}, err
		}
		if err := fs.lstat(dir, &st); err != nil {
			return fuseops.InodeAttributes{}, errno(err)
		}
		return virtualAttrs(&st, uint64(len(encoded)), 0o600), nil
	case crypt.InodeClassConfig:
		a := plainAttrs(&fs.confStat)
		a.Size, a.Nlink = uint64(len(fs.confData)), 1
		return a, nil
	}
	if err := fs.lstat(key.path, &st); err != nil {
		return fuseops.InodeAttributes{}, errno(err)
	}
	if crypt.InodeClassOf(st.Mode) != key.class {
		return fuseops.InodeAttributes{}, syscall.ENOENT
	}
	a := plainAttrs(&st)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		a.Size = crypt.CipherSize(uint64(st.Size))
		a.Nlink = 1
	case unix.S_IFLNK:
		a.Size = uint64(crypt.SymlinkStoredLen(int(st.Size)))
	case unix.S_IFDIR:
	default:
		a.Size = 0
		a.Nlink = 1
	}
	return a, nil
}

// encodedName is the encrypted name (before any long-name hashing) of
// the entry name of directory dir, which must exist and be in the view.
func (fs *FS) encodedName(dir, name string) (string, error) {
	if fs.isHidden(dir, name) {
		return "", syscall.ENOENT
	}
	var st unix.Stat_t
	if err := fs.lstat(join(dir, name), &st); err != nil {
		return "", errno(err)
	}
	iv, err := fs.rev.DirIV(dir)
	if err != nil {
		return "", errno(err)
	}
	n, err := ciphertree.EncodeName(fs.s, iv, name)
	if err != nil {
		return "", errno(err)
	}
	if !n.Long {
		return "", syscall.ENOENT
	}
	return n.Encoded, nil
}

// plainAttrs are a plaintext stat's attributes as they are.
func plainAttrs(st *unix.Stat_t) fuseops.InodeAttributes {
	return fuseops.InodeAttributes{
		Size:  uint64(st.Size),
		Nlink: uint32(st.Nlink),
		Mode:  filemode.FromUnix(st.Mode),
		Rdev:  uint32(st.Rdev),
		Atime: time.Unix(st.Atim.Sec, st.Atim.Nsec),
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		Uid:   st.Uid,
		Gid:   st.Gid,
	}
}

// virtualAttrs are the attributes of one of the view's own files in the
// directory of stat dir: owned like it, with a constant time.
func virtualAttrs(dir *unix.Stat_t, size uint64, perm os.FileMode) fuseops.InodeAttributes {
	return fuseops.InodeAttributes{
		Size: size, Nlink: 1, Mode: perm,
		Atime: virtualTime, Mtime: virtualTime, Ctime: virtualTime,
		Uid: dir.Uid, Gid: dir.Gid,
	}
}
