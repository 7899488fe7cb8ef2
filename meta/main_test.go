package meta_test

import (
	"os"
	"testing"

	"github.com/cryptfs/cryptfs/fstest"
)

// TestMain removes the cryptfs binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	fstest.RemoveBinary()
	os.Exit(code)
}
