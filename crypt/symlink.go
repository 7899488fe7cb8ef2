package crypt

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strings"
)

// EncryptSymlink returns the stored form of a symlink target: the target
// zero-padded to a multiple of 32 bytes, sealed under a fresh random nonce
// with no additional data, as base64url(nonce || ciphertext || tag). An
// empty target or one containing NUL fails with ErrInvalidName; a target
// longer than MaxSymlinkTarget (whose encoding would exceed
// MaxStoredSymlink bytes) with ErrNameTooLong.
func (s *Suite) EncryptSymlink(target string) (string, error) {
	var nonce [nonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("encrypt symlink: %w", err)
	}
	return s.encryptSymlinkNonce(nonce[:], target)
}

func (s *Suite) encryptSymlinkNonce(nonce []byte, target string) (string, error) {
	if s.wiped.Load() {
		return "", ErrWiped
	}
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return "", fmt.Errorf("encrypt symlink: %w", ErrInvalidName)
	}
	if len(target) > MaxSymlinkTarget {
		return "", fmt.Errorf("encrypt symlink: target is %d bytes, at most %d: %w", len(target), MaxSymlinkTarget, ErrNameTooLong)
	}
	padded := make([]byte, symlinkPaddedLen(len(target)))
	copy(padded, target)
	raw := make([]byte, nonceLen, nonceLen+len(padded)+tagLen)
	copy(raw, nonce)
	raw = s.symlink.Seal(raw, nonce, padded, nil)
	Wipe(padded)
	return b64.EncodeToString(raw), nil
}

// DecryptSymlink reverses EncryptSymlink strictly. Failures wrap ErrAuth.
func (s *Suite) DecryptSymlink(stored string) (string, error) {
	if s.wiped.Load() {
		return "", ErrWiped
	}
	if len(stored) > MaxStoredSymlink {
		return "", fmt.Errorf("decrypt symlink: %d bytes, at most %d: %w", len(stored), MaxStoredSymlink, ErrAuth)
	}
	raw, err := decodeB64(stored)
	if err != nil {
		return "", fmt.Errorf("decrypt symlink: not canonical base64url: %w", ErrAuth)
	}
	n := len(raw) - nonceLen - tagLen
	if len(raw) < minSealedSymlink || n%symlinkPadAlign != 0 || n > MaxSymlinkTarget {
		return "", fmt.Errorf("decrypt symlink: impossible length %d: %w", len(raw), ErrAuth)
	}
	padded, err := s.symlink.Open(nil, raw[:nonceLen], raw[nonceLen:], nil)
	if err != nil {
		return "", fmt.Errorf("decrypt symlink: %w", ErrAuth)
	}
	target, ok := symlinkUnpad(padded)
	if !ok {
		return "", fmt.Errorf("decrypt symlink: invalid padding: %w", ErrAuth)
	}
	return target, nil
}

// minSealedSymlink is the shortest decoded symlink target: nonce, one
// padded block, tag.
const minSealedSymlink = nonceLen + symlinkPadAlign + tagLen

// symlinkUnpad returns the target before the zero padding and reports
// whether the padding is canonical: the target is non-empty and contains
// no zero byte, everything after it is zero, and len(padded) is exactly
// symlinkPaddedLen(len(target)).
func symlinkUnpad(padded []byte) (string, bool) {
	i := bytes.IndexByte(padded, 0)
	if i < 0 {
		i = len(padded)
	}
	if i == 0 || symlinkPaddedLen(i) != len(padded) {
		return "", false
	}
	for _, b := range padded[i:] {
		if b != 0 {
			return "", false
		}
	}
	return string(padded[:i]), true
}
