package crypt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func newTestReverse(tb testing.TB, opts Options) *Reverse {
	tb.Helper()
	master := fixedMaster()
	master[0] ^= 0x5a // not the vectors' key
	s, err := New(master, opts)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := NewReverse(master, s)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Wipe(); s.Wipe() })
	return r
}

func TestCheckViewPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"", true},
		{"a", true},
		{"a/b/c.txt", true},
		{".hidden/..x/x..", true},
		{strings.Repeat("n", 255) + "/x", true},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{"./a", false},
		{"a/./b", false},
		{"a/..", false},
		{".", false},
		{"a\x00b", false},
		{strings.Repeat("n", 256), false},
	} {
		err := CheckViewPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("CheckViewPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("CheckViewPath(%q) = %v, want ErrInvalidName", tc.path, err)
		}
	}
}

// TestReverseSubkeysIndependent: every reverse-mode subkey differs from
// every other subkey, forward ones included (distinct HKDF info strings).
func TestReverseSubkeysIndependent(t *testing.T) {
	seen := map[[KeyLen]byte]string{}
	for _, p := range append(append([]string{}, purposes...), reversePurposes[:]...) {
		var k [KeyLen]byte
		if err := deriveSubkey(&k, fixedMaster(), p); err != nil {
			t.Fatal(err)
		}
		if other, dup := seen[k]; dup {
			t.Fatalf("subkeys %s and %s are equal", p, other)
		}
		seen[k] = p
	}
	if len(seen) != len(purposes)+len(reversePurposes) {
		t.Fatalf("%d distinct subkeys", len(seen))
	}
}

// TestReverseDeterministic: every derivation gives the same output for
// the same input, under two Reverse values made from the same master key
// (as two mounts do), and a different one when any input changes.
func TestReverseDeterministic(t *testing.T) {
	a, b := newTestReverse(t, Options{}), newTestReverse(t, Options{})
	ida, _ := a.FileID("d/f")
	idb, _ := b.FileID("d/f")
	if ida != idb {
		t.Fatal("file IDs differ across instances")
	}
	for _, p := range []string{"", "d", "d/g", "D/f", "d/f/x"} {
		other, err := a.FileID(p)
		if err != nil || other == ida {
			t.Errorf("FileID(%q) = %x, %v; equals FileID(d/f)", p, other, err)
		}
	}
	iva, _ := a.DirIV("d")
	ivb, _ := b.DirIV("d")
	ivRoot, _ := a.DirIV("")
	if iva != ivb || iva == ivRoot || iva == (DirIV{}) {
		t.Errorf("DirIV: %x %x root %x", iva, ivb, ivRoot)
	}
	if [16]byte(iva) == [16]byte(ida) {
		t.Error("DirIV and FileID of one path coincide (same key?)")
	}

	plain := pattern(BlockSize)
	sa, err := a.SealBlock(nil, plain, ida, 3)
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := b.SealBlock(nil, plain, idb, 3)
	if !bytes.Equal(sa, sb) {
		t.Fatal("sealed blocks differ across instances")
	}
	changed := bytes.Clone(plain)
	changed[4095] ^= 1
	for name, c := range map[string]func() ([]byte, error){
		"one plaintext bit": func() ([]byte, error) { return a.SealBlock(nil, changed, ida, 3) },
		"block number":      func() ([]byte, error) { return a.SealBlock(nil, plain, ida, 4) },
		"file":              func() ([]byte, error) { id, _ := a.FileID("d/g"); return a.SealBlock(nil, plain, id, 3) },
		"shorter":           func() ([]byte, error) { return a.SealBlock(nil, plain[:4095], ida, 3) },
	} {
		got, err := c()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got[:nonceLen], sa[:nonceLen]) {
			t.Errorf("%s changed but the nonce did not", name)
		}
	}

	la, _ := a.EncryptSymlink("d/l", "../t")
	lb, _ := b.EncryptSymlink("d/l", "../t")
	lo, _ := a.EncryptSymlink("d/m", "../t")
	lt, _ := a.EncryptSymlink("d/l", "../u")
	if la != lb || la == lo || la == lt || la[:32] == lo[:32] {
		t.Errorf("symlinks: %q %q %q %q", la, lb, lo, lt)
	}

	xa, _ := a.SealXattrValue("d/f", "user.x", []byte("v"))
	xb, _ := b.SealXattrValue("d/f", "user.x", []byte("v"))
	xo, _ := a.SealXattrValue("d/g", "user.x", []byte("v"))
	xn, _ := a.SealXattrValue("d/f", "user.y", []byte("v"))
	xv, _ := a.SealXattrValue("d/f", "user.x", []byte("w"))
	if !bytes.Equal(xa, xb) {
		t.Error("xattr values differ across instances")
	}
	for _, other := range [][]byte{xo, xn, xv} {
		if bytes.Equal(other[:nonceLen], xa[:nonceLen]) {
			t.Error("xattr nonce repeated for a different input")
		}
	}

	i0, _ := a.Inode(0, 8, "d/f")
	i0b, _ := b.Inode(0, 8, "d/f")
	i1, _ := a.Inode(1, 8, "d/f")
	id, _ := a.Inode(0, 4, "d/f")
	if i0 != i0b || i0 == i1 || i0 == id {
		t.Errorf("inodes: %d %d %d %d", i0, i0b, i1, id)
	}
}

// TestReverseOpensInForwardMode: what reverse mode seals, the forward
// reader opens, at every block length and symlink length class.
func TestReverseOpensInForwardMode(t *testing.T) {
	r := newTestReverse(t, Options{})
	s := r.Suite()
	id, _ := r.FileID("x")
	for _, n := range []int{1, 15, 16, 4095, 4096} {
		plain := pattern(n)
		stored, err := r.SealBlock(nil, plain, id, 7)
		if err != nil || len(stored) != n+BlockOverhead {
			t.Fatalf("SealBlock(%d): %d bytes, %v", n, len(stored), err)
		}
		if got, err := s.OpenBlock(nil, stored, id, 7); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("OpenBlock of %d bytes: %v", n, err)
		}
	}
	zero := make([]byte, BlockSize)
	stored, _ := r.SealBlock(nil, zero, id, 0)
	if bytes.Equal(stored, make([]byte, CipherBlockSize)) {
		t.Error("a zero block sealed to zeros (the hole encoding)")
	}
	for _, n := range []int{1, 31, 32, 33, 100, MaxSymlinkTarget} {
		target := strings.Repeat("t", n)
		stored, err := r.EncryptSymlink("l", target)
		if err != nil || len(stored) != SymlinkStoredLen(n) {
			t.Fatalf("EncryptSymlink(%d bytes): %d bytes (want %d), %v", n, len(stored), SymlinkStoredLen(n), err)
		}
		if got, err := s.DecryptSymlink(stored); err != nil || got != target {
			t.Errorf("DecryptSymlink of %d bytes: %v", n, err)
		}
	}
	if _, err := r.EncryptSymlink("l", strings.Repeat("t", MaxSymlinkTarget+1)); !errors.Is(err, ErrNameTooLong) {
		t.Errorf("overlong target: %v", err)
	}
	sealed, err := r.SealXattrValue("x", "user.abc", []byte("value"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.OpenXattrValue("user.abc", sealed); err != nil || string(got) != "value" {
		t.Errorf("OpenXattrValue: %q, %v", got, err)
	}
	if _, err := s.OpenXattrValue("user.abd", sealed); !errors.Is(err, ErrAuth) {
		t.Errorf("value moved to another name: %v", err)
	}
}

func TestReverseDeterministicNamesZeroIV(t *testing.T) {
	r := newTestReverse(t, Options{DeterministicNames: true})
	for _, p := range []string{"", "a", "a/b"} {
		if iv, err := r.DirIV(p); err != nil || iv != (DirIV{}) {
			t.Errorf("DirIV(%q) = %x, %v", p, iv, err)
		}
	}
}

func TestReverseRejectsBadInput(t *testing.T) {
	r := newTestReverse(t, Options{})
	if _, err := r.FileID("/abs"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("FileID(/abs): %v", err)
	}
	if _, err := r.DirIV("a/../b"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("DirIV(a/../b): %v", err)
	}
	if _, err := r.EncryptSymlink("a//b", "t"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("EncryptSymlink(a//b): %v", err)
	}
	id, _ := r.FileID("f")
	if _, err := r.SealBlock(nil, nil, id, 0); err == nil {
		t.Error("sealed an empty block")
	}
	if _, err := r.SealXattrValue("f", "user."+strings.Repeat("x", 300), nil); !errors.Is(err, ErrNameTooLong) {
		t.Errorf("overlong lower name: %v", err)
	}
	if _, err := NewReverse(make([]byte, 31), r.Suite()); err == nil {
		t.Error("NewReverse took a 31-byte key")
	}
}

func TestReverseWipe(t *testing.T) {
	r := newTestReverse(t, Options{})
	for i, k := range []*[KeyLen]byte{r.fileID, r.dirIV, r.blockNonce, r.symlinkNonce, r.xattrNonce, r.inode} {
		var want [KeyLen]byte
		master := fixedMaster()
		master[0] ^= 0x5a // newTestReverse's key
		if err := deriveSubkey(&want, master, reversePurposes[i]); err != nil || *k != want {
			t.Fatalf("keyring slot %d is not the %s subkey (%v)", i, reversePurposes[i], err)
		}
	}
	r.Wipe()
	r.Wipe() // harmless twice
	// The keyring is unmapped: every method must fail before touching it.
	id := FileID{}
	if _, err := r.FileID("a"); !errors.Is(err, ErrWiped) {
		t.Errorf("FileID after Wipe: %v", err)
	}
	if _, err := r.DirIV("a"); !errors.Is(err, ErrWiped) {
		t.Errorf("DirIV after Wipe: %v", err)
	}
	if _, err := r.SealBlock(nil, []byte("x"), id, 0); !errors.Is(err, ErrWiped) {
		t.Errorf("SealBlock after Wipe: %v", err)
	}
	if _, err := r.EncryptSymlink("a", "t"); !errors.Is(err, ErrWiped) {
		t.Errorf("EncryptSymlink after Wipe: %v", err)
	}
	if _, err := r.SealXattrValue("a", "user.x", nil); !errors.Is(err, ErrWiped) {
		t.Errorf("SealXattrValue after Wipe: %v", err)
	}
	if _, err := r.Inode(0, 8, "a"); !errors.Is(err, ErrWiped) {
		t.Errorf("Inode after Wipe: %v", err)
	}
}

func BenchmarkReverseSealBlock(b *testing.B) {
	r := newTestReverse(b, Options{})
	id, _ := r.FileID("f")
	plain := pattern(BlockSize)
	dst := make([]byte, 0, CipherBlockSize)
	b.SetBytes(BlockSize)
	for i := 0; b.Loop(); i++ {
		if _, err := r.SealBlock(dst, plain, id, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}
