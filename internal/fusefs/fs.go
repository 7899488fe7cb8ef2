package fusefs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/meta"
)

const (
	rootID = fuseops.RootInodeID
	// maxRequestBytes is the largest READ/WRITE payload (MaxWrite, readahead).
	maxRequestBytes = 1 << 20
)

// FastPath is what the daemon needs from an in-kernel fast path beyond the
// facts it publishes: the count of LOOKUPs it served per node.
type FastPath interface {
	meta.Sink
	ServedLookups(id uint64) (uint64, error)
}

// Config configures a file system over a lower directory.
type Config struct {
	Lower    string       // the cipher directory
	Suite    *crypt.Suite // keys; the FS does not wipe it
	Tier     meta.Tier    // fast-path tier
	FastPath FastPath     // the eBPF maps for the EBPF tier, else nil
	ReadOnly bool         // refuse every change (EROFS)
	Log      zerolog.Logger
}

// FS is the slow-path daemon: a jacobsa/fuse file system that stores every
// file encrypted in the lower directory. Create it with New and serve it
// with Server.
type FS struct {
	suite    *crypt.Suite
	log      zerolog.Logger
	cache    *meta.Cache
	fast     FastPath
	readOnly bool
	asRoot   bool // the daemon runs as root: create files as the caller
	lower    string
	rootDev  uint64

	mu          sync.Mutex
	inodes      map[uint64]*inode
	ids         map[devIno]uint64
	nextPrivate uint64
	handles     map[fuseops.HandleID]any // *handle or *dirHandle
	nextHandle  fuseops.HandleID

	warned sync.Map // lower paths already reported as undecodable
	ivs    *ivFlusher

	stats *Stats
}

// New opens the lower directory and prepares the file system. notifier may
// be nil (no revocations are then sent to the kernel).
func New(cfg Config, notifier meta.Notifier) (*FS, error) {
	fd, err := ciphertree.Openat(unix.AT_FDCWD, cfg.Lower, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open lower directory %s: %w", cfg.Lower, err)
	}
	var st unix.Stat_t
	if err := ciphertree.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat lower directory %s: %w", cfg.Lower, err)
	}
	var sink meta.Sink
	if cfg.FastPath != nil {
		sink = cfg.FastPath
	}
	fs := &FS{
		suite:    cfg.Suite,
		log:      cfg.Log,
		cache:    meta.New(cfg.Tier, sink, notifier),
		fast:     cfg.FastPath,
		readOnly: cfg.ReadOnly,
		asRoot:   os.Geteuid() == 0,
		lower:    cfg.Lower,
		rootDev:  st.Dev,
		inodes:   make(map[uint64]*inode),
		ids:      make(map[devIno]uint64),
		handles:  make(map[fuseops.HandleID]any),
		stats:    newStats(),
	}
	fs.ivs = newIVFlusher(fs)
	root := &inode{kind: unix.S_IFDIR, dev: st.Dev, ino: st.Ino, dirfd: fd, refs: 1}
	root.ID = rootID
	fs.inodes[rootID] = root
	fs.ids[devIno{st.Dev, st.Ino}] = rootID
	if _, err := fs.dirIV(root); err != nil {
		fs.ivs.close()
		unix.Close(fd)
		return nil, err
	}
	return fs, nil
}

// Tier returns the active fast-path tier.
func (fs *FS) Tier() meta.Tier { return fs.cache.Tier() }

// Close releases every lower descriptor. Call after the connection ended.
func (fs *FS) Close() {
	fs.ivs.close()
	fs.cache.Close()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, n := range fs.inodes {
		if n.dirfd >= 0 {
			unix.Close(n.dirfd)
			n.dirfd = -1
		}
	}
	for id, h := range fs.handles {
		if fh, ok := h.(*handle); ok {
			unix.Close(fh.fd)
		}
		delete(fs.handles, id)
	}
}

// errAuth marks data that failed authentication, for the one log line and
// the EIO the caller gets.
func (fs *FS) authFailed(op string, n *inode, name string, err error) error {
	fs.log.Error().Str("op", op).Uint64("inode", n.ID).Str("path", fs.lowerPath(n, name)).
		Err(err).Msg("authentication failed: cipher data was modified or is corrupt")
	return syscall.EIO
}

// lowerPath is a best-effort cipher path of n (or of name inside n) for
// log lines.
func (fs *FS) lowerPath(n *inode, name string) string {
	var parts []string
	if name != "" {
		parts = append(parts, name)
	}
	fs.mu.Lock()
	for cur, depth := n, 0; cur != nil && cur.ID != rootID && depth < 256; depth++ {
		if len(cur.links) == 0 {
			parts = append(parts, fmt.Sprintf("<inode %d>", cur.ID))
			break
		}
		parts = append(parts, cur.links[0].lower)
		cur = cur.links[0].parent
	}
	fs.mu.Unlock()
	p := fs.lower
	for i := len(parts) - 1; i >= 0; i-- {
		p += "/" + parts[i]
	}
	return p
}

// dirIV returns the name IV of directory n, loading it on first use.
func (fs *FS) dirIV(n *inode) (crypt.DirIV, error) {
	if fs.suite.DeterministicNames() {
		return crypt.DirIV{}, nil
	}
	fs.mu.Lock()
	iv, ok := n.dirIV, n.dirIVOK
	fs.mu.Unlock()
	if ok {
		return iv, nil
	}
	dfd, err := fs.dirFd(n)
	if err != nil {
		return iv, err
	}
	iv, err = ciphertree.ReadDirIV(dfd)
	if (errors.Is(err, unix.ENOENT) || errors.Is(err, ciphertree.ErrBadIV)) && !fs.readOnly {
		// A directory whose IV file is missing or empty (a crash right
		// after mkdir) can get a new one as long as it holds no names.
		var empty bool
		if empty, err = ciphertree.IsEmpty(dfd); err == nil {
			if !empty {
				err = fmt.Errorf("%s has entries but no valid %s: %w", fs.lowerPath(n, ""), crypt.DirIVFile, syscall.EIO)
			} else {
				unix.Unlinkat(dfd, crypt.DirIVFile, 0)
				if iv, err = ciphertree.WriteDirIV(dfd); err == nil {
					fs.ivs.add(n)
				}
			}
		}
	}
	if err != nil {
		fs.log.Error().Str("op", "diriv").Uint64("inode", n.ID).Str("path", fs.lowerPath(n, crypt.DirIVFile)).Err(err).Msg("cannot read directory IV")
		return iv, syscall.EIO
	}
	fs.mu.Lock()
	n.dirIV, n.dirIVOK = iv, true
	fs.mu.Unlock()
	return iv, nil
}

// lowerName maps a plaintext name in directory p to its lower name.
func (fs *FS) lowerName(p *inode, name string) (ciphertree.Name, error) {
	if len(name) > crypt.MaxLowerName {
		return ciphertree.Name{}, syscall.ENAMETOOLONG
	}
	iv, err := fs.dirIV(p)
	if err != nil {
		return ciphertree.Name{}, err
	}
	return ciphertree.EncodeName(fs.suite, iv, name)
}

// attrsFromStat converts a lower stat to plaintext attributes. Symlink
// sizes need the decrypted target, which the caller supplies.
func (fs *FS) attrsFromStat(n *inode, st *unix.Stat_t, symlinkLen int) fuseops.InodeAttributes {
	a := fuseops.InodeAttributes{
		Size:  uint64(st.Size),
		Nlink: uint32(st.Nlink),
		Mode:  fileMode(st.Mode),
		Rdev:  uint32(st.Rdev),
		Atime: time.Unix(st.Atim.Sec, st.Atim.Nsec),
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		Uid:   st.Uid,
		Gid:   st.Gid,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		// A size that cannot be a cipher file's is reported rounded down;
		// reading its last block then fails authentication (EIO + log).
		a.Size, _ = crypt.PlainSize(uint64(st.Size))
	case unix.S_IFLNK:
		a.Size = uint64(symlinkLen)
	}
	return a
}

// fileMode converts unix mode bits to an os.FileMode as jacobsa/fuse wants.
func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFCHR:
		mode |= os.ModeCharDevice | os.ModeDevice
	case unix.S_IFBLK:
		mode |= os.ModeDevice
	case unix.S_IFIFO:
		mode |= os.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	case unix.S_IFSOCK:
		mode |= os.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// unixMode converts an os.FileMode back to unix mode bits (type included).
func unixMode(m os.FileMode) uint32 {
	out := uint32(m.Perm())
	switch {
	case m&os.ModeDir != 0:
		out |= unix.S_IFDIR
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice != 0:
		out |= unix.S_IFCHR
	case m&os.ModeDevice != 0:
		out |= unix.S_IFBLK
	case m&os.ModeNamedPipe != 0:
		out |= unix.S_IFIFO
	case m&os.ModeSymlink != 0:
		out |= unix.S_IFLNK
	case m&os.ModeSocket != 0:
		out |= unix.S_IFSOCK
	default:
		out |= unix.S_IFREG
	}
	if m&os.ModeSetuid != 0 {
		out |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		out |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		out |= unix.S_ISVTX
	}
	return out
}

// symlinkTarget returns the decrypted target of symlink n.
func (fs *FS) symlinkTarget(n *inode) (string, error) {
	fs.mu.Lock()
	t, ok := n.target, n.targetOK
	fs.mu.Unlock()
	if ok {
		return t, nil
	}
	for _, l := range fs.linksOf(n) {
		pfd, err := fs.dirFd(l.parent)
		if err != nil {
			continue
		}
		stored, err := ciphertree.Readlinkat(pfd, l.lower)
		if err != nil {
			continue
		}
		t, err := fs.suite.DecryptSymlink(stored)
		if err != nil {
			return "", fs.authFailed("readlink", l.parent, l.lower, err)
		}
		fs.mu.Lock()
		n.target, n.targetOK = t, true
		fs.mu.Unlock()
		return t, nil
	}
	return "", syscall.ENOENT
}

// freshAttrs stats n's lower file and caches the result. Call with n's
// lock held (either mode), so the cached value cannot be older than a
// change that finished before.
func (fs *FS) freshAttrs(n *inode) (fuseops.InodeAttributes, error) {
	var st unix.Stat_t
	if err := fs.stat(n, &st); err != nil {
		return fuseops.InodeAttributes{}, err
	}
	tlen := 0
	if n.kind == unix.S_IFLNK {
		t, err := fs.symlinkTarget(n)
		if err != nil {
			return fuseops.InodeAttributes{}, err
		}
		tlen = len(t)
	}
	a := fs.attrsFromStat(n, &st, tlen)
	fs.cache.SetAttr(&n.Node, a)
	return a, nil
}

// attrs returns n's attributes, from the cache when possible. Call with
// n's lock held (either mode).
func (fs *FS) attrs(n *inode) (fuseops.InodeAttributes, error) {
	if a, ok := fs.cache.ServeAttr(&n.Node); ok {
		return a, nil
	}
	return fs.freshAttrs(n)
}

// seen is a lower stat of an inode, taken outside the inode's lock, with
// the cache epoch from before it was taken. fresh marks a stat of an inode
// this request just created, which no other request can have changed.
type seen struct {
	st    unix.Stat_t
	epoch uint64
	fresh bool
}

// entry fills a reply entry for child found or created in parent under
// name, and publishes the dentry. The caller holds parent's lock and has
// counted the kernel reference (remember with ref). s, if not nil, spares
// a second stat when it is still current.
func (fs *FS) entry(parent *inode, name string, child *inode, s *seen, out *fuseops.ChildInodeEntry) error {
	child.RLock()
	a, ok := fs.cache.ServeAttr(&child.Node)
	var err error
	switch {
	case ok:
	case s != nil && (s.fresh || fs.cache.Epoch() == s.epoch) && s.st.Ino == child.ino:
		tlen := 0
		if child.kind == unix.S_IFLNK {
			var t string
			t, err = fs.symlinkTarget(child)
			tlen = len(t)
		}
		if err == nil {
			a = fs.attrsFromStat(child, &s.st, tlen)
			fs.cache.SetAttr(&child.Node, a)
		}
	default:
		a, err = fs.freshAttrs(child)
	}
	if err == nil {
		fs.cache.SetChild(&parent.Node, name, child.ID, 0)
	}
	child.RUnlock()
	if err != nil {
		fs.forget(child.ID, 1)
		return err
	}
	fs.markPublished(child)
	*out = fuseops.ChildInodeEntry{
		Child:                fuseops.InodeID(child.ID),
		Attributes:           a,
		AttributesExpiration: fs.cache.AttrExpiration(),
		EntryExpiration:      fs.cache.EntryExpiration(),
	}
	return nil
}

// negative fills a negative entry reply and caches it.
func (fs *FS) negative(parent *inode, name string, out *fuseops.ChildInodeEntry) {
	fs.cache.SetChild(&parent.Node, name, 0, 0)
	*out = fuseops.ChildInodeEntry{EntryExpiration: fs.cache.NegativeExpiration()}
}

// caller returns the uid and gid of the process behind an operation.
func caller(ctx context.Context) (uid, gid uint32) {
	// GetFuseContext only reads the request header kept in ctx.
	uid, gid, _, err := (*fuse.MountedFileSystem)(nil).GetFuseContext(ctx)
	if err != nil {
		return 0, 0
	}
	return uid, gid
}
