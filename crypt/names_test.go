package crypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20"
)

var testNames = []string{
	"a", "hello.txt", ".hidden", "...", "with space", "üñíçødé 名前",
	strings.Repeat("x", 15), strings.Repeat("x", 16), strings.Repeat("x", 31), strings.Repeat("x", 32),
	strings.Repeat("y", 159), strings.Repeat("y", 160), strings.Repeat("z", 255),
	"\x01\xff", "back\\slash", "ends in 0x80 \x80", "\x80", "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80",
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
		if len(enc) != EncodedNameLen(n) {
			t.Fatalf("%d-byte name: %d characters, EncodedNameLen says %d", n, len(enc), EncodedNameLen(n))
		}
		return len(enc)
	}
	for _, tc := range []struct{ a, b int }{{1, 15}, {16, 31}, {144, 159}, {240, 255}} {
		if length(tc.a) != length(tc.b) {
			t.Errorf("names of %d and %d bytes encode to different lengths", tc.a, tc.b)
		}
	}
	if length(15) == length(16) {
		t.Error("a 16-byte name does not get a second padding block")
	}
	// The promise: 16 + 16 bytes = 43 characters; 16 + 32 = 64.
	for n, want := range map[int]int{1: 43, 15: 43, 16: 64, 20: 64, 159: 235, 255: 363} {
		if got := length(n); got != want {
			t.Errorf("%d-byte name encodes to %d characters, want %d", n, got, want)
		}
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
	enc, _ := s.EncryptName(iv, strings.Repeat("c", 40)) // 64 raw bytes: 86 characters, 4 trailing bits
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

// sealRawName encrypts padded bytes the way EncryptName does but without
// any validation or padding, to build authentic ciphertexts of invalid
// contents. A non-nil tag replaces the synthetic IV (the keystream then
// follows that tag, as an attacker without the SIV key could do).
func sealRawName(c *nameCipher, iv DirIV, padded []byte, tag *[sivLen]byte) string {
	if tag == nil {
		tag = new([sivLen]byte)
		c.siv(tag, iv[:], padded)
	}
	raw := make([]byte, sivLen+len(padded))
	copy(raw, tag[:])
	c.xorKeyStream(raw[sivLen:], padded, tag)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// pad7816 pads name with 0x80 and zeros to n bytes.
func pad7816(name string, n int) []byte {
	b := make([]byte, n)
	copy(b, name)
	b[len(name)] = 0x80
	return b
}

func TestNameStrictPadding(t *testing.T) {
	s := fixedSuite(t, Options{})
	var iv DirIV
	good := sealRawName(&s.names, iv, pad7816("ok", 16), nil)
	if got, err := s.DecryptName(iv, good); err != nil || got != "ok" {
		t.Fatalf("control: %q, %v", got, err)
	}
	if enc, _ := s.EncryptName(iv, "ok"); enc != good {
		t.Fatal("sealRawName does not reproduce EncryptName")
	}
	zeroPadded := make([]byte, 16)
	copy(zeroPadded, "ok")
	tests := map[string][]byte{
		"extra padding block":        pad7816("ok", 32),
		"empty name":                 pad7816("", 16),
		"all zero":                   make([]byte, 16),
		"zero padding without 0x80":  zeroPadded,
		"no padding at all":          []byte("sixteen bytes!!!"),
		"0x81 instead of 0x80":       append([]byte("ok\x81"), make([]byte, 13)...),
		"non-zero after 0x80":        append(pad7816("ok", 15), 'x'),
		"dot":                        pad7816(".", 16),
		"dot dot":                    pad7816("..", 16),
		"slash":                      pad7816("a/b", 16),
		"NUL inside":                 pad7816("a\x00b", 16),
		"longer than any valid name": pad7816("x", 256+16),
		"sixteen 0x80 then a block":  append(bytes.Repeat([]byte{0x80}, 16), make([]byte, 16)...),
		"256-byte name in 272 bytes": pad7816(strings.Repeat("x", 256), 272),
		"0x80 in the second-to-last": append(pad7816("ok", 16), make([]byte, 16)...),
	}
	for name, padded := range tests {
		if _, err := s.DecryptName(iv, sealRawName(&s.names, iv, padded, nil)); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v, want ErrAuth", name, err)
		}
	}
	// Authentic-looking ciphertext under a tag that is not the SIV of its
	// plaintext: the tag check rejects it.
	other := [sivLen]byte{1}
	if _, err := s.DecryptName(iv, sealRawName(&s.names, iv, pad7816("ok", 16), &other)); !errors.Is(err, ErrAuth) {
		t.Errorf("tag is not the SIV: %v, want ErrAuth", err)
	}
}

func TestNameUnpad(t *testing.T) {
	tests := []struct {
		padded []byte
		want   string
		ok     bool
	}{
		{pad7816("a", 16), "a", true},
		{pad7816(strings.Repeat("b", 15), 16), strings.Repeat("b", 15), true},
		{pad7816(strings.Repeat("c", 16), 32), strings.Repeat("c", 16), true},
		{pad7816("d\x80", 16), "d\x80", true},
		{pad7816("e\x00", 16), "e\x00", true}, // unpad is byte-exact; checkName refuses NUL
		{pad7816("", 16), "", false},
		{pad7816("f", 32), "", false},
		{make([]byte, 16), "", false},
		{[]byte{}, "", false},
		{[]byte("g"), "", false},
		{append([]byte("h\x80"), 1), "", false},
	}
	for _, tc := range tests {
		got, ok := nameUnpad(tc.padded)
		if got != tc.want || ok != tc.ok {
			t.Errorf("nameUnpad(%x) = %q, %v; want %q, %v", tc.padded, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNameSIVIsTheNonce(t *testing.T) {
	// The stored name is SIV || padded XOR XChaCha20(name-enc key,
	// nonce = SIV || 8 zero bytes, counter 0), SIV = BLAKE2b-128(name-siv
	// key, dir IV || padded), rebuilt here from the primitives directly.
	s := fixedSuite(t, Options{})
	iv := DirIV{9}
	enc, _ := s.EncryptName(iv, "report.odt")
	raw, _ := base64.RawURLEncoding.DecodeString(enc)
	var sivKey, encKey [KeyLen]byte
	if deriveSubkey(&sivKey, fixedMaster(), "name-siv") != nil || deriveSubkey(&encKey, fixedMaster(), "name-enc") != nil {
		t.Fatal("derive")
	}
	padded := pad7816("report.odt", 16)
	h, _ := blake2b.New(16, sivKey[:])
	h.Write(iv[:])
	h.Write(padded)
	siv := h.Sum(nil)
	x, err := chacha20.NewUnauthenticatedCipher(encKey[:], append(slices.Clone(siv), make([]byte, 8)...))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(siv)
	ct := make([]byte, len(padded))
	x.XORKeyStream(ct, padded)
	want = append(want, ct...)
	if !bytes.Equal(raw, want) {
		t.Fatalf("stored name\n%x, want\n%x", raw, want)
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
		wantLong := n > MaxShortName
		if long != wantLong || long != (len(enc) > MaxLowerName) {
			t.Fatalf("%d-byte name: long = %v (encoded %d chars), want %v", n, long, len(enc), wantLong)
		}
		if !long && (lower != enc || len(lower) != LowerNameLen(n)) {
			t.Fatalf("short lower name %q != encoded", lower)
		}
		if long {
			if !IsLongName(lower) || len(lower) != len("longname.")+43 || len(lower) != LowerNameLen(n) {
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

// TestDecryptNamesMatchesDecryptName: the batch gives, name for name,
// what DecryptName gives, across more than one block of names and with
// good, tampered and foreign names mixed; after Wipe every name fails
// with ErrWiped.
func TestDecryptNamesMatchesDecryptName(t *testing.T) {
	s := fixedSuite(t, Options{})
	iv, _ := NewDirIV()
	other, _ := NewDirIV()
	var encoded []string
	for i := range 2*namesPerBlock + 7 {
		name := testNames[i%len(testNames)]
		enc, err := s.EncryptName(iv, name)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 5 {
		case 1: // tampered: one character changed
			b := []byte(enc)
			b[len(b)/2] = flipB64(b[len(b)/2])
			enc = string(b)
		case 2: // a name of another directory
			enc, _ = s.EncryptName(other, name)
		case 3: // not an encrypted name at all
			enc = "notes.txt"
		}
		encoded = append(encoded, enc)
	}
	names, errs := s.DecryptNames(iv, encoded)
	if len(names) != len(encoded) || len(errs) != len(encoded) {
		t.Fatalf("DecryptNames: %d names, %d errors for %d inputs", len(names), len(errs), len(encoded))
	}
	good, wantGood := 0, 0
	for i, enc := range encoded {
		want, wantErr := s.DecryptName(iv, enc)
		if names[i] != want || (errs[i] == nil) != (wantErr == nil) || (wantErr != nil && errs[i].Error() != wantErr.Error()) {
			t.Fatalf("name %d (%q): DecryptNames gave %q, %v; DecryptName gives %q, %v", i, enc, names[i], errs[i], want, wantErr)
		}
		if wantErr != nil && !errors.Is(errs[i], ErrAuth) {
			t.Fatalf("name %d (%q): %v does not wrap ErrAuth", i, enc, errs[i])
		}
		if wantErr == nil {
			good++
		}
		if i%5 == 0 || i%5 == 4 {
			wantGood++
		}
	}
	if good != wantGood {
		t.Fatalf("%d names decrypted, want %d (the untouched ones)", good, wantGood)
	}
	s.Wipe()
	_, errs = s.DecryptNames(iv, encoded[:3])
	for i, err := range errs {
		if !errors.Is(err, ErrWiped) {
			t.Fatalf("after Wipe, name %d: %v, want ErrWiped", i, err)
		}
	}
}

// flipB64 returns a different base64url character.
func flipB64(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}
