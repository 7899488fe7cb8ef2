//go:build linux

package fuse_test

import (
	"context"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
)

// memFS is the file system the tests mount: one flat directory of regular
// files held in memory. Everything is served with zero entry and attribute
// validity (every stat is a round trip), except "note", which the kernel may
// cache for an hour (the notification test needs a cache to invalidate).
// "slow" answers a READ only when the request is interrupted (or after 30
// s), and is opened with direct I/O so that each read(2) is a READ of its
// own, sent by the reader itself (interruptible).
type memFS struct {
	mu      sync.Mutex
	inodes  map[fuseops.InodeID]*memInode
	names   map[string]fuseops.InodeID
	next    fuseops.InodeID
	uid     uint32
	gid     uint32
	mtime   time.Time
	handles atomic.Uint64

	slowWaiting     atomic.Int32 // READs of "slow" in progress
	slowInterrupted atomic.Int32 // READs of "slow" ended by an interrupt
}

type memInode struct {
	name    string
	data    []byte
	mode    os.FileMode
	lookups uint64
	dir     bool
}

const (
	noteName = "note"
	slowName = "slow"
	bigName  = "big"
	bigSize  = 1 << 20
)

func newMemFS() *memFS {
	fs := &memFS{
		inodes: map[fuseops.InodeID]*memInode{fuseops.RootInodeID: {dir: true, mode: os.ModeDir | 0o777}},
		names:  map[string]fuseops.InodeID{},
		next:   fuseops.RootInodeID + 1,
		uid:    uint32(os.Getuid()),
		gid:    uint32(os.Getgid()),
		mtime:  time.Now(),
	}
	fs.add(noteName, []byte("old1"))
	fs.add(slowName, nil)
	big := make([]byte, bigSize)
	for i := range big {
		big[i] = byte(i*7 + i/4096)
	}
	fs.add(bigName, big)
	return fs
}

func (fs *memFS) add(name string, data []byte) *memInode {
	n := &memInode{name: name, data: data, mode: 0o666}
	fs.inodes[fs.next] = n
	fs.names[name] = fs.next
	fs.next++
	return n
}

func (fs *memFS) attrs(id fuseops.InodeID, n *memInode) fuseops.InodeAttributes {
	a := fuseops.InodeAttributes{
		Size:  uint64(len(n.data)),
		Nlink: 1,
		Mode:  n.mode,
		Atime: fs.mtime, Mtime: fs.mtime, Ctime: fs.mtime,
		Uid: fs.uid, Gid: fs.gid,
	}
	if n.dir {
		a.Nlink = 2
	}
	return a
}

// expiration is how long the kernel may cache n's entry and attributes.
func expiration(n *memInode) time.Time {
	if n.name == noteName {
		return time.Now().Add(time.Hour)
	}
	return time.Time{}
}

func (fs *memFS) entry(id fuseops.InodeID, n *memInode) fuseops.ChildInodeEntry {
	n.lookups++
	return fuseops.ChildInodeEntry{
		Child:                id,
		Attributes:           fs.attrs(id, n),
		AttributesExpiration: expiration(n),
		EntryExpiration:      expiration(n),
	}
}

// swap replaces the content of a file by one of the same length (the
// writeback cache owns the size of cached files) without telling the kernel.
func (fs *memFS) swap(name string, data []byte) (fuseops.InodeID, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	id, ok := fs.names[name]
	if !ok {
		return 0, false
	}
	fs.inodes[id].data = append([]byte(nil), data...)
	return id, true
}

// handle serves one op; its error goes to the kernel as is (a bare errno).
func (fs *memFS) handle(ctx context.Context, op any) error {
	switch o := op.(type) {
	case *fuseops.ReadFileOp:
		return fs.read(ctx, o)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	switch o := op.(type) {
	case *fuseops.StatFSOp:
		o.BlockSize, o.Blocks, o.BlocksFree, o.BlocksAvailable = 4096, 1<<20, 1<<19, 1<<19
		o.IoSize, o.Inodes, o.InodesFree = 4096, 1<<20, 1<<19
	case *fuseops.LookUpInodeOp:
		if o.Parent != fuseops.RootInodeID {
			return syscall.ENOENT
		}
		id, ok := fs.names[o.Name]
		if !ok {
			return syscall.ENOENT
		}
		o.Entry = fs.entry(id, fs.inodes[id])
	case *fuseops.GetInodeAttributesOp:
		n, ok := fs.inodes[o.Inode]
		if !ok {
			return syscall.ENOENT
		}
		o.Attributes, o.AttributesExpiration = fs.attrs(o.Inode, n), expiration(n)
	case *fuseops.SetInodeAttributesOp:
		n, ok := fs.inodes[o.Inode]
		if !ok {
			return syscall.ENOENT
		}
		if o.Size != nil {
			d := make([]byte, *o.Size)
			copy(d, n.data)
			n.data = d
		}
		if o.Mode != nil {
			n.mode = n.mode&os.ModeType | o.Mode.Perm()
		}
		o.Attributes, o.AttributesExpiration = fs.attrs(o.Inode, n), expiration(n)
	case *fuseops.ForgetInodeOp:
		fs.forget(o.Inode, o.N)
	case *fuseops.BatchForgetOp:
		for _, e := range o.Entries {
			fs.forget(e.Inode, e.N)
		}
	case *fuseops.CreateFileOp:
		if o.Parent != fuseops.RootInodeID {
			return syscall.ENOENT
		}
		if _, ok := fs.names[o.Name]; ok {
			return syscall.EEXIST
		}
		id := fs.next
		n := fs.add(o.Name, nil)
		n.mode = o.Mode.Perm()
		o.Entry = fs.entry(id, n)
		o.Handle = fuseops.HandleID(fs.handles.Add(1))
	case *fuseops.UnlinkOp:
		id, ok := fs.names[o.Name]
		if !ok || o.Parent != fuseops.RootInodeID {
			return syscall.ENOENT
		}
		delete(fs.names, o.Name)
		fs.inodes[id].name = ""
	case *fuseops.OpenFileOp:
		n, ok := fs.inodes[o.Inode]
		if !ok {
			return syscall.ENOENT
		}
		o.Handle = fuseops.HandleID(fs.handles.Add(1))
		o.KeepPageCache = n.name == noteName
		o.UseDirectIO = n.name == slowName
	case *fuseops.WriteFileOp:
		n, ok := fs.inodes[o.Inode]
		if !ok {
			return syscall.ENOENT
		}
		if end := int(o.Offset) + len(o.Data); end > len(n.data) {
			d := make([]byte, end)
			copy(d, n.data)
			n.data = d
		}
		copy(n.data[o.Offset:], o.Data)
	case *fuseops.OpenDirOp:
		o.Handle = fuseops.HandleID(fs.handles.Add(1))
	case *fuseops.ReadDirOp:
		fs.readDir(o)
	case *fuseops.GetXattrOp, *fuseops.ListXattrOp:
		return syscall.ENODATA
	case *fuseops.FlushFileOp, *fuseops.ReleaseFileHandleOp, *fuseops.ReleaseDirHandleOp, *fuseops.SyncFileOp:
	default:
		return syscall.ENOSYS
	}
	return nil
}

func (fs *memFS) forget(id fuseops.InodeID, n uint64) {
	in, ok := fs.inodes[id]
	if !ok || id == fuseops.RootInodeID {
		return
	}
	in.lookups -= min(n, in.lookups)
	if in.lookups == 0 && in.name == "" {
		delete(fs.inodes, id)
	}
}

func (fs *memFS) read(ctx context.Context, o *fuseops.ReadFileOp) error {
	fs.mu.Lock()
	n, ok := fs.inodes[o.Inode]
	var data []byte
	if ok {
		data = n.data
	}
	slow := ok && n.name == slowName
	fs.mu.Unlock()
	if !ok {
		return syscall.ENOENT
	}
	if slow {
		fs.slowWaiting.Add(1)
		defer fs.slowWaiting.Add(-1)
		select {
		case <-ctx.Done():
			fs.slowInterrupted.Add(1)
			return syscall.EINTR
		case <-time.After(30 * time.Second):
			return nil
		}
	}
	if o.Offset < int64(len(data)) {
		o.BytesRead = copy(o.Dst, data[o.Offset:])
	}
	return nil
}

func (fs *memFS) readDir(o *fuseops.ReadDirOp) {
	names := make([]string, 0, len(fs.names))
	for name := range fs.names {
		names = append(names, name)
	}
	sort.Strings(names)
	for i := int(o.Offset); i < len(names); i++ {
		d := fuseutil.Dirent{Offset: fuseops.DirOffset(i + 1), Inode: fs.names[names[i]], Name: names[i], Type: fuseutil.DT_File}
		w := fuseutil.WriteDirent(o.Dst[o.BytesRead:], d)
		if w == 0 {
			break
		}
		o.BytesRead += w
	}
}

// server is a fuse.Server built like cryptfs's: FORGETs and cheap requests
// are answered on the goroutine that read them when nothing else is in
// flight, anything else gets a goroutine. It counts the ops it read per
// source of requests.
type server struct {
	fs       *memFS
	wg       sync.WaitGroup
	inflight atomic.Int32
	counts   opCounts
}

type opCounts struct {
	mu sync.Mutex
	m  map[string]map[string]int // source -> op name -> count
}

func (c *opCounts) add(source, op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]map[string]int{}
	}
	if c.m[source] == nil {
		c.m[source] = map[string]int{}
	}
	c.m[source][op]++
}

func (c *opCounts) snapshot() map[string]map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]map[string]int{}
	for s, m := range c.m {
		out[s] = map[string]int{}
		for k, v := range m {
			out[s][k] = v
		}
	}
	return out
}

func (s *server) ServeOps(c *fuse.Connection) {
	source := sourceOf(c)
	for {
		ctx, op, err := c.ReadOp()
		if err == io.EOF {
			break
		}
		if err != nil {
			println("testfs: ReadOp:", err.Error())
			break
		}
		s.counts.add(source, opName(op))
		switch op.(type) {
		case *fuseops.ForgetInodeOp, *fuseops.BatchForgetOp:
			s.serve(c, ctx, op)
			continue
		case *fuseops.ReadFileOp, *fuseops.WriteFileOp:
		default:
			if s.inflight.Load() == 0 {
				s.serve(c, ctx, op)
				continue
			}
		}
		s.wg.Add(1)
		s.inflight.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.inflight.Add(-1)
			s.serve(c, ctx, op)
		}()
	}
	s.wg.Wait()
}

func (s *server) serve(c *fuse.Connection, ctx context.Context, op any) {
	c.Reply(ctx, s.fs.handle(ctx, op))
}
