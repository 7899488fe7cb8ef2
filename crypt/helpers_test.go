package crypt

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// fixedMaster is the master key of the test vectors: bytes 0x00..0x1f.
func fixedMaster() []byte {
	m := make([]byte, KeyLen)
	for i := range m {
		m[i] = byte(i)
	}
	return m
}

// fixedSuite returns a Suite under fixedMaster.
func fixedSuite(tb testing.TB, opts Options) *Suite {
	tb.Helper()
	s, err := New(fixedMaster(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// pattern returns n bytes with byte i = i mod 251.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// fillBytes returns n bytes with value v.
func fillBytes(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

// b64Alphabet is the base64url alphabet.
const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// newTestSuite returns a Suite under a fresh random master key, wiped
// when the test ends.
func newTestSuite(tb testing.TB, opts Options) *Suite {
	tb.Helper()
	master := make([]byte, KeyLen)
	rand.Read(master)
	defer Wipe(master)
	s, err := New(master, opts)
	if err != nil {
		tb.Fatalf("crypt.New: %v", err)
	}
	tb.Cleanup(s.Wipe)
	return s
}
