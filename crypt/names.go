package crypt

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20"

	"github.com/cryptfs/cryptfs/internal/harden"
)

// b64 is the encoding of names, long-name hashes and symlink targets:
// base64url (RFC 4648 section 5) without padding, strict.
var b64 = base64.RawURLEncoding.Strict()

// decodeB64 decodes s and accepts it only if it is the canonical encoding
// of the result (the standard decoder skips '\r' and '\n').
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, ErrAuth
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, ErrAuth
	}
	return b, nil
}

// zeroIV is the IV of extended attribute names and of every directory in
// deterministic-names mode.
var zeroIV DirIV

// Names, format version 2 (docs/format.md, section 6): a deterministic
// authenticated encryption in the SIV construction of Rogaway and
// Shrimpton. The plaintext name is padded (ISO/IEC 7816-4) to a multiple
// of 16 bytes, the 128-bit synthetic IV is keyed BLAKE2b-128 over the
// directory IV and the padded name, and the padded name is XORed with the
// XChaCha20 keystream whose 24-byte nonce is the SIV followed by 8 zero
// bytes. The stored form is base64url(SIV || ciphertext): the SIV is both
// the authentication tag and the nonce.
const (
	sivLen      = 16   // synthetic IV: tag and nonce
	nameBlock   = 16   // names are padded to a multiple of this
	namePadByte = 0x80 // ISO/IEC 7816-4: 0x80, then zero bytes

	// minSealedName is the shortest decoded name: SIV and one block.
	minSealedName = sivLen + nameBlock
	// MaxShortName is the longest plaintext name whose lower name is its
	// encoded name; longer names get a long name and a sidecar (section 7).
	MaxShortName = 159
)

// namePaddedLen is the padded length of an n-byte name: the next multiple
// of nameBlock that leaves room for at least the 0x80 byte.
func namePaddedLen(n int) int { return (n/nameBlock + 1) * nameBlock }

// b64Len is the length of the unpadded base64 encoding of n bytes.
func b64Len(n int) int { return (8*n + 5) / 6 }

// EncodedNameLen returns the length of EncryptName's result for a
// plaintext name of n bytes (1..255). It is a pure function of n.
func EncodedNameLen(n int) int { return b64Len(sivLen + namePaddedLen(n)) }

// LowerNameLen returns the length of the lower directory entry name of a
// plaintext name of n bytes (1..255): the encoded name, or a long name.
func LowerNameLen(n int) int {
	if e := EncodedNameLen(n); e <= MaxLowerName {
		return e
	}
	return longLowerLen
}

// checkName reports whether name is a valid plaintext file name.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > MaxLowerName || strings.ContainsAny(name, "/\x00") {
		return ErrInvalidName
	}
	return nil
}

// EncryptName returns the encoded (encrypted) form of the plaintext file
// name in the directory with IV iv. The result may be longer than
// MaxLowerName: pass it through LowerName. In deterministic-names mode the
// caller passes the zero DirIV.
func (s *Suite) EncryptName(iv DirIV, name string) (string, error) {
	if s.wiped.Load() {
		return "", ErrWiped
	}
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("encrypt name: %w", err)
	}
	return s.names.seal(iv[:], name), nil
}

// DecryptName decodes and authenticates an encoded name of the directory
// with IV iv. Anything EncryptName would not have produced for this IV
// fails with an error wrapping ErrAuth.
func (s *Suite) DecryptName(iv DirIV, encoded string) (string, error) {
	if s.wiped.Load() {
		return "", ErrWiped
	}
	return checkDecrypted(s.names.open(iv[:], encoded))
}

// namesPerBlock bounds how many names DecryptNames decrypts with signals
// blocked at a time, so that a huge directory does not hold off the
// scheduler's preemption signals for long (256 names: well under a
// millisecond).
const namesPerBlock = 256

// DecryptNames is DecryptName for many encoded names of one directory
// (a listing): names[i] and errs[i] are DecryptName(iv, encoded[i]).
// Each name's keyed steps run with signals blocked, as in DecryptName,
// but a batch pays the two system calls that block and restore them once
// per namesPerBlock names instead of once per name.
func (s *Suite) DecryptNames(iv DirIV, encoded []string) (names []string, errs []error) {
	names = make([]string, len(encoded))
	errs = make([]error, len(encoded))
	if s.wiped.Load() {
		for i := range errs {
			errs[i] = ErrWiped
		}
		return names, errs
	}
	for lo := 0; lo < len(encoded); lo += namesPerBlock {
		hi := min(lo+namesPerBlock, len(encoded))
		harden.NoSignals(func() {
			for i := lo; i < hi; i++ {
				names[i], errs[i] = s.names.openBlocked(iv[:], encoded[i])
			}
		})
	}
	for i := range encoded {
		names[i], errs[i] = checkDecrypted(names[i], errs[i])
	}
	return names, errs
}

// checkDecrypted wraps a name cipher's result as DecryptName returns it.
func checkDecrypted(name string, err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("decrypt name: %w", err)
	}
	if checkName(name) != nil {
		return "", fmt.Errorf("decrypt name: decrypted name is not a valid name: %w", ErrAuth)
	}
	return name, nil
}

// siv writes the synthetic IV, keyed BLAKE2b-128 over iv || padded, to out.
func (c *nameCipher) siv(out *[sivLen]byte, iv, padded []byte) {
	h, err := blake2b.New(sivLen, c.sivKey[:])
	if err != nil {
		panic("crypt: blake2b: " + err.Error()) // unreachable: fixed valid sizes
	}
	h.Write(iv)
	h.Write(padded)
	var sum [sivLen]byte
	h.Sum(sum[:0])
	wipeState(h) // x/crypto keeps a copy of the key in the state
	*out = sum
}

// xorKeyStream XORs src with the XChaCha20 keystream under the encryption
// key and the nonce siv || 8 zero bytes, starting at block counter 0.
func (c *nameCipher) xorKeyStream(dst, src []byte, siv *[sivLen]byte) {
	var nonce [chacha20.NonceSizeX]byte
	copy(nonce[:], siv[:])
	x, err := chacha20.NewUnauthenticatedCipher(c.encKey[:], nonce[:])
	if err != nil {
		panic("crypt: xchacha20: " + err.Error()) // unreachable: fixed valid sizes
	}
	x.XORKeyStream(dst, src)
}

// seal pads name (ISO/IEC 7816-4, to a multiple of nameBlock), computes
// its SIV with iv and returns base64url(SIV || padded XOR keystream).
//
// The keyed steps run with signals blocked (harden.NoSignals): blake2b.New
// copies the SIV key through XMM0 and XMM1, and a signal arriving then
// leaves that copy in a frame on the thread's signal stack (measured:
// TestNameKeysNotInSignalFrames, and e2e TestDaemonKeysInMemory once in
// 11 runs over io_uring). Cost: two system calls per name, about 3 µs on
// this project's test machine, where a name takes 1-2.5 µs otherwise.
func (c *nameCipher) seal(iv []byte, name string) string {
	padded := make([]byte, namePaddedLen(len(name)))
	copy(padded, name)
	padded[len(name)] = namePadByte
	raw := make([]byte, sivLen+len(padded))
	var tag [sivLen]byte
	harden.NoSignals(func() {
		c.siv(&tag, iv, padded)
		c.xorKeyStream(raw[sivLen:], padded, &tag)
	})
	copy(raw, tag[:])
	Wipe(padded)
	return b64.EncodeToString(raw)
}

// open reverses seal strictly, in the order of docs/format.md section
// 6.3: length, canonical base64url, decryption, SIV check (constant
// time), padding. Its keyed steps run with signals blocked, as seal's do.
func (c *nameCipher) open(iv []byte, encoded string) (name string, err error) {
	harden.NoSignals(func() { name, err = c.openBlocked(iv, encoded) })
	return name, err
}

// openBlocked is open for a caller that already blocked signals
// (harden.NoSignals), as DecryptNames does for a batch.
func (c *nameCipher) openBlocked(iv []byte, encoded string) (string, error) {
	if len(encoded) > b64Len(sivLen+c.maxPad) {
		return "", fmt.Errorf("encrypted name has impossible length: %d characters: %w", len(encoded), ErrAuth)
	}
	raw, err := decodeB64(encoded)
	if err != nil {
		return "", fmt.Errorf("not canonical base64url: %w", ErrAuth)
	}
	n := len(raw) - sivLen
	if len(raw) < minSealedName || n%nameBlock != 0 || n > c.maxPad {
		return "", fmt.Errorf("encrypted name has impossible length %d: %w", len(raw), ErrAuth)
	}
	var tag, want [sivLen]byte
	copy(tag[:], raw)
	padded := make([]byte, n)
	defer Wipe(padded)
	c.xorKeyStream(padded, raw[sivLen:], &tag)
	c.siv(&want, iv, padded)
	if subtle.ConstantTimeCompare(want[:], tag[:]) != 1 {
		return "", fmt.Errorf("synthetic IV does not match: %w", ErrAuth)
	}
	name, ok := nameUnpad(padded)
	if !ok {
		return "", fmt.Errorf("invalid padding: %w", ErrAuth)
	}
	return name, nil
}

// nameUnpad removes ISO/IEC 7816-4 padding and reports whether it is
// canonical: the last non-zero byte is 0x80, it is preceded by at least one
// byte of name, and it lies in the last block (no extra padding block).
func nameUnpad(padded []byte) (string, bool) {
	i := len(padded) - 1
	for i >= 0 && padded[i] == 0 {
		i--
	}
	if i < 1 || padded[i] != namePadByte || len(padded)-i > nameBlock {
		return "", false
	}
	return string(padded[:i]), true
}

// Long names.
const (
	longNamePrefix = "longname."
	longHashLen    = 43 // base64url of a SHA-256 digest
	longLowerLen   = len(longNamePrefix) + longHashLen
	// maxEncodedName is the longest encoded file name (a 255-byte name):
	// base64url of 16 + 256 bytes.
	maxEncodedName = (8*(sivLen+256) + 5) / 6
)

// LowerName returns the lower directory entry name for an encoded name:
// the encoded name itself when it fits in MaxLowerName, otherwise
// "longname." + base64url(SHA-256(encoded)) with long = true, in which case
// the caller stores encoded in the sidecar file SidecarName(lower).
func LowerName(encoded string) (lower string, long bool) {
	if len(encoded) <= MaxLowerName {
		return encoded, false
	}
	return longNamePrefix + longHash(encoded), true
}

func longHash(encoded string) string {
	h := sha256.Sum256([]byte(encoded))
	return b64.EncodeToString(h[:])
}

// SidecarName returns the name of the sidecar file that holds the encoded
// name of the long lower name longLower: ".cryptfs." + longLower, that is
// ".cryptfs.longname.<hash>". longLower must satisfy IsLongName.
func SidecarName(longLower string) string { return ReservedPrefix + "." + longLower }

// IsLongName reports whether lower has the form of a long lower name:
// "longname." followed by a canonical base64url SHA-256 digest.
func IsLongName(lower string) bool {
	h, ok := strings.CutPrefix(lower, longNamePrefix)
	if !ok || len(h) != longHashLen {
		return false
	}
	_, err := decodeB64(h)
	return err == nil
}

// ParseSidecar checks the content of the sidecar of longLower and returns
// the encoded name it holds. The content must be the encoded name exactly
// (ASCII, no newline), longer than MaxLowerName, and hash to longLower.
func ParseSidecar(longLower string, content []byte) (encoded string, err error) {
	if !IsLongName(longLower) {
		return "", fmt.Errorf("parse sidecar: %q is not a long name: %w", longLower, ErrInvalidName)
	}
	if len(content) <= MaxLowerName || len(content) > maxEncodedName {
		return "", fmt.Errorf("parse sidecar of %s: %d bytes, want %d..%d: %w", longLower, len(content), MaxLowerName+1, maxEncodedName, ErrAuth)
	}
	for _, c := range content {
		if !isB64URL(c) {
			return "", fmt.Errorf("parse sidecar of %s: not base64url: %w", longLower, ErrAuth)
		}
	}
	encoded = string(content)
	if longNamePrefix+longHash(encoded) != longLower {
		return "", fmt.Errorf("parse sidecar of %s: content does not match the name's hash: %w", longLower, ErrAuth)
	}
	return encoded, nil
}

func isB64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// Reserved root names (the config file and its backup).
const (
	configName    = "cryptfs.conf"
	configBakName = "cryptfs.conf.bak"
)

// IsReserved reports whether the lower name is internal to cryptfs and
// hidden from the plaintext view: every name starting with ReservedPrefix,
// and at the cipher root the config file and its backup.
func IsReserved(lower string, atRoot bool) bool {
	if strings.HasPrefix(lower, ReservedPrefix) {
		return true
	}
	return atRoot && (lower == configName || lower == configBakName)
}

// CipherPathLen returns the length of the cipher-tree path of the
// plaintext path plainRel (relative, components separated by '/'): the sum
// of the lower name lengths of its components plus the separators. It
// depends only on the component lengths (not on keys or directory IVs),
// so it measures a plaintext tree without encrypting or mounting it.
func CipherPathLen(plainRel string) (int, error) {
	n := 0
	for i, comp := range strings.Split(plainRel, "/") {
		if err := checkName(comp); err != nil {
			return 0, fmt.Errorf("cipher path length of %q: component %d: %w", plainRel, i, err)
		}
		if i > 0 {
			n++
		}
		n += LowerNameLen(len(comp))
	}
	return n, nil
}
