package crypt

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/blake2b"
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

// minSealedName is the shortest decoded name: nonce, one padded block, tag.
const minSealedName = nonceLen + padAlign + tagLen

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
	name, err := s.names.open(iv[:], encoded)
	if err != nil {
		return "", fmt.Errorf("decrypt name: %w", err)
	}
	if checkName(name) != nil {
		return "", fmt.Errorf("decrypt name: decrypted name is not a valid name: %w", ErrAuth)
	}
	return name, nil
}

// syntheticNonce returns BLAKE2b-192 keyed with the nonce key over iv ||
// padded.
func (c *nameCipher) syntheticNonce(iv, padded []byte) []byte {
	h, err := blake2b.New(nonceLen, c.nonceKey[:])
	if err != nil {
		panic("crypt: blake2b: " + err.Error()) // unreachable: fixed valid sizes
	}
	h.Write(iv)
	h.Write(padded)
	return h.Sum(nil)
}

// seal pads name with zeros to a multiple of padAlign, seals it under its
// synthetic nonce with iv as additional data and returns the base64url
// encoding of nonce || ciphertext || tag.
func (c *nameCipher) seal(iv []byte, name string) string {
	padded := make([]byte, paddedLen(len(name)))
	copy(padded, name)
	nonce := c.syntheticNonce(iv, padded)
	raw := make([]byte, 0, nonceLen+len(padded)+tagLen)
	raw = append(raw, nonce...)
	raw = c.aead.Seal(raw, nonce, padded, iv)
	return b64.EncodeToString(raw)
}

// open reverses seal strictly: canonical base64, lengths, authentication,
// synthetic nonce, padding.
func (c *nameCipher) open(iv []byte, encoded string) (string, error) {
	raw, err := decodeB64(encoded)
	if err != nil {
		return "", fmt.Errorf("not canonical base64url: %w", ErrAuth)
	}
	n := len(raw) - nonceLen - tagLen
	if len(raw) < minSealedName || n%padAlign != 0 || n > c.maxPad {
		return "", fmt.Errorf("encrypted name has impossible length %d: %w", len(raw), ErrAuth)
	}
	padded, err := c.aead.Open(nil, raw[:nonceLen], raw[nonceLen:], iv)
	if err != nil {
		return "", ErrAuth
	}
	if subtle.ConstantTimeCompare(c.syntheticNonce(iv, padded), raw[:nonceLen]) != 1 {
		return "", fmt.Errorf("nonce is not the synthetic nonce: %w", ErrAuth)
	}
	name, ok := unpad(padded)
	if !ok {
		return "", fmt.Errorf("invalid padding: %w", ErrAuth)
	}
	return name, nil
}

// unpad returns the plaintext before the zero padding and reports whether
// the padding is canonical: the plaintext is non-empty and contains no
// zero byte, everything after it is zero, and len(padded) is exactly
// paddedLen(len(plaintext)).
func unpad(padded []byte) (string, bool) {
	i := bytes.IndexByte(padded, 0)
	if i < 0 {
		i = len(padded)
	}
	if i == 0 || paddedLen(i) != len(padded) {
		return "", false
	}
	for _, b := range padded[i:] {
		if b != 0 {
			return "", false
		}
	}
	return string(padded[:i]), true
}

// Long names.
const (
	longNamePrefix = "longname."
	longHashLen    = 43 // base64url of a SHA-256 digest
	// maxEncodedName is the longest encoded file name (a 255-byte name).
	maxEncodedName = (8*(nonceLen+256+tagLen) + 5) / 6
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
