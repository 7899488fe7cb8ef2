package crypt

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"reflect"
	"testing"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// TestHKDFMatchesRFC5869: the stack-only HKDF-SHA256 is RFC 5869's: test
// case 3 (zero-length salt and info; the first 32 bytes of its OKM) and
// x/crypto/hkdf for every purpose and random master keys.
func TestHKDFMatchesRFC5869(t *testing.T) {
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	prk := hmacSHA256(make([]byte, 32), ikm)
	if got := hex.EncodeToString(prk[:]); got != "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04" {
		t.Errorf("RFC 5869 test case 3 PRK %s", got)
	}
	var okm [KeyLen]byte
	hkdfExpand32(&okm, &prk, "")
	if got := hex.EncodeToString(okm[:]); got != "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d" {
		t.Errorf("RFC 5869 test case 3 OKM %s", got)
	}
	for range 20 {
		master := make([]byte, KeyLen)
		rand.Read(master)
		for _, p := range purposes {
			var got [KeyLen]byte
			if err := deriveSubkey(&got, master, p); err != nil {
				t.Fatal(err)
			}
			want := make([]byte, KeyLen)
			io.ReadFull(hkdf.New(sha256.New, master, nil, []byte(subkeyInfoPrefix+p)), want)
			if !bytes.Equal(got[:], want) {
				t.Fatalf("%s: %x, x/crypto/hkdf %x", p, got, want)
			}
		}
	}
}

// TestXChachaMatchesXCrypto: both XChaCha20-Poly1305s over the keyring
// (x/crypto's pointed at it, and xchacha) seal exactly what
// chacha20poly1305.NewX does and open each other's output; a changed byte
// fails. x/crypto's layout is the one newXChaCha was checked against (else
// the Suite allocates on every block: TestBlockZeroAllocs).
func TestXChachaMatchesXCrypto(t *testing.T) {
	if !xcryptoLayoutOK() {
		t.Fatal("x/crypto's XChaCha20-Poly1305 is no longer a struct holding only its key: newXChaCha falls back to xchacha")
	}
	var key [KeyLen]byte
	rand.Read(key[:])
	ref, _ := chacha20poly1305.NewX(key[:])
	gen := xchacha{&key}
	fast := newXChaCha(&key)
	for _, size := range []int{0, 1, 100, BlockSize} {
		nonce := make([]byte, 24)
		rand.Read(nonce)
		msg := make([]byte, size)
		rand.Read(msg)
		ad := []byte("additional data")
		want := ref.Seal(nil, nonce, msg, ad)
		for name, a := range map[string]interface {
			Seal(dst, nonce, plaintext, ad []byte) []byte
			Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
		}{"xchacha": gen, "newXChaCha": fast} {
			if got := a.Seal(nil, nonce, msg, ad); !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes seal differently", name, size)
			}
			if got, err := a.Open(nil, nonce, want, ad); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%s: open: %v", name, err)
			}
			bad := bytes.Clone(want)
			bad[len(bad)-1] ^= 1
			if _, err := a.Open(nil, nonce, bad, ad); err == nil {
				t.Fatalf("%s: a changed tag opened", name)
			}
		}
	}
	// The config's AEAD over the caller's key slice is the same.
	a, err := NewXChaCha20Poly1305(key[:])
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 24)
	if !bytes.Equal(a.Seal(nil, nonce, []byte("x"), nil), ref.Seal(nil, nonce, []byte("x"), nil)) {
		t.Fatal("NewXChaCha20Poly1305 differs from x/crypto")
	}
}

// TestWipeState: a keyed BLAKE2b state holds its key until wipeState.
func TestWipeState(t *testing.T) {
	key := bytes.Repeat([]byte{0xa7}, KeyLen)
	h, _ := blake2b.New(16, key)
	h.Write([]byte("some data to hash"))
	h.Sum(nil)
	if !wipeState(h) {
		t.Fatal("wipeState could not reach the state")
	}
	if !reflect.ValueOf(h).Elem().IsZero() {
		t.Error("the state is not all zero after wipeState")
	}
	if wipeState(42) || wipeState((*int)(nil)) {
		t.Error("wipeState accepted a non-struct")
	}
}
