package config

import (
	"fmt"
	"runtime/debug"

	"golang.org/x/crypto/argon2"

	"github.com/cryptfs/cryptfs/crypt"
)

// KDF holds password key-derivation parameters. Only "argon2id" exists.
type KDF struct {
	Algorithm string
	Time      uint32 // passes
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
	Salt      []byte // SaltLen random bytes
}

// AlgorithmArgon2id is the only KDF algorithm of format version 1.
const AlgorithmArgon2id = "argon2id"

// The floor below which parameters are refused unless explicitly allowed,
// the bounds of what the format can express, and the cost ceiling above
// which parameters are always refused before the KDF runs: a config that
// someone who can write the tree changed (or a mistake) must not make
// every unlock, including one with a wrong password, allocate gigabytes
// and run for minutes.
const (
	MinMemoryKiB     = 64 << 10       // 64 MiB
	MinTimeMemoryKiB = 3 * (64 << 10) // time × memory
	MaxMemoryKiB     = 4 << 20        // 4 GiB: the format's bound
	MaxTime          = 100            // the format's bound

	// CeilingMemoryKiB is the most memory an unlock may take: 1 GiB, 8
	// times the default, within reach of any machine cryptfs runs on.
	CeilingMemoryKiB = 1 << 20
	// CeilingTimeMemoryKiB bounds time × memory, the work of an unlock:
	// 8 GiB-passes, about 21 times the default (3 passes over 128 MiB),
	// so at most some tens of seconds where the default takes one.
	CeilingTimeMemoryKiB = 8 << 20
)

// ErrKDFCeiling means the KDF parameters ask for more memory or work than
// the ceiling. It wraps ErrCorrupt: such a config is treated as damaged.
var ErrKDFCeiling = fmt.Errorf("%w: KDF parameters above the ceiling", ErrCorrupt)

// DefaultKDF returns the default parameters, without a salt: Argon2id,
// time 3, 128 MiB, 4 threads.
func DefaultKDF() KDF {
	return KDF{Algorithm: AlgorithmArgon2id, Time: 3, MemoryKiB: 128 << 10, Threads: 4}
}

// InsecureTestKDF returns cheap parameters (time 1, 1 MiB, 1 thread) far
// below the floor. Only for tests, with AllowWeakKDF.
func InsecureTestKDF() KDF {
	return KDF{Algorithm: AlgorithmArgon2id, Time: 1, MemoryKiB: 1024, Threads: 1}
}

// validate checks the algorithm, sanity bounds and (unless allowWeak) the
// floor. The salt is checked where it is decoded.
func (k KDF) validate(allowWeak bool) error {
	if k.Algorithm != AlgorithmArgon2id {
		return fmt.Errorf("%w: KDF algorithm %q, this cryptfs knows only %q", ErrUnsupported, k.Algorithm, AlgorithmArgon2id)
	}
	if k.Time < 1 || k.Time > MaxTime || k.Threads < 1 || k.MemoryKiB < 8*uint32(k.Threads) || k.MemoryKiB > MaxMemoryKiB {
		return fmt.Errorf("%w: argon2id parameters time=%d memory=%d KiB threads=%d are out of range (time 1..%d, threads >= 1, memory 8*threads..%d KiB)",
			ErrCorrupt, k.Time, k.MemoryKiB, k.Threads, MaxTime, MaxMemoryKiB)
	}
	if k.MemoryKiB > CeilingMemoryKiB || uint64(k.Time)*uint64(k.MemoryKiB) > CeilingTimeMemoryKiB {
		return fmt.Errorf("%w: argon2id time=%d memory=%d KiB would take %d MiB and %d times the work of the default; the ceiling is %d MiB and %d times (so that no config, tampered with or not, makes unlocking take minutes)",
			ErrKDFCeiling, k.Time, k.MemoryKiB, k.MemoryKiB>>10, uint64(k.Time)*uint64(k.MemoryKiB)/uint64(3*(128<<10)), CeilingMemoryKiB>>10, CeilingTimeMemoryKiB/(3*(128<<10)))
	}
	if !allowWeak && (k.MemoryKiB < MinMemoryKiB || uint64(k.Time)*uint64(k.MemoryKiB) < MinTimeMemoryKiB) {
		return fmt.Errorf("%w: argon2id time=%d memory=%d KiB; the minimum is memory >= %d KiB and time*memory >= %d KiB: the config may have been tampered with to weaken the password protection",
			ErrWeakKDF, k.Time, k.MemoryKiB, MinMemoryKiB, MinTimeMemoryKiB)
	}
	return nil
}

// key derives the 32-byte key-encryption key from password. Argon2id's
// working memory (MemoryKiB, from which the key is computed) is garbage
// afterwards, out of reach: it is handed back to the system at once
// (debug.FreeOSMemory collects it and returns its pages, which the kernel
// zeroes) instead of lingering in the process until reused. The cost, a
// garbage collection, is small next to the KDF's.
func (k KDF) key(password []byte) []byte {
	kek := argon2.IDKey(password, k.Salt, k.Time, k.MemoryKiB, k.Threads, crypt.KeyLen)
	if k.MemoryKiB >= MinMemoryKiB { // every real config; not the tests' 1 MiB
		debug.FreeOSMemory()
	}
	return kek
}
