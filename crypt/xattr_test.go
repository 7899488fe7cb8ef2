package crypt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestXattrRoundTrip(t *testing.T) {
	s := fixedSuite(t, Options{})
	for _, name := range []string{"user.a", "user.comment", "user.with/slash", "user.ünï", "user." + strings.Repeat("n", MaxXattrName-5)} {
		lower, err := s.EncryptXattrName(name)
		if err != nil {
			t.Fatalf("EncryptXattrName(%q): %v", name, err)
		}
		if !strings.HasPrefix(lower, "user.") || len(lower) > MaxLowerName {
			t.Fatalf("lower xattr name %q (%d bytes)", lower, len(lower))
		}
		if strings.Trim(lower[5:], b64Alphabet) != "" {
			t.Fatalf("lower xattr name %q not base64url", lower)
		}
		if again, _ := s.EncryptXattrName(name); again != lower {
			t.Fatal("xattr names are not deterministic")
		}
		got, err := s.DecryptXattrName(lower)
		if err != nil || got != name {
			t.Fatalf("DecryptXattrName = %q, %v; want %q", got, err, name)
		}
		for _, value := range [][]byte{{}, []byte("v"), pattern(5000)} {
			sealed, err := s.SealXattrValue(lower, value)
			if err != nil || len(sealed) != len(value)+BlockOverhead {
				t.Fatalf("SealXattrValue: %d bytes, %v", len(sealed), err)
			}
			got, err := s.OpenXattrValue(lower, sealed)
			if err != nil || !bytes.Equal(got, value) || got == nil {
				t.Fatalf("OpenXattrValue = %q, %v", got, err)
			}
		}
	}
}

func TestXattrNameDiffersFromFileName(t *testing.T) {
	s := fixedSuite(t, Options{})
	lower, _ := s.EncryptXattrName("user.x")
	file, _ := s.EncryptName(DirIV{}, "user.x")
	if lower[5:] == file {
		t.Fatal("xattr names use the file name keys")
	}
	if _, err := s.DecryptName(DirIV{}, lower[5:]); !errors.Is(err, ErrAuth) {
		t.Fatalf("xattr name decrypted as a file name: %v", err)
	}
}

func TestXattrNameLimits(t *testing.T) {
	s := fixedSuite(t, Options{})
	tests := []struct {
		name string
		want error
	}{
		{"user.", ErrInvalidName},
		{"user", ErrInvalidName},
		{"trusted.x", ErrInvalidName},
		{"security.capability", ErrInvalidName},
		{"system.posix_acl_access", ErrInvalidName},
		{"USER.x", ErrInvalidName},
		{"user.a\x00b", ErrInvalidName},
		{"user." + strings.Repeat("n", MaxXattrName-4), ErrNameTooLong},
		{"user." + strings.Repeat("n", 250), ErrNameTooLong},
		{"user." + strings.Repeat("n", 300), ErrNameTooLong},
	}
	for _, tc := range tests {
		if _, err := s.EncryptXattrName(tc.name); !errors.Is(err, tc.want) {
			t.Errorf("EncryptXattrName(%.20q): %v, want %v", tc.name, err, tc.want)
		}
	}
	// MaxXattrName is exact: one more padding block would not fit.
	lower, err := s.EncryptXattrName("user." + strings.Repeat("n", MaxXattrName-5))
	if err != nil {
		t.Fatal(err)
	}
	if len(lower) > MaxLowerName || len(lower) != len(XattrPrefix)+EncodedNameLen(MaxXattrName) {
		t.Fatalf("longest xattr name: lower name of %d bytes", len(lower))
	}
	if next := len(XattrPrefix) + EncodedNameLen(MaxXattrName+1); next <= MaxLowerName {
		t.Fatalf("a name one byte longer (%d-byte lower name) would still fit", next)
	}
}

func TestXattrTamper(t *testing.T) {
	s := fixedSuite(t, Options{})
	lower, _ := s.EncryptXattrName("user.tamper")
	sealed, _ := s.SealXattrValue(lower, []byte("value"))
	for i := 5; i < len(lower); i++ {
		for _, c := range b64Alphabet {
			if byte(c) == lower[i] {
				continue
			}
			bad := lower[:i] + string(c) + lower[i+1:]
			if _, err := s.DecryptXattrName(bad); !errors.Is(err, ErrAuth) {
				t.Fatalf("xattr name char %d -> %q: %v", i, c, err)
			}
		}
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x40
		if _, err := s.OpenXattrValue(lower, bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("value byte %d flipped: %v", i, err)
		}
	}
	for n := range len(sealed) {
		if _, err := s.OpenXattrValue(lower, sealed[:n]); !errors.Is(err, ErrAuth) {
			t.Fatalf("value truncated to %d: %v", n, err)
		}
	}
	other, _ := s.EncryptXattrName("user.other")
	if _, err := s.OpenXattrValue(other, sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("value moved to another name: %v", err)
	}
	for _, bad := range []string{"trusted." + lower[5:], lower[5:], "user."} {
		if _, err := s.DecryptXattrName(bad); err == nil {
			t.Fatalf("DecryptXattrName(%.20q) succeeded", bad)
		}
	}
	if _, err := s.DecryptXattrName("security.selinux"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("foreign namespace: %v, want ErrInvalidName", err)
	}
}

func TestXattrValueFreshNonces(t *testing.T) {
	s := fixedSuite(t, Options{})
	a, _ := s.SealXattrValue("user.x", []byte("v"))
	b, _ := s.SealXattrValue("user.x", []byte("v"))
	if bytes.Equal(a, b) {
		t.Fatal("equal sealed values")
	}
}

func TestXattrDecryptedOutsideUserRejected(t *testing.T) {
	// An authentic encryption of a name outside "user." is refused.
	s := fixedSuite(t, Options{})
	enc := s.xattrNames.seal(zeroIV[:], "trusted.x")
	if _, err := s.DecryptXattrName("user." + enc); !errors.Is(err, ErrAuth) {
		t.Fatalf("%v, want ErrAuth", err)
	}
}
