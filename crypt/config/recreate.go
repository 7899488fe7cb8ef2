package config

import (
	"errors"
	"fmt"

	"github.com/cryptfs/cryptfs/crypt"
)

// CreateWithKey writes a new config at path that wraps an existing master
// key (a tree's recovery key, see ParseRecoveryKey) under password, with
// the features of opts and a fresh salt and nonce: what `cryptfs recover`
// does when a tree's config is lost or damaged. The file is written
// atomically; replace allows it to take the place of an existing file,
// otherwise an existing file is left alone and an error returned. The
// caller checks that master really is the tree's key (names decrypt)
// before calling: a config carries no other evidence of the tree.
func CreateWithKey(path string, master, password []byte, opts CreateOptions, replace bool) (*Config, error) {
	if len(password) == 0 {
		return nil, errors.New("create config: empty password")
	}
	if len(master) != crypt.KeyLen {
		return nil, fmt.Errorf("create config: master key is %d bytes, want %d", len(master), crypt.KeyLen)
	}
	kdf := DefaultKDF()
	if opts.KDF != nil {
		kdf = *opts.KDF
		if len(kdf.Salt) != 0 {
			return nil, errors.New("create config: KDF.Salt must be empty, CreateWithKey generates it")
		}
	}
	if err := kdf.validate(opts.AllowWeakKDF); err != nil {
		return nil, fmt.Errorf("create config: %w", err)
	}
	c := &Config{Version: crypt.FormatVersion, Features: []string{}, KDF: kdf}
	if opts.DeterministicNames {
		c.Features = append(c.Features, FeatureDeterministicNames)
	}
	if err := c.wrap(master, password); err != nil {
		return nil, fmt.Errorf("create config: %w", err)
	}
	if err := writeAtomic(path, c.marshal(), replace); err != nil {
		return nil, fmt.Errorf("create config: %w", err)
	}
	return c, nil
}
