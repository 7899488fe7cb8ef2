package config

import (
	"fmt"

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
// and the ceiling above which they are always refused (a hostile config
// must not make unlock allocate or run without bound).
const (
	MinMemoryKiB     = 64 << 10       // 64 MiB
	MinTimeMemoryKiB = 3 * (64 << 10) // time × memory
	MaxMemoryKiB     = 4 << 20        // 4 GiB
	MaxTime          = 100
)

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
	if !allowWeak && (k.MemoryKiB < MinMemoryKiB || uint64(k.Time)*uint64(k.MemoryKiB) < MinTimeMemoryKiB) {
		return fmt.Errorf("%w: argon2id time=%d memory=%d KiB; the minimum is memory >= %d KiB and time*memory >= %d KiB: the config may have been tampered with to weaken the password protection",
			ErrWeakKDF, k.Time, k.MemoryKiB, MinMemoryKiB, MinTimeMemoryKiB)
	}
	return nil
}

// key derives the 32-byte key-encryption key from password.
func (k KDF) key(password []byte) []byte {
	return argon2.IDKey(password, k.Salt, k.Time, k.MemoryKiB, k.Threads, crypt.KeyLen)
}
