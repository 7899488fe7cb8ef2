package fusefs

import (
	"bytes"
	"context"
	"testing"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/meta"
)

// The hot paths of the daemon, through the same dispatch as the server
// (describe, call, the statistics): 4 KiB reads and writes of an open file
// and a GETATTR from the cache. Run with -benchmem: allocations per request
// are what the GC pays for (docs/performance.md).

// benchFile creates a 1 MiB file and opens it; it returns the file system,
// the inode and the handle.
func benchFile(b *testing.B) (*testFS, *server, fuseops.InodeID, fuseops.HandleID) {
	f := newTestFS(b, meta.KernelCache, nil, 0)
	id := f.create(rootID, "f", bytes.Repeat([]byte("bench"), (1<<20)/5+1))
	op := &fuseops.OpenFileOp{Inode: fuseops.InodeID(id)}
	f.must(f.OpenFile(f.ctx, op))
	b.Cleanup(func() { f.ReleaseFileHandle(f.ctx, &fuseops.ReleaseFileHandleOp{Handle: op.Handle}) })
	return f, &server{fs: f.FS}, fuseops.InodeID(id), op.Handle
}

func BenchmarkReadFile4KiB(b *testing.B) {
	f, s, id, h := benchFile(b)
	dst := make([]byte, crypt.BlockSize)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(crypt.BlockSize)
	i := 0
	for b.Loop() {
		op := &fuseops.ReadFileOp{Inode: id, Handle: h, Offset: int64(i%256) * crypt.BlockSize, Dst: dst, Size: crypt.BlockSize}
		d := describe(op)
		if errno := s.call(ctx, op, d); errno != 0 || op.BytesRead != crypt.BlockSize {
			b.Fatalf("read: %v, %d bytes", errno, op.BytesRead)
		}
		s.fs.stats.record(d.code, 0, 0)
		i += 7
	}
	_ = f
}

func BenchmarkWriteFile4KiB(b *testing.B) {
	_, s, id, h := benchFile(b)
	data := bytes.Repeat([]byte("w"), crypt.BlockSize)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(crypt.BlockSize)
	i := 0
	for b.Loop() {
		op := &fuseops.WriteFileOp{Inode: id, Handle: h, Offset: int64(i%256) * crypt.BlockSize, Data: data}
		d := describe(op)
		if errno := s.call(ctx, op, d); errno != 0 {
			b.Fatalf("write: %v", errno)
		}
		s.fs.stats.record(d.code, 0, 0)
		i += 7
	}
}

func BenchmarkGetattrCached(b *testing.B) {
	f, s, id, _ := benchFile(b)
	f.must(f.GetInodeAttributes(f.ctx, &fuseops.GetInodeAttributesOp{Inode: id})) // fills the cache
	b.ReportAllocs()
	for b.Loop() {
		op := &fuseops.GetInodeAttributesOp{Inode: id}
		d := describe(op)
		if errno, ok := d.cached(s.fs, op); !ok || errno != 0 {
			b.Fatalf("getattr from the cache: %v, %v", errno, ok)
		}
		s.fs.stats.record(d.code, 0, 0)
	}
}
