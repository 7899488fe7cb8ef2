package crypt

import (
	"crypto/rand"
	"testing"
)

// NewTestSuite returns a Suite under a fresh random master key for tests in
// other packages, and wipes it when the test ends.
func NewTestSuite(tb testing.TB, opts Options) *Suite {
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
