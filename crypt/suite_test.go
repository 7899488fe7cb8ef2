package crypt

import (
	"bytes"
	"errors"
	"testing"
)

func TestNewRejectsBadKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := New(make([]byte, n), Options{}); err == nil {
			t.Errorf("New with a %d-byte key succeeded", n)
		}
	}
}

func TestSubkeysDistinct(t *testing.T) {
	seen := map[[KeyLen]byte]string{}
	for _, p := range purposes {
		var k [KeyLen]byte
		if err := deriveSubkey(&k, fixedMaster(), p); err != nil {
			t.Fatal(err)
		}
		if other, dup := seen[k]; dup {
			t.Fatalf("subkeys %q and %q are equal", p, other)
		}
		seen[k] = p
	}
	if len(seen) != 8 {
		t.Fatalf("%d purposes, want 8", len(seen))
	}
}

func TestNewDoesNotRetainMaster(t *testing.T) {
	master := fixedMaster()
	s, err := New(master, Options{})
	if err != nil {
		t.Fatal(err)
	}
	Wipe(master)
	ref := fixedSuite(t, Options{})
	enc, err := ref.EncryptName(DirIV{}, "name")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.DecryptName(DirIV{}, enc); err != nil || got != "name" {
		t.Fatalf("after wiping the caller's master: DecryptName = %q, %v", got, err)
	}
}

func TestWipeBytes(t *testing.T) {
	b := []byte("secret key material")
	Wipe(b)
	if !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatalf("Wipe left %q", b)
	}
	Wipe(nil) // must not panic
}

func TestSuiteWipe(t *testing.T) {
	s := fixedSuite(t, Options{})
	for i, k := range s.ring.keys {
		var want [KeyLen]byte
		if err := deriveSubkey(&want, fixedMaster(), purposes[i]); err != nil || k != want {
			t.Fatalf("keyring slot %d is not the %s subkey (%v)", i, purposes[i], err)
		}
	}
	if !s.ring.mem.Locked() {
		t.Logf("the keyring is not mlock'ed here (RLIMIT_MEMLOCK?)")
	}
	mem := s.ring.mem.Bytes()
	before := len(mem)
	s.Wipe()
	s.Wipe() // harmless twice
	if before != nKeys*KeyLen {
		t.Errorf("keyring of %d bytes, want %d", before, nKeys*KeyLen)
	}
	// Every operation now fails with ErrWiped (and touches no key: the
	// keyring is unmapped, a read would crash).
	var id FileID
	checks := map[string]error{}
	_, checks["SealBlock"] = s.SealBlock(nil, []byte("x"), id, 0)
	_, checks["OpenBlock"] = s.OpenBlock(nil, make([]byte, 50), id, 0)
	_, checks["EncryptName"] = s.EncryptName(DirIV{}, "x")
	_, checks["DecryptName"] = s.DecryptName(DirIV{}, "x")
	_, checks["EncryptXattrName"] = s.EncryptXattrName("user.x")
	_, checks["DecryptXattrName"] = s.DecryptXattrName("user.x")
	_, checks["SealXattrValue"] = s.SealXattrValue("user.x", nil)
	_, checks["OpenXattrValue"] = s.OpenXattrValue("user.x", nil)
	_, checks["EncryptSymlink"] = s.EncryptSymlink("x")
	_, checks["DecryptSymlink"] = s.DecryptSymlink("x")
	for op, err := range checks {
		if !errors.Is(err, ErrWiped) {
			t.Errorf("%s after Wipe: %v, want ErrWiped", op, err)
		}
	}
}

func TestKeyCheck(t *testing.T) {
	a, err := KeyCheck(fixedMaster(), []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != KeyCheckLen {
		t.Fatalf("len = %d", len(a))
	}
	other := fixedMaster()
	other[0] ^= 1
	for name, f := range map[string]func() ([]byte, error){
		"other data": func() ([]byte, error) { return KeyCheck(fixedMaster(), []byte("datb")) },
		"other key":  func() ([]byte, error) { return KeyCheck(other, []byte("data")) },
	} {
		b, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a, b) {
			t.Errorf("%s: same key check", name)
		}
	}
	if _, err := KeyCheck(make([]byte, 31), nil); err == nil {
		t.Error("KeyCheck accepted a 31-byte key")
	}
}

func TestDeterministicNamesOption(t *testing.T) {
	if fixedSuite(t, Options{}).DeterministicNames() {
		t.Error("default suite says deterministic")
	}
	if !fixedSuite(t, Options{DeterministicNames: true}).DeterministicNames() {
		t.Error("deterministic suite says not deterministic")
	}
}

func TestNewTestSuite(t *testing.T) {
	a, b := newTestSuite(t, Options{}), newTestSuite(t, Options{})
	ea, _ := a.EncryptName(DirIV{}, "x")
	eb, _ := b.EncryptName(DirIV{}, "x")
	if ea == eb {
		t.Fatal("two test suites share a key")
	}
}
