package fusefs

import (
	"math/bits"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// Stats counts the requests the daemon answered, per FUSE opcode, with a
// log2 histogram of their service time. It works on every kernel (6.1 has
// no fuse tracepoints) and is what `cryptfs stats` shows next to the eBPF
// figures.
type Stats struct {
	ops [maxOpcode]opCounter
}

const (
	maxOpcode   = 64
	histBuckets = 40 // bucket i: [2^i, 2^(i+1)) ns
)

type opCounter struct {
	count  atomic.Uint64
	errors atomic.Uint64
	hist   [histBuckets]atomic.Uint64
}

// OpStats is a snapshot of one opcode's figures.
type OpStats struct {
	Opcode fuseop.Opcode
	Count  uint64
	Errors uint64
	// Hist[i] counts requests served in [2^i, 2^(i+1)) nanoseconds.
	Hist []uint64
}

func newStats() *Stats { return &Stats{} }

// Stats returns the daemon's request counters.
func (fs *FS) Stats() *Stats { return fs.stats }

func (s *Stats) record(op any, d time.Duration, errno syscall.Errno) {
	code := opcodeOf(op)
	if code >= maxOpcode {
		return
	}
	c := &s.ops[code]
	c.count.Add(1)
	// A negative lookup, an absent or unsupported xattr or a deliberate
	// ENOSYS (FLUSH) is an answer, not a failure.
	if errno != 0 && errno != syscall.ENOENT && errno != syscall.ENODATA && errno != syscall.ENOSYS &&
		!(errno == syscall.EOPNOTSUPP && code == fuseop.Getxattr) {
		c.errors.Add(1)
	}
	ns := max(uint64(d.Nanoseconds()), 1)
	b := min(bits.Len64(ns)-1, histBuckets-1)
	c.hist[b].Add(1)
}

// Snapshot returns the figures of every opcode seen so far.
func (s *Stats) Snapshot() []OpStats {
	var out []OpStats
	for i := range s.ops {
		c := &s.ops[i]
		n := c.count.Load()
		if n == 0 {
			continue
		}
		o := OpStats{Opcode: fuseop.Opcode(i), Count: n, Errors: c.errors.Load(), Hist: make([]uint64, histBuckets)}
		for b := range c.hist {
			o.Hist[b] = c.hist[b].Load()
		}
		out = append(out, o)
	}
	return out
}

func opName(op any) string { return opcodeOf(op).String() }

// opcodeOf maps a jacobsa/fuse op to the FUSE opcode the kernel sent.
func opcodeOf(op any) fuseop.Opcode {
	switch op.(type) {
	case *fuseops.LookUpInodeOp:
		return fuseop.Lookup
	case *fuseops.GetInodeAttributesOp:
		return fuseop.Getattr
	case *fuseops.SetInodeAttributesOp:
		return fuseop.Setattr
	case *fuseops.ForgetInodeOp:
		return fuseop.Forget
	case *fuseops.BatchForgetOp:
		return fuseop.BatchForget
	case *fuseops.MkDirOp:
		return fuseop.Mkdir
	case *fuseops.MkNodeOp:
		return fuseop.Mknod
	case *fuseops.CreateFileOp:
		return fuseop.Create
	case *fuseops.CreateLinkOp:
		return fuseop.Link
	case *fuseops.CreateSymlinkOp:
		return fuseop.Symlink
	case *fuseops.RenameOp:
		return fuseop.Rename
	case *fuseops.RmDirOp:
		return fuseop.Rmdir
	case *fuseops.UnlinkOp:
		return fuseop.Unlink
	case *fuseops.OpenDirOp:
		return fuseop.Opendir
	case *fuseops.ReadDirPlusOp:
		return fuseop.Readdirplus
	case *fuseops.ReadDirOp:
		return fuseop.Readdir
	case *fuseops.ReleaseDirHandleOp:
		return fuseop.Releasedir
	case *fuseops.OpenFileOp:
		return fuseop.Open
	case *fuseops.ReadFileOp:
		return fuseop.Read
	case *fuseops.WriteFileOp:
		return fuseop.Write
	case *fuseops.SyncFileOp:
		return fuseop.Fsync
	case *fuseops.FlushFileOp:
		return fuseop.Flush
	case *fuseops.ReleaseFileHandleOp:
		return fuseop.Release
	case *fuseops.ReadSymlinkOp:
		return fuseop.Readlink
	case *fuseops.GetXattrOp:
		return fuseop.Getxattr
	case *fuseops.ListXattrOp:
		return fuseop.Listxattr
	case *fuseops.SetXattrOp:
		return fuseop.Setxattr
	case *fuseops.RemoveXattrOp:
		return fuseop.Removexattr
	case *fuseops.FallocateOp:
		return fuseop.Fallocate
	case *fuseops.StatFSOp:
		return fuseop.Statfs
	case *fuseops.SyncFSOp:
		return fuseop.Syncfs
	default:
		return 0
	}
}

// opInode returns the inode a request is about (the directory for name
// operations), 0 for requests about no inode.
func opInode(op any) uint64 {
	switch o := op.(type) {
	case *fuseops.LookUpInodeOp:
		return uint64(o.Parent)
	case *fuseops.GetInodeAttributesOp:
		return uint64(o.Inode)
	case *fuseops.SetInodeAttributesOp:
		return uint64(o.Inode)
	case *fuseops.ForgetInodeOp:
		return uint64(o.Inode)
	case *fuseops.MkDirOp:
		return uint64(o.Parent)
	case *fuseops.MkNodeOp:
		return uint64(o.Parent)
	case *fuseops.CreateFileOp:
		return uint64(o.Parent)
	case *fuseops.CreateLinkOp:
		return uint64(o.Target)
	case *fuseops.CreateSymlinkOp:
		return uint64(o.Parent)
	case *fuseops.RenameOp:
		return uint64(o.OldParent)
	case *fuseops.RmDirOp:
		return uint64(o.Parent)
	case *fuseops.UnlinkOp:
		return uint64(o.Parent)
	case *fuseops.OpenDirOp:
		return uint64(o.Inode)
	case *fuseops.ReadDirOp:
		return uint64(o.Inode)
	case *fuseops.ReadDirPlusOp:
		return uint64(o.Inode)
	case *fuseops.OpenFileOp:
		return uint64(o.Inode)
	case *fuseops.ReadFileOp:
		return uint64(o.Inode)
	case *fuseops.WriteFileOp:
		return uint64(o.Inode)
	case *fuseops.SyncFileOp:
		return uint64(o.Inode)
	case *fuseops.FlushFileOp:
		return uint64(o.Inode)
	case *fuseops.ReadSymlinkOp:
		return uint64(o.Inode)
	case *fuseops.GetXattrOp:
		return uint64(o.Inode)
	case *fuseops.ListXattrOp:
		return uint64(o.Inode)
	case *fuseops.SetXattrOp:
		return uint64(o.Inode)
	case *fuseops.RemoveXattrOp:
		return uint64(o.Inode)
	case *fuseops.FallocateOp:
		return uint64(o.Inode)
	}
	return 0
}
