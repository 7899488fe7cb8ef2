package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/reversefs"
)

// Reverse mode (docs/format.md, section 13): init --reverse and mount
// --reverse. A reverse config has the format of cryptfs.conf; only its
// default place differs: PLAINDIR/.cryptfs.reverse.conf.

// reverseConfigPath returns where the reverse config of plainDir lives.
func reverseConfigPath(plainDir, override string) string {
	if override != "" {
		return override
	}
	return filepath.Join(plainDir, reversefs.ConfigName)
}

// reverseConfig is the config a reverse mount shows as its view's
// cryptfs.conf ("" without --reverse); runMount set m.config to it.
func (m *mountFlags) reverseConfig() string {
	if !m.reverse {
		return ""
	}
	return m.config
}

// runInitReverse is `cryptfs init --reverse PLAINDIR`: it writes a new
// reverse config for an existing plaintext directory, whatever it holds.
func runInitReverse(e env, u *unlockFlags, deterministic bool, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return withCode(exitUsage, "%s is not a directory: init --reverse needs the plaintext directory that the view will show encrypted", dir)
	}
	conf := reverseConfigPath(dir, u.config)
	if _, err := os.Lstat(conf); !errors.Is(err, fs.ErrNotExist) {
		return withCode(exitNotEmpty, "%s already exists: %s has a reverse config; mount its view with 'cryptfs mount --reverse %s VIEW'", conf, dir, dir)
	}
	pw, err := u.secrets(e).readNew("New password: ")
	if err != nil {
		return err
	}
	defer wipe(pw)
	opts := config.CreateOptions{DeterministicNames: deterministic}
	if u.insecureKDF {
		k := config.InsecureTestKDF()
		opts.KDF, opts.AllowWeakKDF = &k, true
	}
	_, master, err := config.Create(conf, pw, opts)
	if err != nil {
		return err
	}
	defer wipe(master)
	fmt.Fprintf(e.stdout, `Created the reverse config %s.

Your recovery key (shown once; store it somewhere safe and offline):

    %s

Show %s encrypted and read-only (for backups) with:
    cryptfs mount --reverse %s VIEW
A copy of VIEW is an ordinary cryptfs directory: it mounts with
'cryptfs mount COPY MOUNTPOINT' and the same password or recovery key.
`, conf, config.RecoveryKey(master), dir, dir)
	return nil
}
