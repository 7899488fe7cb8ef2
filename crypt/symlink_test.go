package crypt

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestSymlinkRoundTrip(t *testing.T) {
	s := fixedSuite(t, Options{})
	for _, target := range []string{"a", "../up/there", "/abs/path", strings.Repeat("t", 31), strings.Repeat("t", 32),
		strings.Repeat("t", 33), strings.Repeat("p/", MaxSymlinkTarget/2)} {
		stored, err := s.EncryptSymlink(target)
		if err != nil {
			t.Fatalf("EncryptSymlink(%d bytes): %v", len(target), err)
		}
		if len(stored) > MaxStoredSymlink || strings.Trim(stored, b64Alphabet) != "" {
			t.Fatalf("stored target of %d bytes is %d bytes / not base64url", len(target), len(stored))
		}
		got, err := s.DecryptSymlink(stored)
		if err != nil || got != target {
			t.Fatalf("DecryptSymlink = %.20q, %v", got, err)
		}
	}
}

func TestSymlinkLimits(t *testing.T) {
	s := fixedSuite(t, Options{})
	tests := []struct {
		target string
		want   error
	}{
		{"", ErrInvalidName},
		{"a\x00b", ErrInvalidName},
		{strings.Repeat("x", MaxSymlinkTarget+1), ErrNameTooLong},
		{strings.Repeat("x", 4095), ErrNameTooLong},
	}
	for _, tc := range tests {
		if _, err := s.EncryptSymlink(tc.target); !errors.Is(err, tc.want) {
			t.Errorf("EncryptSymlink(%d bytes): %v, want %v", len(tc.target), err, tc.want)
		}
	}
	stored, err := s.EncryptSymlink(strings.Repeat("x", MaxSymlinkTarget))
	if err != nil {
		t.Fatal(err)
	}
	// MaxSymlinkTarget is exact: one more padding block would not fit.
	if len(stored) > MaxStoredSymlink || len(stored)+(32*8+5)/6 <= MaxStoredSymlink {
		t.Fatalf("maximum target encodes to %d bytes", len(stored))
	}
}

func TestSymlinkPaddingHidesLength(t *testing.T) {
	s := fixedSuite(t, Options{})
	a, _ := s.EncryptSymlink("x")
	b, _ := s.EncryptSymlink(strings.Repeat("x", 32))
	c, _ := s.EncryptSymlink(strings.Repeat("x", 33))
	if len(a) != len(b) || len(b) == len(c) {
		t.Fatalf("lengths %d %d %d", len(a), len(b), len(c))
	}
	if a2, _ := s.EncryptSymlink("x"); a2 == a {
		t.Fatal("symlink encryption reuses nonces")
	}
}

func TestSymlinkTamper(t *testing.T) {
	s := fixedSuite(t, Options{})
	stored, _ := s.EncryptSymlink("../target/file")
	for i := range len(stored) {
		for _, c := range b64Alphabet {
			if byte(c) == stored[i] {
				continue
			}
			if _, err := s.DecryptSymlink(stored[:i] + string(c) + stored[i+1:]); !errors.Is(err, ErrAuth) {
				t.Fatalf("char %d -> %q: %v", i, c, err)
			}
		}
	}
	for n := range len(stored) {
		if _, err := s.DecryptSymlink(stored[:n]); !errors.Is(err, ErrAuth) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for _, bad := range []string{stored + "A", stored + "\n", strings.Repeat("A", MaxStoredSymlink+1)} {
		if _, err := s.DecryptSymlink(bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("%.20q...: %v", bad, err)
		}
	}
	// A name ciphertext is not a symlink ciphertext.
	name, _ := s.EncryptName(DirIV{}, "../target/file"[:8])
	if _, err := s.DecryptSymlink(name); !errors.Is(err, ErrAuth) {
		t.Fatalf("name accepted as symlink: %v", err)
	}
}

func TestSymlinkStrictPadding(t *testing.T) {
	s := fixedSuite(t, Options{})
	seal := func(padded []byte) string {
		nonce := make([]byte, nonceLen)
		raw := s.symlink.Seal(append([]byte(nil), nonce...), nonce, padded, nil)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	pad := func(t string, n int) []byte {
		b := make([]byte, n)
		copy(b, t)
		return b
	}
	if got, err := s.DecryptSymlink(seal(pad("ok", 32))); err != nil || got != "ok" {
		t.Fatalf("control: %q %v", got, err)
	}
	for name, padded := range map[string][]byte{
		"extra block":  pad("ok", 64),
		"empty":        make([]byte, 32),
		"junk after":   append(pad("ok", 31), 1),
		"beyond limit": pad("x", MaxSymlinkTarget+32),
	} {
		if _, err := s.DecryptSymlink(seal(padded)); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v, want ErrAuth", name, err)
		}
	}
}
