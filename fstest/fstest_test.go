package fstest

import (
	"os"
	"testing"
)

// TestPlainDir runs the suite against FSTEST_DIR if set (any mount), else against a fresh
// directory on the local filesystem, where every check must pass.
func TestPlainDir(t *testing.T) {
	dir := os.Getenv("FSTEST_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	Run(t, dir, Options{})
}
