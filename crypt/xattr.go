package crypt

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// XattrPrefix is the only extended attribute namespace cryptfs stores.
const XattrPrefix = "user."

// EncryptXattrName returns the lower name of the extended attribute name:
// "user." + the encrypted full name (encrypted like a file name, with the
// xattr-name subkeys and the zero IV). Names outside "user." or with an
// empty suffix or a NUL fail with ErrInvalidName; names longer than
// MaxXattrName fail with ErrNameTooLong.
func (s *Suite) EncryptXattrName(name string) (lower string, err error) {
	if s.wiped.Load() {
		return "", ErrWiped
	}
	if !strings.HasPrefix(name, XattrPrefix) || len(name) == len(XattrPrefix) || strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("encrypt xattr name: %w", ErrInvalidName)
	}
	if len(name) > MaxXattrName {
		return "", fmt.Errorf("encrypt xattr name: %d bytes, at most %d: %w", len(name), MaxXattrName, ErrNameTooLong)
	}
	return XattrPrefix + s.xattrNames.seal(zeroIV[:], name), nil
}

// DecryptXattrName reverses EncryptXattrName. A lower name outside "user."
// fails with ErrInvalidName, anything else not produced by
// EncryptXattrName with ErrAuth.
func (s *Suite) DecryptXattrName(lower string) (string, error) {
	if s.wiped.Load() {
		return "", ErrWiped
	}
	enc, ok := strings.CutPrefix(lower, XattrPrefix)
	if !ok {
		return "", fmt.Errorf("decrypt xattr name: not in the user namespace: %w", ErrInvalidName)
	}
	name, err := s.xattrNames.open(zeroIV[:], enc)
	if err != nil {
		return "", fmt.Errorf("decrypt xattr name: %w", err)
	}
	if !strings.HasPrefix(name, XattrPrefix) || len(name) == len(XattrPrefix) {
		return "", fmt.Errorf("decrypt xattr name: decrypted name is outside the user namespace: %w", ErrAuth)
	}
	return name, nil
}

// SealXattrValue seals an extended attribute value (which may be empty)
// under a fresh random nonce with the lower attribute name as additional
// data. The result is len(value) + BlockOverhead bytes.
func (s *Suite) SealXattrValue(lowerName string, value []byte) ([]byte, error) {
	var nonce [nonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("seal xattr value: %w", err)
	}
	return s.sealXattrValueNonce(nonce[:], lowerName, value)
}

func (s *Suite) sealXattrValueNonce(nonce []byte, lowerName string, value []byte) ([]byte, error) {
	if s.wiped.Load() {
		return nil, ErrWiped
	}
	out := make([]byte, nonceLen, nonceLen+len(value)+tagLen)
	copy(out, nonce)
	return s.xattrValue.Seal(out, nonce, value, []byte(lowerName)), nil
}

// OpenXattrValue authenticates and decrypts a sealed value stored under
// the lower attribute name lowerName. Failures wrap ErrAuth.
func (s *Suite) OpenXattrValue(lowerName string, sealed []byte) ([]byte, error) {
	if s.wiped.Load() {
		return nil, ErrWiped
	}
	if len(sealed) < BlockOverhead {
		return nil, fmt.Errorf("open xattr value: %d bytes, at least %d: %w", len(sealed), BlockOverhead, ErrAuth)
	}
	v, err := s.xattrValue.Open(nil, sealed[:nonceLen], sealed[nonceLen:], []byte(lowerName))
	if err != nil {
		return nil, fmt.Errorf("open xattr value: %w", ErrAuth)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}
