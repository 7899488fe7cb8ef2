package crypt

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
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

// deriveSubkey writes the subkey for purpose into out.
func deriveSubkey(out *[KeyLen]byte, master []byte, purpose string) error {
	r := hkdf.New(sha256.New, master, nil, []byte(subkeyInfoPrefix+purpose))
	if _, err := io.ReadFull(r, out[:]); err != nil {
		return fmt.Errorf("derive %s subkey: %w", purpose, err)
	}
	return nil
}

// KeyCheckLen is the length of a key-check value.
const KeyCheckLen = 32

// KeyCheck returns keyed BLAKE2b-256 of data under the "key-check" subkey
// of master. The config package uses it to recognise the right master key
// (a recovery key) without decrypting anything.
func KeyCheck(master, data []byte) ([]byte, error) {
	if len(master) != KeyLen {
		return nil, fmt.Errorf("key check: master key is %d bytes, want %d", len(master), KeyLen)
	}
	var k [KeyLen]byte
	defer Wipe(k[:])
	if err := deriveSubkey(&k, master, purposeKeyCheck); err != nil {
		return nil, err
	}
	h, err := blake2b.New256(k[:])
	if err != nil {
		return nil, fmt.Errorf("key check: %w", err)
	}
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
// as the PRF and XChaCha20 as the IV-based cipher (names.go).
type nameCipher struct {
	sivKey [KeyLen]byte // BLAKE2b-128 key: the synthetic IV
	encKey [KeyLen]byte // XChaCha20 key: the keystream under the SIV
	maxPad int          // longest padded plaintext the encoder produces
}

// Suite holds the subkeys of one master key and ready AEAD instances. It is
// safe for concurrent use, except Wipe, which must be called only when no
// other call is in flight.
type Suite struct {
	opts       Options
	content    cipher.AEAD
	names      nameCipher
	xattrNames nameCipher
	xattrValue cipher.AEAD
	symlink    cipher.AEAD
	wiped      atomic.Bool
}

// New derives all subkeys from master (which must be KeyLen bytes) and
// returns a Suite. master is not retained: the caller should Wipe it.
func New(master []byte, opts Options) (*Suite, error) {
	if len(master) != KeyLen {
		return nil, fmt.Errorf("new suite: master key is %d bytes, want %d", len(master), KeyLen)
	}
	s := &Suite{opts: opts}
	var k [KeyLen]byte
	defer Wipe(k[:])
	newAEAD := func(purpose string) (cipher.AEAD, error) {
		if err := deriveSubkey(&k, master, purpose); err != nil {
			return nil, err
		}
		a, err := chacha20poly1305.NewX(k[:]) // copies the key
		if err != nil {
			return nil, fmt.Errorf("new suite: %s: %w", purpose, err)
		}
		return a, nil
	}
	var err error
	if s.content, err = newAEAD(purposeContent); err != nil {
		return nil, err
	}
	if s.xattrValue, err = newAEAD(purposeXattrValue); err != nil {
		return nil, err
	}
	if s.symlink, err = newAEAD(purposeSymlink); err != nil {
		return nil, err
	}
	for _, k := range []struct {
		out     *[KeyLen]byte
		purpose string
	}{
		{&s.names.sivKey, purposeNameSIV},
		{&s.names.encKey, purposeNameEnc},
		{&s.xattrNames.sivKey, purposeXattrNameSIV},
		{&s.xattrNames.encKey, purposeXattrNameEnc},
	} {
		if err := deriveSubkey(k.out, master, k.purpose); err != nil {
			return nil, err
		}
	}
	s.names.maxPad = namePaddedLen(MaxLowerName)
	s.xattrNames.maxPad = namePaddedLen(MaxXattrName)
	return s, nil
}

// DeterministicNames reports whether the suite was built for the
// deterministic-names mode (zero DirIV everywhere, no DirIVFile).
func (s *Suite) DeterministicNames() bool { return s.opts.DeterministicNames }

// Wipe zeroes all key material the Suite holds, including the keys inside
// its AEAD instances. Afterwards every method fails with ErrWiped. Go may
// have left copies elsewhere (stacks, freed memory); wiping is best effort.
func (s *Suite) Wipe() {
	s.wiped.Store(true)
	for _, k := range []*[KeyLen]byte{&s.names.sivKey, &s.names.encKey, &s.xattrNames.sivKey, &s.xattrNames.encKey} {
		Wipe(k[:])
	}
	for _, a := range []cipher.AEAD{s.content, s.xattrValue, s.symlink} {
		wipeAEADKey(a)
	}
}

// wipeAEADKey zeroes the key array inside an x/crypto XChaCha20-Poly1305
// instance (a pointer to a struct whose field "key" is a byte array). It
// reports whether it found and wiped a key; the tests assert it does, so a
// change in x/crypto's layout fails loudly instead of silently leaving keys.
func wipeAEADKey(a cipher.AEAD) bool {
	if a == nil {
		return false
	}
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	f := v.Elem().FieldByName("key")
	if !f.IsValid() || f.Kind() != reflect.Array || f.Type().Elem().Kind() != reflect.Uint8 {
		return false
	}
	Wipe(unsafe.Slice((*byte)(unsafe.Pointer(f.UnsafeAddr())), f.Len()))
	return true
}

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
