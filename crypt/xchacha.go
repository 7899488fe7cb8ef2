package crypt

import (
	"crypto/cipher"
	"errors"
	"reflect"
	"sync"
	"unsafe"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
)

// xchacha is XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha, section 2.3:
// HChaCha20 of the key and the nonce's first 16 bytes keys ChaCha20-Poly1305
// of RFC 8439 with the nonce 0^4 || nonce[16:24]) over a key it does not
// copy: chacha20poly1305.NewX would keep a copy in a heap struct of its own
// that only reflection could wipe. The key stays where its owner keeps it
// (a Suite's keyring) and must outlive the xchacha. The construction is
// exactly x/crypto's (TestXChachaMatchesXCrypto).
type xchacha struct{ key *[KeyLen]byte }

var _ cipher.AEAD = xchacha{}

func (xchacha) NonceSize() int { return chacha20poly1305.NonceSizeX }
func (xchacha) Overhead() int  { return chacha20poly1305.Overhead }

// inner returns the ChaCha20-Poly1305 of one nonce and its 12-byte nonce.
func (x xchacha) inner(nonce []byte) (cipher.AEAD, [chacha20poly1305.NonceSize]byte) {
	if len(nonce) != chacha20poly1305.NonceSizeX {
		panic("crypt: bad XChaCha20-Poly1305 nonce length")
	}
	var n [chacha20poly1305.NonceSize]byte
	copy(n[4:], nonce[16:24])
	sub, err := chacha20.HChaCha20(x.key[:], nonce[:16])
	if err != nil {
		panic("crypt: hchacha20: " + err.Error()) // unreachable: fixed sizes
	}
	a, err := chacha20poly1305.New(sub) // copies this nonce's key
	Wipe(sub)
	if err != nil {
		panic("crypt: chacha20poly1305: " + err.Error()) // unreachable
	}
	return a, n
}

func (x xchacha) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	a, n := x.inner(nonce)
	return a.Seal(dst, n[:], plaintext, additionalData)
}

func (x xchacha) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	a, n := x.inner(nonce)
	return a.Open(dst, n[:], ciphertext, additionalData)
}

// NewXChaCha20Poly1305 returns XChaCha20-Poly1305 under key (KeyLen bytes)
// without copying the key: the caller keeps key alive while it uses the
// AEAD and wipes it afterwards (the config's key-encryption key).
func NewXChaCha20Poly1305(key []byte) (cipher.AEAD, error) {
	if len(key) != KeyLen {
		return nil, errors.New("crypt: XChaCha20-Poly1305 key must be 32 bytes")
	}
	return xchacha{key: (*[KeyLen]byte)(key)}, nil
}

// newXChaCha returns XChaCha20-Poly1305 reading its key at key (in the
// keyring). Where x/crypto's own implementation has the layout this code
// was checked against (its struct is exactly the 32-byte key), it is that
// implementation, pointed at the keyring instead of at a heap copy of the
// key: it seals and opens a block without allocating (x/crypto keeps its
// per-nonce state on the stack). Otherwise it is xchacha, which computes
// the same with two small allocations per operation.
func newXChaCha(key *[KeyLen]byte) cipher.AEAD {
	if !xcryptoLayoutOK() {
		return xchacha{key}
	}
	a, err := chacha20poly1305.NewX(make([]byte, KeyLen)) // a zero key, replaced below
	if err != nil {
		return xchacha{key}
	}
	// An interface value is two words, its type and a pointer to the
	// value; the value is checked to be a struct holding nothing but the
	// key, so the keyring's 32 bytes are a valid one.
	(*ifaceWords)(unsafe.Pointer(&a)).data = unsafe.Pointer(key)
	return a
}

// ifaceWords is the layout of a non-empty interface value.
type ifaceWords struct {
	tab  unsafe.Pointer
	data unsafe.Pointer
}

// xcryptoLayoutOK reports whether chacha20poly1305.NewX returns a pointer to
// a struct that is exactly one field "key" of 32 bytes.
var xcryptoLayoutOK = sync.OnceValue(func() bool {
	a, err := chacha20poly1305.NewX(make([]byte, KeyLen))
	if err != nil {
		return false
	}
	t := reflect.TypeOf(a)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return false
	}
	e := t.Elem()
	return e.Size() == KeyLen && e.NumField() == 1 && e.Field(0).Name == "key" &&
		e.Field(0).Type == reflect.TypeFor[[KeyLen]byte]()
})
