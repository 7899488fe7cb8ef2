package crypt

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"runtime"

	"github.com/cryptfs/cryptfs/internal/harden"
)

// Where key material lives (SECURITY.md, "Key handling", lists the same):
//
//   - The subkeys a Suite uses are in a keyring: one page of its own outside
//     the Go heap (package harden: mlock'ed where allowed, MADV_DONTDUMP),
//     wiped and unmapped by Suite.Wipe. Nothing else keeps a copy: the
//     AEADs read their key from the keyring (xchacha.go) instead of copying
//     it into a struct of x/crypto's, and a BLAKE2b state keyed with a
//     subkey (name tags, the key check) is zeroed right after use.
//   - Subkeys are derived with HKDF-SHA256 computed here over stack buffers
//     (hkdfSHA256), so that the master key and the HKDF pseudorandom key
//     leave no heap copies (crypto/hmac and x/crypto/hkdf keep both in
//     heap state nobody can wipe); the stack they used is overwritten
//     before New returns (scrubStack).
//   - Key derivation, the name ciphers (names.go: seal, open; a listing's
//     names in batches, DecryptNames) and reverse mode's keyed BLAKE2b
//     (reverse.go, prf) run with signals blocked (harden.NoSignals): a
//     signal frame saves the thread's registers, where the keys pass, on
//     its signal stack.
//   - What remains outside our control: per-block keys (HChaCha20 of a
//     subkey and a nonce, one block's worth) in x/crypto's per-operation
//     structs, freed without wiping; subkey words the compiler may spill to
//     a goroutine's stack during an operation, or that a signal frame
//     saves while the AEAD of a content block, attribute value or symlink
//     target runs (those run with signals allowed: two system calls per
//     block would cost more than the block's cipher); and plaintext in
//     request buffers.

// nKeys is the number of subkeys a Suite holds: every purpose but the key
// check, which only KeyCheck uses.
const nKeys = 7

// keyring holds a Suite's subkeys in locked memory.
type keyring struct {
	mem  *harden.Locked
	keys *[nKeys][KeyLen]byte
}

func newKeyring() (*keyring, error) {
	mem, err := harden.NewLocked(nKeys * KeyLen)
	if err != nil {
		return nil, err
	}
	return &keyring{mem: mem, keys: (*[nKeys][KeyLen]byte)(mem.Pointer())}, nil
}

func (r *keyring) close() { r.mem.Close() }

// hmacSHA256 returns HMAC-SHA256(key, msg) (RFC 2104) for a key of at most
// 64 bytes and a message of at most 64 bytes, computed with one-shot
// SHA-256 over stack buffers that are cleared before it returns.
func hmacSHA256(key, msg []byte) (out [sha256.Size]byte) {
	var buf [2 * sha256.BlockSize]byte
	if len(key) > sha256.BlockSize || len(msg) > sha256.BlockSize {
		panic("crypt: hmacSHA256 input too long") // unreachable: fixed sizes
	}
	copy(buf[:], key)
	for i := 0; i < sha256.BlockSize; i++ {
		buf[i] ^= 0x36
	}
	n := sha256.BlockSize + copy(buf[sha256.BlockSize:], msg)
	inner := sha256.Sum256(buf[:n])
	clear(buf[:])
	copy(buf[:], key)
	for i := 0; i < sha256.BlockSize; i++ {
		buf[i] ^= 0x5c
	}
	copy(buf[sha256.BlockSize:], inner[:])
	out = sha256.Sum256(buf[:sha256.BlockSize+sha256.Size])
	clear(buf[:])
	clear(inner[:])
	return out
}

// hkdfPRK is HKDF-Extract(salt = none, i.e. 32 zero bytes, IKM = master)
// (RFC 5869 section 2.2).
func hkdfPRK(master []byte) [sha256.Size]byte {
	var salt [sha256.Size]byte
	return hmacSHA256(salt[:], master)
}

// hkdfExpand32 writes the first 32 bytes of HKDF-Expand(prk, info) to out:
// T(1) = HMAC(prk, info || 0x01) (RFC 5869 section 2.3, L = HashLen).
func hkdfExpand32(out *[KeyLen]byte, prk *[sha256.Size]byte, info string) {
	var msg [sha256.BlockSize]byte
	n := copy(msg[:], info)
	msg[n] = 1
	*out = hmacSHA256(prk[:], msg[:n+1])
	clear(msg[:])
}

// deriveSubkey writes the subkey for purpose into out.
func deriveSubkey(out *[KeyLen]byte, master []byte, purpose string) error {
	if len(master) != KeyLen {
		return fmt.Errorf("derive %s subkey: master key is %d bytes, want %d", purpose, len(master), KeyLen)
	}
	prk := hkdfPRK(master)
	hkdfExpand32(out, &prk, subkeyInfoPrefix+purpose)
	clear(prk[:])
	return nil
}

// scrubDepth is how much of the goroutine stack below the caller
// scrubStack overwrites: far more than key derivation uses.
const scrubDepth = 16 << 10

// scrubStack overwrites scrubDepth bytes of the stack below its caller's
// frame with zeros, where the frames of the calls the caller made before
// (key derivation) left copies of keys. Called before the derivation too,
// it grows the goroutine stack first, so that the stack is not moved (and
// its old copy freed unwiped) in the middle of the derivation.
//
//go:noinline
func scrubStack() {
	var b [scrubDepth]byte
	clear(b[:])
	runtime.KeepAlive(&b)
}

// wipeState zeroes the state of a hash or cipher object of another package
// (a pointer to a struct, such as *blake2b.digest holding its key), which
// has no method to do so. It reports whether it could.
func wipeState(x any) bool {
	v := reflect.ValueOf(x)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	v.Elem().SetZero()
	return true
}
