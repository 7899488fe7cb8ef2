package reversefs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// ConfigName is the reverse config's name in the plaintext directory,
// unless the user keeps it elsewhere (--config).
const ConfigName = ".cryptfs.reverse.conf"

// ViewConfigName is the name under which the view shows the reverse
// config: the name forward mode reads.
const ViewConfigName = "cryptfs.conf"

// cacheTTL is how long the kernel may keep entries and attributes: the
// plaintext changes behind the view, and changes show within this bound.
const cacheTTL = time.Second

// Config is what a view needs.
type Config struct {
	Plain   string         // the plaintext directory
	Config  string         // the reverse config file, shown as the view's cryptfs.conf (as it is at New)
	Reverse *crypt.Reverse // the keys (not wiped by the file system)
	Log     zerolog.Logger
}

// FS is the reverse view. Its methods are the fuseutil.FileSystem ones.
type FS struct {
	rev  *crypt.Reverse
	s    *crypt.Suite
	root int // O_PATH descriptor of the plaintext directory
	log  zerolog.Logger

	// The reverse config as it was at mount: the view's cryptfs.conf.
	confData []byte
	confStat unix.Stat_t

	// Root entries that are the reverse config, its backup and its
	// temporary files when the config lives in the plaintext root.
	hidden    map[string]bool
	hiddenTmp string // prefix of the config writer's temporary files ("" if none)

	mu      sync.Mutex
	nodes   map[fuseops.InodeID]*node
	ids     map[nodeKey]fuseops.InodeID
	handles map[fuseops.HandleID]*handle
	nextH   fuseops.HandleID
}

// nodeKey is a node's identity: what it is and the plaintext path it
// stands for (a directory's for its IV file, an entry's for its sidecar).
type nodeKey struct {
	class uint8 // crypt.InodeClassOf(st_mode), or a crypt.InodeClass* constant
	path  string
}

type node struct {
	key     nodeKey
	lookups uint64
}

var rootKey = nodeKey{class: crypt.InodeClassOf(unix.S_IFDIR), path: ""}

// New opens the plaintext directory of c for a view.
func New(c Config) (*FS, error) {
	fd, err := ciphertree.Openat(unix.AT_FDCWD, c.Plain, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open plaintext directory %s: %w", c.Plain, err)
	}
	fs := &FS{
		rev:     c.Reverse,
		s:       c.Reverse.Suite(),
		root:    fd,
		log:     c.Log,
		hidden:  map[string]bool{},
		nodes:   map[fuseops.InodeID]*node{fuseops.RootInodeID: {key: rootKey, lookups: 1}},
		ids:     map[nodeKey]fuseops.InodeID{rootKey: fuseops.RootInodeID},
		handles: map[fuseops.HandleID]*handle{},
	}
	if fs.confData, err = readConfig(c.Config, &fs.confStat); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("the view's cryptfs.conf: %w", err)
	}
	if cfg, err := config.Parse(fs.confData, config.LoadOptions{AllowWeakKDF: true}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("the view's cryptfs.conf %s: %w", c.Config, err)
	} else if cfg.DeterministicNames() != fs.s.DeterministicNames() {
		unix.Close(fd)
		return nil, fmt.Errorf("the view's cryptfs.conf %s: its feature flags are not the keys' (deterministic names %v)", c.Config, fs.s.DeterministicNames())
	}
	if sameDir(fd, filepath.Dir(c.Config)) {
		base := filepath.Base(c.Config)
		fs.hidden[base] = true
		fs.hidden[base+".bak"] = true
		fs.hiddenTmp = crypt.ReservedPrefix + ".tmp." + base + "."
	}
	return fs, nil
}

// sameDir reports whether dir is the directory behind fd.
func sameDir(fd int, dir string) bool {
	var a, b unix.Stat_t
	if ciphertree.Fstat(fd, &a) != nil || unix.Stat(dir, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// Close releases the plaintext directory and every open handle.
func (fs *FS) Close() error {
	fs.mu.Lock()
	for id, h := range fs.handles {
		h.close()
		delete(fs.handles, id)
	}
	fs.mu.Unlock()
	return unix.Close(fs.root)
}

// Server returns the jacobsa/fuse server of the view.
func (fs *FS) Server() fuse.Server { return fuseutil.NewFileSystemServer(fs) }

// MountConfig is the jacobsa/fuse configuration of a view of source: read
// only, kernel permission checks from the plaintext's modes (the view
// shows them unchanged), asynchronous reads.
func MountConfig(source string, allowOther bool) *fuse.MountConfig {
	cfg := &fuse.MountConfig{
		FSName:           source,
		Subtype:          "cryptfs",
		ReadOnly:         true,
		EnableAsyncReads: true,
		Options:          map[string]string{},
	}
	if allowOther {
		cfg.Options["allow_other"] = ""
	}
	return cfg
}

// isHidden reports whether a plaintext root entry is not part of the view.
func (fs *FS) isHidden(dir, name string) bool {
	if dir != "" {
		return false
	}
	return fs.hidden[name] || (fs.hiddenTmp != "" && len(name) > len(fs.hiddenTmp) && name[:len(fs.hiddenTmp)] == fs.hiddenTmp)
}

// join is the view path of name in directory dir.
func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// split is the inverse of join: the directory and the last name.
func split(p string) (dir, name string) {
	d, n := path.Split(p)
	if d != "" {
		d = d[:len(d)-1]
	}
	return d, n
}

const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// open opens view path p of the plaintext tree, never following a
// symlink, never leaving the tree.
func (fs *FS) open(p string, flags int) (int, error) {
	name := p
	if name == "" {
		name = "."
	}
	how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Resolve: resolveFlags}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(fs.root, name, how)
		// EAGAIN: a concurrent rename or mount raced the resolution.
		if err == unix.EINTR || (err == unix.EAGAIN && tries < 16) {
			continue
		}
		return fd, err
	}
}

// lstat stats view path p without following a final symlink.
func (fs *FS) lstat(p string, st *unix.Stat_t) error {
	fd, err := fs.open(p, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return ciphertree.Fstat(fd, st)
}

// ref returns the inode ID of key, creating its node, and counts one
// lookup the kernel now holds.
func (fs *FS) ref(key nodeKey) (fuseops.InodeID, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	id, err := fs.idLocked(key, true)
	if err != nil {
		return 0, err
	}
	fs.nodes[id].lookups++
	return id, nil
}

// peek returns the inode number key has or would get now, for directory
// listings, without creating a node.
func (fs *FS) peek(key nodeKey) uint64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	id, _ := fs.idLocked(key, false)
	return uint64(id)
}

// idLocked finds the inode number of key: its node's if it has one, else
// the first candidate of crypt.Reverse.Inode that is not 0, not the root's
// and not another node's.
func (fs *FS) idLocked(key nodeKey, create bool) (fuseops.InodeID, error) {
	if id, ok := fs.ids[key]; ok {
		return id, nil
	}
	for attempt := 0; attempt < 256; attempt++ {
		n, err := fs.rev.Inode(uint8(attempt), key.class, key.path)
		if err != nil {
			return 0, err
		}
		id := fuseops.InodeID(n)
		if id <= fuseops.RootInodeID {
			continue
		}
		if _, taken := fs.nodes[id]; taken {
			continue
		}
		if create {
			fs.nodes[id] = &node{key: key}
			fs.ids[key] = id
		}
		return id, nil
	}
	return 0, syscall.EIO // 256 colliding 63-bit candidates: not in this universe
}

// key returns the identity of a node the kernel holds.
func (fs *FS) key(id fuseops.InodeID) (nodeKey, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, ok := fs.nodes[id]
	if !ok {
		return nodeKey{}, syscall.ESTALE
	}
	return n.key, nil
}

func (fs *FS) forget(id fuseops.InodeID, count uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, ok := fs.nodes[id]
	if !ok || id == fuseops.RootInodeID {
		return
	}
	if n.lookups <= count {
		delete(fs.nodes, id)
		delete(fs.ids, n.key)
		return
	}
	n.lookups -= count
}

// ForgetInode drops the kernel's references.
func (fs *FS) ForgetInode(_ context.Context, op *fuseops.ForgetInodeOp) error {
	fs.forget(op.Inode, op.N)
	return nil
}

// BatchForget drops the kernel's references to many inodes.
func (fs *FS) BatchForget(_ context.Context, op *fuseops.BatchForgetOp) error {
	for _, e := range op.Entries {
		fs.forget(e.Inode, e.N)
	}
	return nil
}

// Inodes is the size of the inode table (for cryptfs status).
func (fs *FS) Inodes() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.nodes)
}

// StatFS reports the plaintext file system's figures.
func (fs *FS) StatFS(_ context.Context, op *fuseops.StatFSOp) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fs.root, &st); err != nil {
		return errno(err)
	}
	op.BlockSize = uint32(st.Bsize)
	op.Blocks = st.Blocks
	op.BlocksFree = st.Bfree
	op.BlocksAvailable = st.Bavail
	op.IoSize = 1 << 20
	op.Inodes = st.Files
	op.InodesFree = st.Ffree
	return nil
}

// Destroy is called once the connection ends.
func (fs *FS) Destroy() {}

// errno turns an error into the bare errno jacobsa/fuse passes on (any
// other error becomes EIO there).
func errno(err error) error {
	if err == nil {
		return nil
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// handle is an open file or directory of the view.
type handle struct {
	fd      int          // the plaintext file, or -1
	id      crypt.FileID // its file ID
	data    []byte       // the contents of one of the view's own files
	dir     string       // a directory's view path
	entries []fuseutil.Dirent
	read    bool // a directory was read from: offset 0 again is a rewind
}

func (h *handle) close() {
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
}

func (fs *FS) addHandle(h *handle) fuseops.HandleID {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.nextH++
	fs.handles[fs.nextH] = h
	return fs.nextH
}

func (fs *FS) handle(id fuseops.HandleID) (*handle, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h, ok := fs.handles[id]
	if !ok {
		return nil, syscall.EBADF
	}
	return h, nil
}

func (fs *FS) release(id fuseops.HandleID) {
	fs.mu.Lock()
	h, ok := fs.handles[id]
	delete(fs.handles, id)
	fs.mu.Unlock()
	if ok {
		h.close()
	}
}
