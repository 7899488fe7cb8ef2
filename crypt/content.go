package crypt

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
)

// EncodeHeader appends the 18-byte content file header (format version,
// big-endian uint16, then the file ID) to dst.
func EncodeHeader(dst []byte, id FileID) []byte {
	dst = binary.BigEndian.AppendUint16(dst, FormatVersion)
	return append(dst, id[:]...)
}

// ParseHeader parses a content file header. b must be exactly HeaderLen
// bytes. A header of another format version fails with an error wrapping
// ErrUnsupportedVersion that names the version; a wrong length wraps ErrAuth.
func ParseHeader(b []byte) (FileID, error) {
	var id FileID
	if len(b) != HeaderLen {
		return id, fmt.Errorf("file header is %d bytes, want %d: %w", len(b), HeaderLen, ErrAuth)
	}
	switch v := binary.BigEndian.Uint16(b); {
	case v == 1:
		return id, fmt.Errorf("file header format version 1, written by a pre-release cryptfs that no release reads (copy the files out with that version, or re-create the tree): %w", ErrUnsupportedVersion)
	case v != FormatVersion:
		return id, fmt.Errorf("file header format version %d, this cryptfs reads version %d: %w", v, FormatVersion, ErrUnsupportedVersion)
	}
	copy(id[:], b[2:])
	return id, nil
}

// CipherSize returns the lower file size that stores plain plaintext bytes.
func CipherSize(plain uint64) uint64 {
	if plain == 0 {
		return 0
	}
	full, rem := plain/BlockSize, plain%BlockSize
	size := HeaderLen + full*CipherBlockSize
	if rem > 0 {
		size += rem + BlockOverhead
	}
	return size
}

// PlainSize is the inverse of CipherSize. For a size CipherSize can never
// return (a partial header, or a final block of 1..BlockOverhead bytes) it
// returns an error wrapping ErrAuth together with a best-effort size: the
// plaintext of the complete blocks.
func PlainSize(cipher uint64) (uint64, error) {
	switch {
	case cipher == 0:
		return 0, nil
	case cipher < HeaderLen:
		return 0, fmt.Errorf("lower file size %d is shorter than the %d-byte header: %w", cipher, HeaderLen, ErrAuth)
	}
	body := cipher - HeaderLen
	full, rem := body/CipherBlockSize, body%CipherBlockSize
	size := full * BlockSize
	switch {
	case rem == 0:
		return size, nil
	case rem <= BlockOverhead:
		return size, fmt.Errorf("lower file size %d ends in a %d-byte block (minimum %d): %w", cipher, rem, BlockOverhead+1, ErrAuth)
	}
	return size + rem - BlockOverhead, nil
}

// BlockOffset returns the byte offset of content block number block in the
// lower file.
func BlockOffset(block uint64) uint64 { return HeaderLen + block*CipherBlockSize }

// blockAD is the additional data of a content block: file ID || block
// number (big-endian uint64). Pooled so that passing it to the AEAD
// interface does not allocate per block.
type blockAD [FileIDLen + 8]byte

var adPool = sync.Pool{New: func() any { return new(blockAD) }}

// zeroBlock is compared against stored blocks to detect holes.
var zeroBlock [CipherBlockSize]byte

// SealBlock encrypts one block of 1..BlockSize plaintext bytes as block
// number block of file id under a fresh random nonce and appends nonce ||
// ciphertext || tag to dst. It does not allocate when cap(dst) suffices.
// dst must not overlap plain.
func (s *Suite) SealBlock(dst, plain []byte, id FileID, block uint64) ([]byte, error) {
	var nonce [nonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return dst, fmt.Errorf("seal block %d: %w", block, err)
	}
	return s.sealBlockNonce(dst, nonce[:], plain, id, block)
}

// sealBlockNonce is SealBlock with a caller-chosen nonce (test vectors).
func (s *Suite) sealBlockNonce(dst, nonce, plain []byte, id FileID, block uint64) ([]byte, error) {
	if s.wiped.Load() {
		return dst, ErrWiped
	}
	if len(plain) == 0 || len(plain) > BlockSize {
		return dst, fmt.Errorf("seal block %d: %d plaintext bytes, want 1..%d", block, len(plain), BlockSize)
	}
	ret, out := sliceForAppend(dst, len(plain)+BlockOverhead)
	copy(out, nonce)
	ad := adPool.Get().(*blockAD)
	fillAD(ad, id, block)
	s.content.Seal(out[nonceLen:nonceLen], out[:nonceLen], plain, ad[:])
	adPool.Put(ad)
	return ret, nil
}

// OpenBlock authenticates and decrypts stored block number block of file
// id and appends the plaintext to dst. It does not allocate when cap(dst)
// suffices. stored must be 41..CipherBlockSize bytes.
//
// Hole rule: a stored block whose bytes are all zero decodes, without
// authentication, to len(stored)-BlockOverhead zero bytes, so that sparse
// lower files read as zeros. Everything else must authenticate; failures
// wrap ErrAuth and name the block number.
func (s *Suite) OpenBlock(dst, stored []byte, id FileID, block uint64) ([]byte, error) {
	if s.wiped.Load() {
		return dst, ErrWiped
	}
	n := len(stored)
	if n <= BlockOverhead || n > CipherBlockSize {
		return dst, fmt.Errorf("block %d: stored length %d, want %d..%d: %w", block, n, BlockOverhead+1, CipherBlockSize, ErrAuth)
	}
	if bytes.Equal(stored, zeroBlock[:n]) {
		ret, out := sliceForAppend(dst, n-BlockOverhead)
		clear(out)
		return ret, nil
	}
	ad := adPool.Get().(*blockAD)
	fillAD(ad, id, block)
	ret, err := s.content.Open(dst, stored[:nonceLen], stored[nonceLen:], ad[:])
	adPool.Put(ad)
	if err != nil {
		return dst, fmt.Errorf("block %d: %w", block, ErrAuth)
	}
	return ret, nil
}

func fillAD(ad *blockAD, id FileID, block uint64) {
	copy(ad[:FileIDLen], id[:])
	binary.BigEndian.PutUint64(ad[FileIDLen:], block)
}
