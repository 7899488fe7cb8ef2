package crypt

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync/atomic"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/cryptfs/cryptfs/internal/harden"
)

// Sizes and names fixed by format version 2.
const (
	KeyLen          = 32                        // master key and every subkey
	BlockSize       = 4096                      // plaintext bytes per content block
	BlockOverhead   = nonceLen + tagLen         // per stored block: nonce + tag
	CipherBlockSize = BlockSize + BlockOverhead // a full stored block
	HeaderLen       = 2 + FileIDLen             // version + file ID
	FileIDLen       = 16
	DirIVLen        = 16
	DirIVFile       = ".cryptfs.diriv"    // per-directory IV file, exactly DirIVLen bytes
	RootModeFile    = ".cryptfs.rootmode" // at the cipher root: the plaintext root's mode (docs/format.md 1.1)
	ReservedPrefix  = ".cryptfs"          // lower names with this prefix are internal
	MaxLowerName    = 255                 // longest lower file name (NAME_MAX)

	// FormatVersion is the version stored in file headers and the config.
	// Version 1 was never released; see docs/format.md, section 11.
	FormatVersion = 2

	// MaxXattrName is the longest plaintext extended attribute name,
	// including its "user." prefix, whose encryption fits in MaxLowerName.
	MaxXattrName = 159
	// MaxSymlinkTarget is the longest plaintext symlink target whose
	// encoding fits in 4095 bytes (PATH_MAX - 1).
	MaxSymlinkTarget = 3008
	// MaxStoredSymlink is the longest stored (encoded) symlink target.
	MaxStoredSymlink = 4095

	nonceLen        = chacha20poly1305.NonceSizeX // 24
	tagLen          = chacha20poly1305.Overhead   // 16
	symlinkPadAlign = 32                          // symlink targets are zero-padded to this
)

var (
	// ErrAuth means a ciphertext failed authentication or is malformed
	// (wrong length, non-canonical encoding, bad padding).
	ErrAuth = errors.New("crypt: ciphertext failed authentication or is malformed")
	// ErrInvalidName means a plaintext name is not allowed: empty, ".",
	// "..", containing '/' or NUL, longer than 255 bytes, or (for extended
	// attributes) outside the "user." namespace.
	ErrInvalidName = errors.New("crypt: invalid name")
	// ErrNameTooLong means an extended attribute name or a symlink target
	// is too long to be stored once encrypted.
	ErrNameTooLong = errors.New("crypt: name too long to store encrypted")
	// ErrUnsupportedVersion means a file header carries a format version
	// this code does not read.
	ErrUnsupportedVersion = errors.New("crypt: unsupported format version")
	// ErrWiped means the Suite's keys were wiped.
	ErrWiped = errors.New("crypt: keys were wiped")
)

// FileID is the random identifier in a content file's header. It binds
// every block to its file.
type FileID [FileIDLen]byte

// DirIV is a directory's random name IV, stored raw in DirIVFile. In
// deterministic-names mode every directory uses the zero DirIV.
type DirIV [DirIVLen]byte

// NewFileID returns a random FileID from crypto/rand.
func NewFileID() (FileID, error) {
	var id FileID
	if _, err := io.ReadFull(rand.Reader, id[:]); err != nil {
		return id, fmt.Errorf("new file ID: %w", err)
	}
	return id, nil
}

// NewDirIV returns a random DirIV from crypto/rand.
func NewDirIV() (DirIV, error) {
	var iv DirIV
	if _, err := io.ReadFull(rand.Reader, iv[:]); err != nil {
		return iv, fmt.Errorf("new directory IV: %w", err)
	}
	return iv, nil
}

// Wipe zeroes b. The stores are not optimised away.
func Wipe(b []byte) {
	if len(b) == 0 {
		return
	}
	clear(b)
	runtime.KeepAlive(&b[0])
}

// Subkey purposes. Each subkey is HKDF-SHA256(master, salt = nil,
// info = subkeyInfoPrefix + purpose), 32 bytes.
const (
	subkeyInfoPrefix = "cryptfs v2 "

	purposeContent      = "content"
	purposeNameSIV      = "name-siv"
	purposeNameEnc      = "name-enc"
	purposeXattrNameSIV = "xattr-name-siv"
	purposeXattrNameEnc = "xattr-name-enc"
	purposeXattrValue   = "xattr-value"
	purposeSymlink      = "symlink"
	purposeKeyCheck     = "key-check"
)

// purposes lists every subkey purpose in specification order.
var purposes = []string{
	purposeContent, purposeNameSIV, purposeNameEnc, purposeXattrNameSIV,
	purposeXattrNameEnc, purposeXattrValue, purposeSymlink, purposeKeyCheck,
}

// KeyCheckLen is the length of a key-check value.
const KeyCheckLen = 32

// KeyCheck returns keyed BLAKE2b-256 of data under the "key-check" subkey
// of master. The config package uses it to recognise the right master key
// (a recovery key) without decrypting anything. The subkey and the BLAKE2b
// state keyed with it are wiped before it returns.
func KeyCheck(master, data []byte) ([]byte, error) {
	if len(master) != KeyLen {
		return nil, fmt.Errorf("key check: master key is %d bytes, want %d", len(master), KeyLen)
	}
	scrubStack()
	defer scrubStack()
	var k [KeyLen]byte
	defer Wipe(k[:])
	if err := deriveSubkey(&k, master, purposeKeyCheck); err != nil {
		return nil, err
	}
	h, err := blake2b.New256(k[:])
	if err != nil {
		return nil, fmt.Errorf("key check: %w", err)
	}
	defer wipeState(h)
	h.Write(data)
	return h.Sum(nil), nil
}

// Options are the format options that change how a Suite encrypts.
type Options struct {
	// DeterministicNames: no per-directory IV files; every directory
	// uses the zero DirIV (feature flag "deterministic-names").
	DeterministicNames bool
}

// nameCipher encrypts names deterministically: SIV with keyed BLAKE2b-128
// as the PRF and XChaCha20 as the IV-based cipher (names.go). Its keys
// live in the Suite's keyring.
type nameCipher struct {
	sivKey *[KeyLen]byte // BLAKE2b-128 key: the synthetic IV
	encKey *[KeyLen]byte // XChaCha20 key: the keystream under the SIV
	maxPad int           // longest padded plaintext the encoder produces
}

// Suite holds the subkeys of one master key (in a keyring of locked memory,
// keys.go) and the ciphers that use them. It is safe for concurrent use,
// except Wipe, which must be called only when no other call is in flight.
type Suite struct {
	opts       Options
	ring       *keyring
	content    cipher.AEAD
	names      nameCipher
	xattrNames nameCipher
	xattrValue cipher.AEAD
	symlink    cipher.AEAD
	wiped      atomic.Bool
}

// Indexes of the subkeys in the keyring: purposes' order.
const (
	keyContent = iota
	keyNameSIV
	keyNameEnc
	keyXattrNameSIV
	keyXattrNameEnc
	keyXattrValue
	keySymlink
)

// New derives all subkeys from master (which must be KeyLen bytes) into a
// new keyring and returns a Suite. master is not retained, and no copy of
// it or of the HKDF state is left behind: the caller should Wipe it.
func New(master []byte, opts Options) (*Suite, error) {
	if len(master) != KeyLen {
		return nil, fmt.Errorf("new suite: master key is %d bytes, want %d", len(master), KeyLen)
	}
	ring, err := newKeyring()
	if err != nil {
		return nil, fmt.Errorf("new suite: %w", err)
	}
	scrubStack()
	harden.NoSignals(func() { deriveAll(ring, master) })
	scrubStack()
	k := ring.keys
	s := &Suite{
		opts:       opts,
		ring:       ring,
		content:    newXChaCha(&k[keyContent]),
		xattrValue: newXChaCha(&k[keyXattrValue]),
		symlink:    newXChaCha(&k[keySymlink]),
		names:      nameCipher{sivKey: &k[keyNameSIV], encKey: &k[keyNameEnc], maxPad: namePaddedLen(MaxLowerName)},
		xattrNames: nameCipher{sivKey: &k[keyXattrNameSIV], encKey: &k[keyXattrNameEnc], maxPad: namePaddedLen(MaxXattrName)},
	}
	return s, nil
}

// deriveAll derives the keyring's subkeys, the HKDF pseudorandom key
// computed once, on the stack, and cleared. New runs it with signals
// blocked: a signal frame would keep whatever key SHA-256 has in its
// registers at that moment (harden.NoSignals).
//
//go:noinline
func deriveAll(r *keyring, master []byte) {
	prk := hkdfPRK(master)
	for i := range nKeys {
		hkdfExpand32(&r.keys[i], &prk, subkeyInfoPrefix+purposes[i])
	}
	clear(prk[:])
}

// DeterministicNames reports whether the suite was built for the
// deterministic-names mode (zero DirIV everywhere, no DirIVFile).
func (s *Suite) DeterministicNames() bool { return s.opts.DeterministicNames }

// Wipe zeroes the keyring, which holds every key of the Suite, and returns
// its memory to the system. Afterwards every method fails with ErrWiped.
// What x/crypto copied for single operations is not reached (keys.go).
func (s *Suite) Wipe() {
	if s.wiped.Swap(true) {
		return
	}
	s.ring.close()
}

// DeriveSubkey returns the subkey of master for purpose (docs/format.md,
// section 2: "content", "name-siv", ...), for tools and tests that check
// the format or look for keys in memory. The caller wipes it.
func DeriveSubkey(master []byte, purpose string) ([]byte, error) {
	if !slices.Contains(purposes, purpose) && !slices.Contains(reversePurposes[:], purpose) {
		return nil, fmt.Errorf("derive subkey: unknown purpose %q", purpose)
	}
	var k [KeyLen]byte
	if err := deriveSubkey(&k, master, purpose); err != nil {
		return nil, err
	}
	out := slices.Clone(k[:])
	Wipe(k[:])
	return out, nil
}

// Purposes returns the subkey purposes in specification order, forward
// mode's then reverse mode's.
func Purposes() []string { return append(slices.Clone(purposes), reversePurposes[:]...) }

// sliceForAppend extends in by n bytes, reusing its capacity when possible,
// and returns the whole slice and the n new bytes.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return head, tail
}

// symlinkPaddedLen is n rounded up to a multiple of symlinkPadAlign.
func symlinkPaddedLen(n int) int {
	return (n + symlinkPadAlign - 1) / symlinkPadAlign * symlinkPadAlign
}
