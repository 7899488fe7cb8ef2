package e2e

import (
	"os"
	"testing"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// TestMain removes the cryptfs binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	cryptfstest.RemoveBinary()
	os.Exit(code)
}
