package crypt

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var testNames = []string{
	"a", "hello.txt", ".hidden", "...", "with space", "üñíçødé 名前",
	strings.Repeat("x", 31), strings.Repeat("x", 32), strings.Repeat("x", 33),
	strings.Repeat("y", 128), strings.Repeat("y", 129), strings.Repeat("z", 255),
	"\x01\xff", "back\\slash",
}

func TestNameRoundTrip(t *testing.T) {
	s := fixedSuite(t, Options{})
	iv, _ := NewDirIV()
	for _, name := range testNames {
		enc, err := s.EncryptName(iv, name)
		if err != nil {
			t.Fatalf("EncryptName(%q): %v", name, err)
		}
		if strings.Trim(enc, b64Alphabet) != "" {
			t.Fatalf("encoded name %q has characters outside base64url", enc)
		}
		if IsReserved(enc, true) || IsLongName(enc) {
			t.Fatalf("encoded name %q collides with a reserved name", enc)
		}
		again, _ := s.EncryptName(iv, name)
		if again != enc {
			t.Fatalf("EncryptName is not deterministic for %q", name)
		}
		got, err := s.DecryptName(iv, enc)
		if err != nil || got != name {
			t.Fatalf("DecryptName(EncryptName(%q)) = %q, %v", name, got, err)
		}
	}
}

func TestNamePaddingHidesLength(t *testing.T) {
	s := fixedSuite(t, Options{})
	var iv DirIV
	length := func(n int) int {
		enc, err := s.EncryptName(iv, strings.Repeat("n", n))
		if err != nil {
			t.Fatal(err)
		}
		return len(enc)
	}
	tests := []struct{ a, b int }{{1, 32}, {33, 64}, {225, 255}}
	for _, tc := range tests {
		if length(tc.a) != length(tc.b) {
			t.Errorf("names of %d and %d bytes encode to different lengths", tc.a, tc.b)
		}
	}
	if length(32) == length(33) {
		t.Error("a 33-byte name does not get a second padding block")
	}
	// 32 bytes: 24 + 32 + 16 = 72 raw bytes = 96 characters.
	if got := length(32); got != 96 {
		t.Errorf("32-byte name encodes to %d characters, want 96", got)
	}
}

func TestNameBoundToDirectory(t *testing.T) {
	s := fixedSuite(t, Options{})
	a, _ := NewDirIV()
	b, _ := NewDirIV()
	ea, _ := s.EncryptName(a, "same")
	eb, _ := s.EncryptName(b, "same")
	if ea == eb {
		t.Fatal("same name encodes equally in two directories")
	}
	if _, err := s.DecryptName(b, ea); !errors.Is(err, ErrAuth) {
		t.Fatalf("name moved to another directory: %v, want ErrAuth", err)
	}
}

func TestInvalidNames(t *testing.T) {
	s := fixedSuite(t, Options{})
	for _, name := range []string{"", ".", "..", "a/b", "/", "a\x00b", strings.Repeat("x", 256)} {
		if _, err := s.EncryptName(DirIV{}, name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("EncryptName(%q): %v, want ErrInvalidName", name, err)
		}
	}
}

func TestNameTamperEveryCharacter(t *testing.T) {
	s := fixedSuite(t, Options{})
	iv := DirIV{7}
	for _, name := range []string{"short", strings.Repeat("L", 200)} {
		enc, _ := s.EncryptName(iv, name)
		for i := range len(enc) {
			for _, c := range b64Alphabet {
				if byte(c) == enc[i] {
					continue
				}
				bad := enc[:i] + string(c) + enc[i+1:]
				if _, err := s.DecryptName(iv, bad); !errors.Is(err, ErrAuth) {
					t.Fatalf("name %q, char %d -> %q: %v, want ErrAuth", name[:5], i, c, err)
				}
			}
		}
	}
}

func TestNameTamperEveryByte(t *testing.T) {
	s := fixedSuite(t, Options{})
	var iv DirIV
	enc, _ := s.EncryptName(iv, "tamper me")
	raw, _ := base64.RawURLEncoding.DecodeString(enc)
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x01
		if _, err := s.DecryptName(iv, base64.RawURLEncoding.EncodeToString(bad)); !errors.Is(err, ErrAuth) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

func TestNameTruncatedOrExtended(t *testing.T) {
	s := fixedSuite(t, Options{})
	var iv DirIV
	enc, _ := s.EncryptName(iv, strings.Repeat("t", 40))
	for n := range len(enc) {
		if _, err := s.DecryptName(iv, enc[:n]); !errors.Is(err, ErrAuth) {
			t.Fatalf("prefix of %d characters: %v", n, err)
		}
	}
	for _, suffix := range []string{"A", "AA", "AAAA", enc} {
		if _, err := s.DecryptName(iv, enc+suffix); !errors.Is(err, ErrAuth) {
			t.Fatalf("extended by %q: %v", suffix, err)
		}
	}
}

func TestNameNonCanonicalEncoding(t *testing.T) {
	s := fixedSuite(t, Options{})
	var iv DirIV
	enc, _ := s.EncryptName(iv, strings.Repeat("c", 40)) // 104 raw bytes: 2 trailing bits
	if len(enc)%4 == 0 {
		t.Fatalf("test assumes an unpadded length, got %d", len(enc))
	}
	raw, _ := base64.RawURLEncoding.DecodeString(enc)
	last := strings.IndexByte(b64Alphabet, enc[len(enc)-1])
	tests := map[string]string{
		"padding":                enc + strings.Repeat("=", 4-len(enc)%4),
		"newline inside":         enc[:10] + "\n" + enc[10:],
		"CR at end":              enc + "\r",
		"standard alphabet":      base64.RawStdEncoding.EncodeToString(raw),
		"non-zero trailing bits": enc[:len(enc)-1] + string(b64Alphabet[last^1]),
		"space":                  " " + enc,
		"dot":                    enc + ".",
	}
	for name, bad := range tests {
		if bad == enc {
			continue // e.g. the standard alphabet happened to match
		}
		if _, err := s.DecryptName(iv, bad); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v, want ErrAuth", name, err)
		}
	}
}

// sealRawName seals padded bytes the way EncryptName does but without any
// validation, to build authentic ciphertexts with invalid contents.
func sealRawName(s *Suite, iv DirIV, padded []byte, nonce []byte) string {
	if nonce == nil {
		nonce = s.names.syntheticNonce(iv[:], padded)
	}
	raw := append([]byte(nil), nonce...)
	raw = s.names.aead.Seal(raw, nonce, padded, iv[:])
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestNameStrictPadding(t *testing.T) {
	s := fixedSuite(t, Options{})
	var iv DirIV
	pad := func(name string, n int) []byte {
		b := make([]byte, n)
		copy(b, name)
		return b
	}
	good := sealRawName(s, iv, pad("ok", 32), nil)
	if got, err := s.DecryptName(iv, good); err != nil || got != "ok" {
		t.Fatalf("control: %q, %v", got, err)
	}
	tests := map[string][]byte{
		"extra padding block":      pad("ok", 64),
		"empty name":               make([]byte, 32),
		"non-zero after padding":   append(pad("ok", 31), 'x'),
		"dot":                      pad(".", 32),
		"dot dot":                  pad("..", 32),
		"slash":                    pad("a/b", 32),
		"eight blocks of one name": pad("x", 256+32), // longer than any valid name
	}
	for name, padded := range tests {
		if _, err := s.DecryptName(iv, sealRawName(s, iv, padded, nil)); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v, want ErrAuth", name, err)
		}
	}
	// Authentic ciphertext under a nonce that is not the synthetic one.
	other := make([]byte, nonceLen)
	if _, err := s.DecryptName(iv, sealRawName(s, iv, pad("ok", 32), other)); !errors.Is(err, ErrAuth) {
		t.Errorf("non-synthetic nonce: %v, want ErrAuth", err)
	}
}

func TestDeterministicNamesUseZeroIV(t *testing.T) {
	s := fixedSuite(t, Options{DeterministicNames: true})
	a, _ := s.EncryptName(DirIV{}, "doc.txt")
	b, _ := fixedSuite(t, Options{}).EncryptName(DirIV{}, "doc.txt")
	if a != b {
		t.Fatal("deterministic mode is not the zero-IV encoding")
	}
}

func TestLowerNameBoundary(t *testing.T) {
	s := fixedSuite(t, Options{})
	var iv DirIV
	for n := 1; n <= 255; n++ {
		enc, _ := s.EncryptName(iv, strings.Repeat("b", n))
		lower, long := LowerName(enc)
		wantLong := n > 128
		if long != wantLong || long != (len(enc) > MaxLowerName) {
			t.Fatalf("%d-byte name: long = %v (encoded %d chars), want %v", n, long, len(enc), wantLong)
		}
		if !long && lower != enc {
			t.Fatalf("short lower name %q != encoded", lower)
		}
		if long {
			if !IsLongName(lower) || len(lower) != len("longname.")+43 || len(lower) > MaxLowerName {
				t.Fatalf("long lower name %q", lower)
			}
			side := SidecarName(lower)
			if !IsReserved(side, false) || side != ".cryptfs."+lower {
				t.Fatalf("sidecar name %q", side)
			}
			got, err := ParseSidecar(lower, []byte(enc))
			if err != nil || got != enc {
				t.Fatalf("ParseSidecar: %v", err)
			}
		}
	}
	if len(strings.Repeat("x", 255)) > 0 {
		enc, _ := s.EncryptName(iv, strings.Repeat("x", 255))
		if len(enc) != maxEncodedName {
			t.Fatalf("255-byte name encodes to %d characters, maxEncodedName = %d", len(enc), maxEncodedName)
		}
	}
}

func TestLowerNameHash(t *testing.T) {
	enc := strings.Repeat("A", 300)
	lower, long := LowerName(enc)
	h := sha256.Sum256([]byte(enc))
	if !long || lower != "longname."+base64.RawURLEncoding.EncodeToString(h[:]) {
		t.Fatalf("LowerName = %q, %v", lower, long)
	}
}

func TestParseSidecarRejects(t *testing.T) {
	s := fixedSuite(t, Options{})
	enc, _ := s.EncryptName(DirIV{}, strings.Repeat("s", 200))
	lower, _ := LowerName(enc)
	other, _ := s.EncryptName(DirIV{}, strings.Repeat("o", 200))
	tests := []struct {
		name    string
		lower   string
		content string
		want    error
	}{
		{"other name's content", lower, other, ErrAuth},
		{"trailing newline", lower, enc + "\n", ErrAuth},
		{"truncated", lower, enc[:len(enc)-1], ErrAuth},
		{"empty", lower, "", ErrAuth},
		{"short name", lower, "abc", ErrAuth},
		{"too long", lower, strings.Repeat("A", maxEncodedName+1), ErrAuth},
		{"not a long name", enc[:40], enc, ErrInvalidName},
		{"long name with bad hash", "longname." + strings.Repeat("!", 43), enc, ErrInvalidName},
		{"long name with short hash", lower[:len(lower)-1], enc, ErrInvalidName},
	}
	for _, tc := range tests {
		if _, err := ParseSidecar(tc.lower, []byte(tc.content)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	for i := range len(enc) {
		bad := []byte(enc)
		bad[i] = 'A' + (bad[i]-'A'+1)%26
		if string(bad) == enc {
			continue
		}
		if _, err := ParseSidecar(lower, bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("sidecar byte %d changed: %v", i, err)
		}
	}
}

func TestIsLongName(t *testing.T) {
	lower, _ := LowerName(strings.Repeat("Q", 256))
	tests := map[string]bool{
		lower:                   true,
		"longname.":             false,
		lower + "A":             false,
		"Longname." + lower[9:]: false,
		".cryptfs." + lower:     false,
		strings.Repeat("Q", 52): false,
	}
	for in, want := range tests {
		if got := IsLongName(in); got != want {
			t.Errorf("IsLongName(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestIsReserved(t *testing.T) {
	tests := []struct {
		lower  string
		atRoot bool
		want   bool
	}{
		{".cryptfs.diriv", false, true},
		{".cryptfs.diriv", true, true},
		{".cryptfs.longname.abc", false, true},
		{".cryptfsanything", false, true},
		{"cryptfs.conf", true, true},
		{"cryptfs.conf.bak", true, true},
		{"cryptfs.conf", false, false},
		{"cryptfs.conf.bak", false, false},
		{".cryptf", true, false},
		{"longname.abc", true, false},
		{"AbCd", true, false},
		{DirIVFile, false, true},
	}
	for _, tc := range tests {
		if got := IsReserved(tc.lower, tc.atRoot); got != tc.want {
			t.Errorf("IsReserved(%q, %v) = %v, want %v", tc.lower, tc.atRoot, got, tc.want)
		}
	}
}
