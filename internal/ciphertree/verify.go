package ciphertree

import (
	"fmt"

	"github.com/cryptfs/cryptfs/crypt"
)

// ReadHeader reads and parses the header of the non-empty lower file
// behind fd.
func ReadHeader(fd int) (crypt.FileID, error) {
	var hdr [crypt.HeaderLen]byte
	if err := PreadFull(fd, hdr[:], 0); err != nil {
		return crypt.FileID{}, fmt.Errorf("read header: %w", err)
	}
	return crypt.ParseHeader(hdr[:])
}

// CheckBlocks authenticates every stored block of the lower file behind
// fd, whose lower size is size and whose header holds id, reading it in
// large chunks from the first block to the end as stored (a trailing
// partial block that no plaintext size explains is checked like any other
// and fails). Blocks that lie entirely in a hole of the lower file read as
// zeros and are skipped (DataBlocks, sparse.go), so a sparse file costs
// what its data costs. It calls bad for each block that fails
// authentication and returns the number of blocks checked; an I/O error
// stops the walk.
func CheckBlocks(s *crypt.Suite, fd int, id crypt.FileID, size uint64, bad func(block uint64, err error)) (blocks uint64, err error) {
	buf := getBuf(maxRequestCipher)
	defer putBuf(buf)
	plain := plainPool.Get().(*[crypt.BlockSize]byte)
	defer plainPool.Put(plain)
	chunk := uint64(len(buf) / crypt.CipherBlockSize)
	err = DataBlocks(fd, size, func(r BlockRun) error {
		for b := r.First; b < r.First+r.N; {
			n := min(chunk, r.First+r.N-b)
			off := crypt.BlockOffset(b)
			p := buf[:min(n*crypt.CipherBlockSize, size-off)]
			if err := PreadFull(fd, p, int64(off)); err != nil {
				return fmt.Errorf("read block %d: %w", b, err)
			}
			for i := 0; i < len(p); i += crypt.CipherBlockSize {
				stored := p[i:min(i+crypt.CipherBlockSize, len(p))]
				if _, err := s.OpenBlock(plain[:0], stored, id, b); err != nil {
					bad(b, err)
				}
				blocks++
				b++
			}
		}
		return nil
	})
	return blocks, err
}
