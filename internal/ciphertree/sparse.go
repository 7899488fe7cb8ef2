package ciphertree

import (
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// Sparse files: a region of the lower file that was never written is a
// hole, and a stored block that lies entirely in a hole is all zeros,
// which decodes to zeros without authentication (docs/format.md, section
// 5.4). Whoever reads a whole file (fsck, cat, restore) can therefore skip
// the holes the lower file system reports with SEEK_DATA and SEEK_HOLE,
// and a 4 TiB file with a few written blocks costs a few reads instead of
// four terabytes of them.

// BlockRun is a run of consecutive stored blocks, [First, First+N).
type BlockRun struct {
	First, N uint64
}

// DataBlocks calls fn, in order, for the runs of stored blocks of the
// lower file behind fd (lower size size) that overlap data: blocks that
// lie entirely in a hole of the lower file are left out, as they read as
// zeros. The last block is always included, so that a trailing partial
// block that no plaintext size explains is still seen. A lower file
// system without SEEK_DATA has no holes to report: every block is data.
// An error of fn stops the walk and is returned.
func DataBlocks(fd int, size uint64, fn func(BlockRun) error) error {
	if size <= crypt.HeaderLen {
		return nil
	}
	nblocks := (size - crypt.HeaderLen + crypt.CipherBlockSize - 1) / crypt.CipherBlockSize
	blockOf := func(off uint64) uint64 {
		if off < crypt.HeaderLen {
			return 0
		}
		return (off - crypt.HeaderLen) / crypt.CipherBlockSize
	}
	var cur BlockRun
	have := false
	emit := func(first, last uint64) error { // blocks first..last inclusive
		if have && first <= cur.First+cur.N {
			cur.N = max(cur.N, last+1-cur.First)
			return nil
		}
		if have {
			if err := fn(cur); err != nil {
				return err
			}
		}
		cur, have = BlockRun{First: first, N: last + 1 - first}, true
		return nil
	}
	pos := int64(crypt.HeaderLen)
	for uint64(pos) < size {
		data, err := seek(fd, pos, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole up to the end
		}
		if err != nil {
			// No SEEK_DATA here (or it failed): the rest is data.
			if err := emit(blockOf(uint64(pos)), nblocks-1); err != nil {
				return err
			}
			break
		}
		hole, err := seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = int64(size)
		}
		hole = min(hole, int64(size))
		if hole <= data {
			break
		}
		if err := emit(blockOf(uint64(data)), blockOf(uint64(hole)-1)); err != nil {
			return err
		}
		pos = hole
	}
	if err := emit(nblocks-1, nblocks-1); err != nil {
		return err
	}
	return fn(cur)
}

// seek is lseek(2), retried on EINTR.
func seek(fd int, off int64, whence int) (int64, error) {
	for {
		n, err := unix.Seek(fd, off, whence)
		if err != unix.EINTR {
			return n, err
		}
	}
}
