package config

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/crypt"
)

// TestKDFCeiling: a config whose KDF asks for more than the ceiling is
// refused by Parse (so before any KDF runs) and by Create; the ceiling
// itself is accepted.
func TestKDFCeiling(t *testing.T) {
	for _, c := range []struct {
		name    string
		kdf     KDF
		refused bool
	}{
		{"format maximum", KDF{Algorithm: AlgorithmArgon2id, Time: MaxTime, MemoryKiB: MaxMemoryKiB, Threads: 4}, true},
		{"memory over 1 GiB", KDF{Algorithm: AlgorithmArgon2id, Time: 1, MemoryKiB: CeilingMemoryKiB + 1, Threads: 4}, true},
		{"work over 8 GiB-passes", KDF{Algorithm: AlgorithmArgon2id, Time: 65, MemoryKiB: 128 << 10, Threads: 4}, true},
		{"at the memory ceiling", KDF{Algorithm: AlgorithmArgon2id, Time: 8, MemoryKiB: CeilingMemoryKiB, Threads: 4}, false},
		{"default", DefaultKDF(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := c.kdf
			k.Salt = bytes.Repeat([]byte{1}, SaltLen)
			cfg := &Config{Version: crypt.FormatVersion, Features: []string{}, KDF: k,
				wrapped: make([]byte, wrappedLen), keyCheck: make([]byte, crypt.KeyCheckLen)}
			start := time.Now()
			_, err := Parse(cfg.marshal(), LoadOptions{})
			if took := time.Since(start); took > time.Second {
				t.Errorf("Parse took %v: it must not run the KDF", took)
			}
			if c.refused != errors.Is(err, ErrKDFCeiling) || (c.refused && !errors.Is(err, ErrCorrupt)) {
				t.Errorf("Parse: %v; refused as above the ceiling: %v", err, c.refused)
			}
			if !c.refused && err != nil {
				t.Errorf("Parse: %v", err)
			}
			if c.refused && errors.Is(err, ErrKDFCeiling) { // else Create would run that KDF
				k := c.kdf
				if _, _, err := Create(t.TempDir()+"/"+FileName, []byte("pw"), CreateOptions{KDF: &k}); !errors.Is(err, ErrKDFCeiling) {
					t.Errorf("Create: %v, want ErrKDFCeiling", err)
				}
			}
		})
	}
}
