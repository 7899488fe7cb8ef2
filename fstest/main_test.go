package fstest

import (
	"os"
	"testing"
)

// TestMain removes the cryptfs binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBinary()
	os.Exit(code)
}
