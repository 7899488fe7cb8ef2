package fusefs

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/lowerwatch"
	"github.com/cryptfs/cryptfs/meta"
)

const (
	rootID = fuseops.RootInodeID
	// maxRequestBytes is the largest READ/WRITE payload (MaxWrite, readahead).
	maxRequestBytes = 1 << 20
)

// Config configures a file system over a lower directory.
type Config struct {
	Lower    string       // the cipher directory
	Suite    *crypt.Suite // keys; the FS does not wipe it
	Tier     meta.Tier    // fast-path tier
	FastPath meta.Sink    // the eBPF maps for the EBPF tier, else nil
	ReadOnly bool         // refuse every change (EROFS)
	Log      zerolog.Logger
	// Retain is how many inodes the kernel forgot the EBPF tier keeps in
	// the table and the maps, so that the fast path can answer their next
	// LOOKUP (forget.go); 0 means DefaultRetain.
	Retain int
	// LowerFD, if > 0, is a descriptor of the cipher directory that New
	// uses instead of opening Lower (which then only names it in logs):
	// the very directory the caller locked and checked.
	LowerFD int
	// Shared is shared-storage mode (shared.go): the lower directory may
	// change behind the daemon's back. Tier must then be Off or
	// KernelCache, and FastPath nil.
	Shared bool
	// Watch, in shared mode, receives a mark for every lower directory
	// the daemon has a node for; the caller runs it with LowerChanged as
	// the callback once the mount is served (notify.go). Nil: no change
	// notification (outside changes show within the validity bound).
	Watch *lowerwatch.Watcher
}

// DefaultRetain is Config.Retain's default: the capacity of the fast
// path's attribute map (fastpath.MaxAttrs), beyond which its LRU evicts
// attributes anyway.
const DefaultRetain = 32768

// FS is the slow-path daemon: a jacobsa/fuse file system that stores every
// file encrypted in the lower directory. Create it with New and serve it
// with Server.
type FS struct {
	suite    *crypt.Suite
	log      zerolog.Logger
	cache    *meta.Cache
	fast     meta.Sink
	readOnly bool
	shared   bool // shared storage (shared.go)
	asRoot   bool // the daemon runs as root: create files as the caller
	lower    string
	rootDev  uint64

	mu          sync.Mutex
	inodes      map[uint64]*inode
	ids         map[devIno]uint64
	nextPrivate uint64
	handles     map[fuseops.HandleID]any // *handle or *dirHandle
	nextHandle  fuseops.HandleID

	// Published inodes the kernel forgot (forget.go), guarded by mu:
	// retained ones, oldest first, and those to withdraw.
	retained       list.List
	retainMax      int
	withdrawals    []*inode
	wakeWithdrawer chan struct{}
	stopWithdrawer chan struct{}
	withdrawerDone chan struct{}
	closed         bool

	warned   sync.Map      // lower paths already reported as undecodable
	rootMode atomic.Uint32 // the plaintext root's stored mode | rootModeSet (rootmode.go)
	ivs      *ivFlusher

	stats *Stats

	// Change notification (notify.go): nil without.
	watch      *lowerwatch.Watcher
	notifier   meta.Notifier
	watchStats watchStats
}

// New opens the lower directory and prepares the file system. notifier may
// be nil (no revocations are then sent to the kernel).
func New(cfg Config, notifier meta.Notifier) (*FS, error) {
	dirfd, name := unix.AT_FDCWD, cfg.Lower
	if cfg.LowerFD > 0 {
		dirfd, name = cfg.LowerFD, "."
	}
	fd, err := ciphertree.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open lower directory %s: %w", cfg.Lower, err)
	}
	var st unix.Stat_t
	if err := ciphertree.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat lower directory %s: %w", cfg.Lower, err)
	}
	if cfg.Shared && (cfg.Tier == meta.EBPF || cfg.FastPath != nil) {
		unix.Close(fd)
		return nil, fmt.Errorf("shared storage cannot use the %s tier (its caches answer without asking the daemon)", meta.EBPF)
	}
	cache := meta.New(cfg.Tier, cfg.FastPath, notifier)
	if cfg.Shared {
		cache = meta.NewShared(cfg.Tier, notifier)
	}
	fs := &FS{
		suite:    cfg.Suite,
		log:      cfg.Log,
		shared:   cfg.Shared,
		cache:    cache,
		fast:     cfg.FastPath,
		readOnly: cfg.ReadOnly,
		asRoot:   os.Geteuid() == 0,
		lower:    cfg.Lower,
		rootDev:  st.Dev,
		inodes:   make(map[uint64]*inode),
		ids:      make(map[devIno]uint64),
		handles:  make(map[fuseops.HandleID]any),
		stats:    newStats(),
		notifier: notifier,
	}
	if cfg.Shared {
		fs.watch = cfg.Watch
	}
	fs.retainMax = cfg.Retain
	if fs.retainMax <= 0 {
		fs.retainMax = DefaultRetain
	}
	fs.ivs = newIVFlusher(fs)
	root := &inode{kind: unix.S_IFDIR, dev: st.Dev, ino: st.Ino, dirfd: fd, refs: 1}
	root.ID = rootID
	fs.inodes[rootID] = root
	fs.ids[devIno{st.Dev, st.Ino}] = rootID
	fs.watchDirLocked(root)
	fs.loadRootMode(fd)
	if !fs.suite.DeterministicNames() {
		iv, err := fs.loadDirIV(root)
		if err != nil {
			fs.ivs.close()
			unix.Close(fd)
			return nil, rootIVError(cfg.Lower, err)
		}
		root.dirIV, root.dirIVOK = iv, true
	}
	if fs.fast != nil {
		fs.wakeWithdrawer = make(chan struct{}, 1)
		fs.stopWithdrawer = make(chan struct{})
		fs.withdrawerDone = make(chan struct{})
		go fs.withdrawer()
	}
	return fs, nil
}

// Inodes returns the number of inodes in the table.
func (fs *FS) Inodes() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.inodes)
}

// Tier returns the active fast-path tier.
func (fs *FS) Tier() meta.Tier { return fs.cache.Tier() }

// Close releases every lower descriptor. Call after the connection ended.
func (fs *FS) Close() {
	if fs.stopWithdrawer != nil {
		close(fs.stopWithdrawer)
		<-fs.withdrawerDone
	}
	fs.ivs.close()
	fs.cache.Close()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closed = true // for rechecks still scheduled (forget.go)
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

// authFailed reports data that failed authentication: one error log line
// naming the cipher path, and EIO for the caller.
func (fs *FS) authFailed(op string, n *inode, name string, err error) error {
	fs.log.Error().Str("op", op).Uint64("inode", n.ID).Str("path", fs.lowerPath(n, name)).
		Err(err).Msg("authentication failed: cipher data was modified or is corrupt")
	return syscall.EIO
}

// internalFailed reports one of cryptfs's own files in directory n (an
// IV or a sidecar) that cannot be used: one error log line naming its
// cipher path, and EIO for the caller. Other errors pass unchanged.
func (fs *FS) internalFailed(op string, n *inode, name string, err error) error {
	if !errors.Is(err, ciphertree.ErrNotRegular) {
		return err
	}
	fs.log.Error().Str("op", op).Uint64("inode", n.ID).Str("path", fs.lowerPath(n, name)).
		Err(err).Msg("an internal file of the cipher tree is not a regular file")
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

// caller returns the uid and gid of the process behind an operation.
func caller(ctx context.Context) (uid, gid uint32) {
	// GetFuseContext only reads the request header kept in ctx.
	uid, gid, _, err := (*fuse.MountedFileSystem)(nil).GetFuseContext(ctx)
	if err != nil {
		return 0, 0
	}
	return uid, gid
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

// SyncFS answers SYNCFS, which the kernel sends only to virtiofs: every
// change is in the lower file system already.
func (fs *FS) SyncFS(ctx context.Context, op *fuseops.SyncFSOp) error { return nil }
