package fusefs

import (
	"context"
	"reflect"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// opDesc describes one kind of request jacobsa/fuse hands the server: the
// FUSE opcode the kernel sent (for the statistics and the log), the inode
// the request is about, where it is served, its handler and, for the
// requests the metadata cache can answer, its answer from the cache
// alone. opTable is the one list of them: dispatch, statistics, logging
// and the inline answers all read it.
type opDesc struct {
	code fuseop.Opcode
	// where says which goroutine serves the request.
	where serveMode
	// small reports whether a request of a slow kind moves few enough
	// bytes to be served like a quick one (see smallIO); nil: never.
	small func(op any) bool
	// inode returns the inode the request is about (the directory for
	// name operations); nil for requests about none.
	inode func(op any) uint64
	// serve runs the handler.
	serve func(fs *FS, ctx context.Context, op any) error
	// cached answers from the metadata cache alone, without blocking
	// and without touching the lower directory, or reports that it
	// cannot (see ServeOps); nil for requests it never can.
	cached func(fs *FS, op any) (syscall.Errno, bool)
}

// serveMode is where a request is served.
type serveMode int

const (
	// onReader: always on the goroutine that read it (FORGETs: cheap,
	// without a reply, and they come in floods).
	onReader serveMode = iota
	// quick: on the reader when nothing else is being served (a
	// goroutine would add a hand-off and buy no parallelism), else in a
	// goroutine of its own. Metadata requests.
	quick
	// slow: in a goroutine of its own: data transfers, syncs and
	// listings, which may wait for the disk; a READ or WRITE of at most
	// smallIO bytes is served like a quick request (opDesc.small).
	slow
)

// quickFor reports whether op, described by d, is served as a quick
// request: on the reader when nothing else is being served.
func (d *opDesc) quickFor(op any) bool {
	return d.where == quick || d.small != nil && d.small(op)
}

// smallIO is the most data a READ or WRITE may move to be served like a
// quick request: on the reader when nothing else is being served. A
// 4 KiB random read or a small file's only block then costs one thread
// hand-off less (futex waits and the Go scheduler were a quarter of the
// daemon's CPU in make bench's random reads, docs/performance.md); larger
// transfers keep their goroutine, so that the reader goes on reading
// while their blocks are opened or sealed on both cores. The stall timer
// covers a small request as any quick one (a cold block on a slow disk).
const smallIO = 32 << 10

// unknown describes requests the table does not list (jacobsa/fuse's
// sentinel for opcodes it does not decode): ENOSYS.
var unknown = &opDesc{
	where: quick,
	serve: func(*FS, context.Context, any) error { return syscall.ENOSYS },
}

// describe returns the description of op (unknown when not listed).
func describe(op any) *opDesc {
	if d := opTable[reflect.TypeOf(op)]; d != nil {
		return d
	}
	return unknown
}

type tableEntry struct {
	typ  reflect.Type
	desc *opDesc
}

// op describes requests of type *T.
func op[T any](code fuseop.Opcode, where serveMode, inode func(*T) fuseops.InodeID, serve func(*FS, context.Context, *T) error) tableEntry {
	d := &opDesc{code: code, where: where,
		serve: func(fs *FS, ctx context.Context, o any) error { return serve(fs, ctx, o.(*T)) }}
	if inode != nil {
		d.inode = func(o any) uint64 { return uint64(inode(o.(*T))) }
	}
	return tableEntry{reflect.TypeFor[*T](), d}
}

// withCache adds the answer from the cache alone to e.
func withCache[T any](e tableEntry, cached func(*FS, *T) (syscall.Errno, bool)) tableEntry {
	e.desc.cached = func(fs *FS, o any) (syscall.Errno, bool) { return cached(fs, o.(*T)) }
	return e
}

// smallIf marks e's requests as small when size(op) <= smallIO.
func smallIf[T any](e tableEntry, size func(*T) int) tableEntry {
	e.desc.small = func(o any) bool { return size(o.(*T)) <= smallIO }
	return e
}

func table(entries ...tableEntry) map[reflect.Type]*opDesc {
	t := make(map[reflect.Type]*opDesc, len(entries))
	for _, e := range entries {
		if t[e.typ] != nil {
			panic("fusefs: " + e.typ.String() + " listed twice")
		}
		t[e.typ] = e.desc
	}
	return t
}

var opTable = table(
	// Answered from the metadata cache when it can (fast.go).
	withCache(op(fuseop.Lookup, quick, func(o *fuseops.LookUpInodeOp) fuseops.InodeID { return o.Parent }, (*FS).LookUpInode),
		(*FS).cachedLookUp),
	withCache(op(fuseop.Getattr, quick, func(o *fuseops.GetInodeAttributesOp) fuseops.InodeID { return o.Inode }, (*FS).GetInodeAttributes),
		(*FS).cachedGetattr),
	withCache(op(fuseop.Getxattr, quick, func(o *fuseops.GetXattrOp) fuseops.InodeID { return o.Inode }, (*FS).GetXattr),
		(*FS).cachedGetxattr),

	op(fuseop.Forget, onReader, func(o *fuseops.ForgetInodeOp) fuseops.InodeID { return o.Inode }, (*FS).ForgetInode),
	op(fuseop.BatchForget, onReader, nil, (*FS).BatchForget),

	op(fuseop.Setattr, quick, func(o *fuseops.SetInodeAttributesOp) fuseops.InodeID { return o.Inode }, (*FS).SetInodeAttributes),
	op(fuseop.Mkdir, quick, func(o *fuseops.MkDirOp) fuseops.InodeID { return o.Parent }, (*FS).MkDir),
	op(fuseop.Mknod, quick, func(o *fuseops.MkNodeOp) fuseops.InodeID { return o.Parent }, (*FS).MkNode),
	op(fuseop.Create, quick, func(o *fuseops.CreateFileOp) fuseops.InodeID { return o.Parent }, (*FS).CreateFile),
	op(fuseop.Link, quick, func(o *fuseops.CreateLinkOp) fuseops.InodeID { return o.Target }, (*FS).CreateLink),
	op(fuseop.Symlink, quick, func(o *fuseops.CreateSymlinkOp) fuseops.InodeID { return o.Parent }, (*FS).CreateSymlink),
	op(fuseop.Rename, quick, func(o *fuseops.RenameOp) fuseops.InodeID { return o.OldParent }, (*FS).Rename),
	op(fuseop.Rmdir, quick, func(o *fuseops.RmDirOp) fuseops.InodeID { return o.Parent }, (*FS).RmDir),
	op(fuseop.Unlink, quick, func(o *fuseops.UnlinkOp) fuseops.InodeID { return o.Parent }, (*FS).Unlink),
	op(fuseop.Readlink, quick, func(o *fuseops.ReadSymlinkOp) fuseops.InodeID { return o.Inode }, (*FS).ReadSymlink),
	op(fuseop.Listxattr, quick, func(o *fuseops.ListXattrOp) fuseops.InodeID { return o.Inode }, (*FS).ListXattr),
	op(fuseop.Setxattr, quick, func(o *fuseops.SetXattrOp) fuseops.InodeID { return o.Inode }, (*FS).SetXattr),
	op(fuseop.Removexattr, quick, func(o *fuseops.RemoveXattrOp) fuseops.InodeID { return o.Inode }, (*FS).RemoveXattr),
	op(fuseop.Statfs, quick, nil, (*FS).StatFS),
	op(fuseop.Syncfs, quick, func(o *fuseops.SyncFSOp) fuseops.InodeID { return o.Inode }, (*FS).SyncFS),

	op(fuseop.Opendir, quick, func(o *fuseops.OpenDirOp) fuseops.InodeID { return o.Inode }, (*FS).OpenDir),
	op(fuseop.Readdir, slow, func(o *fuseops.ReadDirOp) fuseops.InodeID { return o.Inode }, (*FS).ReadDir),
	op(fuseop.Readdirplus, slow, func(o *fuseops.ReadDirPlusOp) fuseops.InodeID { return o.Inode }, (*FS).ReadDirPlus),
	op(fuseop.Releasedir, quick, nil, (*FS).ReleaseDirHandle),

	op(fuseop.Open, quick, func(o *fuseops.OpenFileOp) fuseops.InodeID { return o.Inode }, (*FS).OpenFile),
	smallIf(op(fuseop.Read, slow, func(o *fuseops.ReadFileOp) fuseops.InodeID { return o.Inode }, (*FS).ReadFile),
		func(o *fuseops.ReadFileOp) int { return int(o.Size) }),
	smallIf(op(fuseop.Write, slow, func(o *fuseops.WriteFileOp) fuseops.InodeID { return o.Inode }, (*FS).WriteFile),
		func(o *fuseops.WriteFileOp) int { return len(o.Data) }),
	op(fuseop.Fallocate, slow, func(o *fuseops.FallocateOp) fuseops.InodeID { return o.Inode }, (*FS).Fallocate),
	// FSYNC and FSYNCDIR both arrive as a SyncFileOp.
	op(fuseop.Fsync, slow, func(o *fuseops.SyncFileOp) fuseops.InodeID { return o.Inode }, (*FS).SyncFile),
	op(fuseop.Flush, quick, func(o *fuseops.FlushFileOp) fuseops.InodeID { return o.Inode }, (*FS).FlushFile),
	op(fuseop.Release, quick, nil, (*FS).ReleaseFileHandle),
)
