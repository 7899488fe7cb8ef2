package crypt

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/blake2b"

	"github.com/cryptfs/cryptfs/internal/harden"
)

// Reverse mode (docs/format.md, section 13): a read-only encrypted view of
// a plaintext directory whose bytes must be the same every time it is
// mounted, so that incremental backups of the view copy only what changed.
// Everything forward mode draws from the CSPRNG (file IDs, directory IVs,
// the nonces of blocks, symlink targets and attribute values) is derived
// here with keyed BLAKE2b instead, from the node's plaintext path and, for
// nonces, from the plaintext being sealed (a synthetic nonce, as in SIV).
// The stored bytes are exactly forward mode's, so a forward-mode reader
// decrypts a copy of the view without knowing how they were chosen.

// Subkey purposes of reverse mode (section 2's table, continued).
const (
	purposeRevFileID       = "reverse-file-id"
	purposeRevDirIV        = "reverse-dir-iv"
	purposeRevBlockNonce   = "reverse-block-nonce"
	purposeRevSymlinkNonce = "reverse-symlink-nonce"
	purposeRevXattrNonce   = "reverse-xattr-nonce"
	purposeRevInode        = "reverse-inode"
)

// nReverseKeys is the number of reverse-mode subkeys.
const nReverseKeys = 6

// reversePurposes lists the reverse-mode subkey purposes in specification
// order.
var reversePurposes = [nReverseKeys]string{
	purposeRevFileID, purposeRevDirIV, purposeRevBlockNonce,
	purposeRevSymlinkNonce, purposeRevXattrNonce, purposeRevInode,
}

// Inode classes: the second byte of the message of Reverse.Inode. A
// plaintext node's class is its file type (the S_IFMT bits shifted right
// by 12: 1 fifo, 2 character device, 4 directory, 6 block device, 8
// regular file, 10 symlink, 12 socket); the view's own files have classes
// of their own.
const (
	InodeClassDirIV   = 0x10 // the .cryptfs.diriv of the directory at the path
	InodeClassSidecar = 0x11 // the long-name sidecar of the entry at the path
	InodeClassConfig  = 0x12 // the view's cryptfs.conf (path "")
)

// InodeClassOf returns the inode class of a plaintext node from its
// st_mode.
func InodeClassOf(mode uint32) uint8 { return uint8(mode>>12) & 0xf }

// Reverse holds the keys of reverse mode's deterministic derivations and
// seals with the content, symlink and attribute keys of its Suite. It is
// safe for concurrent use, except Wipe.
type Reverse struct {
	s            *Suite
	ring         *harden.Locked // the six keys below, locked and undumpable (keys.go)
	fileID       *[KeyLen]byte  // BLAKE2b-128: file IDs from paths
	dirIV        *[KeyLen]byte  // BLAKE2b-128: directory IVs from paths
	blockNonce   *[KeyLen]byte  // BLAKE2b-192: synthetic nonces of content blocks
	symlinkNonce *[KeyLen]byte  // BLAKE2b-192: synthetic nonces of symlink targets
	xattrNonce   *[KeyLen]byte  // BLAKE2b-192: synthetic nonces of attribute values
	inode        *[KeyLen]byte  // BLAKE2b-64: inode numbers of the view
	rootFileID   FileID         // FileID(""), computed once by NewReverse (prf)
	rootDirIV    DirIV          // DirIV("") of a view with directory IVs, likewise
	wiped        atomic.Bool
}

// NewReverse derives the reverse-mode subkeys from master (KeyLen bytes,
// the master key s was made from) into a keyring of their own and returns
// a Reverse that seals with s. master is not retained. Wiping s is its
// owner's business; Wipe wipes only the reverse-mode keys.
func NewReverse(master []byte, s *Suite) (*Reverse, error) {
	if len(master) != KeyLen {
		return nil, fmt.Errorf("new reverse: master key is %d bytes, want %d", len(master), KeyLen)
	}
	if s == nil {
		return nil, fmt.Errorf("new reverse: no suite")
	}
	ring, err := harden.NewLocked(nReverseKeys * KeyLen)
	if err != nil {
		return nil, fmt.Errorf("new reverse: %w", err)
	}
	k := (*[nReverseKeys][KeyLen]byte)(ring.Pointer())
	r := &Reverse{s: s, ring: ring, fileID: &k[0], dirIV: &k[1], blockNonce: &k[2],
		symlinkNonce: &k[3], xattrNonce: &k[4], inode: &k[5]}
	scrubStack()
	harden.NoSignals(func() { deriveReverse(r, k, master) })
	scrubStack()
	return r, nil
}

// deriveReverse derives the reverse-mode subkeys into k (as deriveAll
// does) and computes the root's file ID and directory IV, whose BLAKE2b
// messages are empty (see prf), all between NewReverse's two scrubStacks
// and with signals blocked (deriveAll says why).
//
//go:noinline
func deriveReverse(r *Reverse, k *[nReverseKeys][KeyLen]byte, master []byte) {
	prk := hkdfPRK(master)
	for i, p := range reversePurposes {
		hkdfExpand32(&k[i], &prk, subkeyInfoPrefix+p)
	}
	clear(prk[:])
	copy(r.rootFileID[:], prfKeyOnly(r.fileID, FileIDLen))
	copy(r.rootDirIV[:], prfKeyOnly(r.dirIV, DirIVLen))
}

// Suite returns the suite the view seals with.
func (r *Reverse) Suite() *Suite { return r.s }

// Wipe zeroes the reverse-mode keys and unmaps their keyring; afterwards
// every method fails with ErrWiped. It does not wipe the Suite. It must
// not be called while another call is in flight.
func (r *Reverse) Wipe() {
	if r.wiped.Swap(true) {
		return
	}
	r.ring.Close()
}

// CheckViewPath reports whether p is a canonical plaintext path relative
// to the view's root: "" for the root itself, else names (section 6.2's
// rules) joined by single '/', with no leading or trailing '/'.
func CheckViewPath(p string) error {
	if p == "" {
		return nil
	}
	for rest := p; ; {
		name, tail, more := strings.Cut(rest, "/")
		if checkName(name) != nil {
			return fmt.Errorf("view path %q: %w", p, ErrInvalidName)
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// prf returns keyed BLAKE2b with an n-byte output over the parts, whose
// total length must not be 0.
//
// Where the key goes: keyed BLAKE2b hashes the key, zero-padded to a
// block, as the first message block. x/crypto keeps it in the hash state
// (heap, zeroed here after use) and, as long as no message byte follows,
// in the state's pending block; Sum copies the pending block into a
// stack array of its own (blake2b's finalize) before the last
// compression. With a message the key block is compressed from the
// state by Write, and what Sum copies is message; with an empty message
// the whole key would stay in that stack frame, unwiped, until the
// goroutine's stack is reused. So an empty message is refused here:
// the only ones, the root's file ID and directory IV, are computed once
// by NewReverse, whose stack is scrubbed (prfKeyOnly).
func prf(key *[KeyLen]byte, n int, parts ...[]byte) []byte {
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	if total == 0 {
		panic("crypt: keyed BLAKE2b of an empty message would leave its key on the stack") // unreachable: see the callers
	}
	return prfKeyOnly(key, n, parts...)
}

// prfKeyOnly is prf without the check: for an empty message only when
// the caller scrubs the stack afterwards (deriveReverse).
//
// The key also passes through registers (blake2b.New copies it into the
// state, the first compression reads it): prf runs with signals blocked
// (harden.NoSignals), so that no signal frame keeps a snapshot of them.
func prfKeyOnly(key *[KeyLen]byte, n int, parts ...[]byte) (out []byte) {
	harden.NoSignals(func() {
		h, err := blake2b.New(n, key[:])
		if err != nil {
			panic("crypt: blake2b: " + err.Error()) // unreachable: fixed valid sizes
		}
		for _, p := range parts {
			h.Write(p)
		}
		out = h.Sum(nil)
		wipeState(h) // x/crypto keeps a copy of the key in the state
	})
	return out
}

// FileID returns the file ID of the regular file at view path p:
// BLAKE2b-128 under the reverse-file-id subkey of p's bytes.
func (r *Reverse) FileID(p string) (FileID, error) {
	var id FileID
	if r.wiped.Load() {
		return id, ErrWiped
	}
	if err := CheckViewPath(p); err != nil {
		return id, err
	}
	if p == "" {
		return r.rootFileID, nil
	}
	copy(id[:], prf(r.fileID, FileIDLen, []byte(p)))
	return id, nil
}

// DirIV returns the name IV of the directory at view path p: BLAKE2b-128
// under the reverse-dir-iv subkey of p's bytes, or the zero IV when the
// Suite uses deterministic names (whose views have no IV files).
func (r *Reverse) DirIV(p string) (DirIV, error) {
	var iv DirIV
	if r.wiped.Load() {
		return iv, ErrWiped
	}
	if err := CheckViewPath(p); err != nil {
		return iv, err
	}
	if r.s.DeterministicNames() {
		return iv, nil
	}
	if p == "" {
		return r.rootDirIV, nil
	}
	copy(iv[:], prf(r.dirIV, DirIVLen, []byte(p)))
	return iv, nil
}

// BlockNonce returns the synthetic nonce of block number block of file id
// with plaintext plain: BLAKE2b-192 under the reverse-block-nonce subkey
// of the block's additional data (file ID || u64 block) and its
// plaintext.
func (r *Reverse) BlockNonce(id FileID, block uint64, plain []byte) ([nonceLen]byte, error) {
	var nonce [nonceLen]byte
	if r.wiped.Load() {
		return nonce, ErrWiped
	}
	var ad blockAD
	fillAD(&ad, id, block)
	copy(nonce[:], prf(r.blockNonce, nonceLen, ad[:], plain))
	return nonce, nil
}

// SealBlock is Suite.SealBlock with the synthetic nonce of BlockNonce: the
// same plaintext at the same position of the same file always gives the
// same stored block, and different plaintexts different nonces.
func (r *Reverse) SealBlock(dst, plain []byte, id FileID, block uint64) ([]byte, error) {
	nonce, err := r.BlockNonce(id, block, plain)
	if err != nil {
		return dst, err
	}
	return r.s.sealBlockNonce(dst, nonce[:], plain, id, block)
}

// EncryptSymlink is Suite.EncryptSymlink for the symlink at view path p,
// with the synthetic nonce BLAKE2b-192 under the reverse-symlink-nonce
// subkey of FileID(p) || the padded target.
func (r *Reverse) EncryptSymlink(p, target string) (string, error) {
	id, err := r.FileID(p)
	if err != nil {
		return "", fmt.Errorf("encrypt symlink: %w", err)
	}
	padded := make([]byte, symlinkPaddedLen(len(target)))
	copy(padded, target)
	nonce := prf(r.symlinkNonce, nonceLen, id[:], padded)
	Wipe(padded)
	return r.s.encryptSymlinkNonce(nonce, target)
}

// SealXattrValue is Suite.SealXattrValue for the attribute with lower name
// lowerName of the node at view path p, with the synthetic nonce
// BLAKE2b-192 under the reverse-xattr-nonce subkey of FileID(p) || u16
// len(lowerName) || lowerName || value.
func (r *Reverse) SealXattrValue(p, lowerName string, value []byte) ([]byte, error) {
	id, err := r.FileID(p)
	if err != nil {
		return nil, fmt.Errorf("seal xattr value: %w", err)
	}
	if len(lowerName) > MaxLowerName {
		return nil, fmt.Errorf("seal xattr value: lower name of %d bytes: %w", len(lowerName), ErrNameTooLong)
	}
	nonce := prf(r.xattrNonce, nonceLen, id[:], binary.BigEndian.AppendUint16(nil, uint16(len(lowerName))), []byte(lowerName), value)
	return r.s.sealXattrValueNonce(nonce, lowerName, value)
}

// Inode returns candidate number attempt (0 first) for the inode number
// of a node of the view: u64 of BLAKE2b-64 under the reverse-inode subkey
// of u8 attempt || u8 class || p, with its top bit cleared (so that tools
// keeping inode numbers in signed 64-bit integers see them unchanged). The
// view takes the first candidate that is neither 0 nor 1 (the root's) nor
// another node's.
func (r *Reverse) Inode(attempt, class uint8, p string) (uint64, error) {
	if r.wiped.Load() {
		return 0, ErrWiped
	}
	if err := CheckViewPath(p); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(prf(r.inode, 8, []byte{attempt, class}, []byte(p))) &^ (1 << 63), nil
}

// SymlinkStoredLen returns the length of the stored (encoded) form of a
// symlink target of n bytes (1..MaxSymlinkTarget): base64url of nonce,
// zero-padded target and tag.
func SymlinkStoredLen(n int) int { return b64Len(nonceLen + symlinkPaddedLen(n) + tagLen) }
