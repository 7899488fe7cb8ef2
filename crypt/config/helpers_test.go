package config

import (
	"path/filepath"
	"testing"
)

// createTestConfig creates a config in dir with InsecureTestKDF (fast, far
// below the floor). It returns the config path,
// the config and the master key.
func createTestConfig(tb testing.TB, dir string, password []byte, opts CreateOptions) (string, *Config, []byte) {
	tb.Helper()
	kdf := InsecureTestKDF()
	opts.KDF = &kdf
	opts.AllowWeakKDF = true
	path := filepath.Join(dir, FileName)
	c, master, err := Create(path, password, opts)
	if err != nil {
		tb.Fatalf("config.Create: %v", err)
	}
	return path, c, master
}
