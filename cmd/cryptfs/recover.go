package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/treelock"
)

func newRecover(e env) *cobra.Command {
	var (
		u     unlockFlags
		force bool
		names bool
	)
	c := &cobra.Command{
		Use:   "recover [flags] CIPHERDIR",
		Short: "Write a new cryptfs.conf from the recovery key (the config was lost or damaged)",
		Long: `recover writes a new cryptfs.conf for CIPHERDIR from its recovery key (the
master key, printed once by init) and a new password, when the config is
lost, truncated or damaged. The recovery key is read from the terminal, or
as the first line of standard input when it is not one; the new password
as for init (a prompt, --passfile, --extpass, or the next line of standard
input).

The format's feature flags are read from the tree (a .cryptfs.diriv at
its top means per-directory name IVs, none means --deterministic-names)
unless --deterministic-names=true|false says. Before anything is written,
the key must decrypt the names of the tree and authenticate the content of
a file; then the config is written atomically. A config that is valid is
not replaced unless --force (to change the password of a tree whose config
is fine: cryptfs passwd --recovery-key). The tree must not be mounted.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			var override *bool
			if c.Flags().Changed("deterministic-names") {
				override = &names
			}
			return runRecover(e, &u, a[0], force, override)
		},
	}
	f := c.Flags()
	f.StringVar(&u.passfile, "passfile", "", "read the new password from the first line of `FILE`")
	f.StringVar(&u.extpass, "extpass", "", "run `CMD` (with /bin/sh) and use the first line it prints as the new password")
	f.StringVar(&u.config, "config", "", "write the config `FILE` instead of CIPHERDIR/cryptfs.conf")
	f.BoolVar(&u.insecureKDF, "insecure-kdf", false, "cheap KDF parameters (tests only)")
	f.MarkHidden("insecure-kdf")
	f.BoolVar(&force, "force", false, "replace a config that is valid")
	f.BoolVar(&names, "deterministic-names", false, "the tree has no per-directory IVs (default: read from the tree)")
	c.PreRunE = func(*cobra.Command, []string) error { return u.check() }
	return c
}

func runRecover(e env, u *unlockFlags, dir string, force bool, override *bool) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return withCode(exitNoConfig, "cipher directory %s does not exist", dir)
	}
	path := configPath(dir, u.config)
	if u.config != "" {
		if path, err = filepath.Abs(path); err != nil {
			return err
		}
	}
	_, lerr := config.Load(path, config.LoadOptions{AllowWeakKDF: true})
	exists := !errors.Is(lerr, fs.ErrNotExist)
	switch {
	case lerr == nil && !force:
		return withCode(exitConfigValid, "%s is a valid config: recover would replace it (to set a new password with the recovery key: cryptfs passwd --recovery-key %s; to replace it anyway: --force)", path, dir)
	case errors.Is(lerr, config.ErrUnsupported) && !force:
		return withCode(exitConfigValid, "%v: it may be valid for a newer cryptfs; recover would replace it with a version %d config (--force to do so)", lerr, crypt.FormatVersion)
	case lerr != nil && exists && !errors.Is(lerr, config.ErrCorrupt) && !errors.Is(lerr, config.ErrUnsupported):
		return lerr // cannot even read it (permissions...)
	}
	// Not while a daemon serves the tree (nor let one start meanwhile).
	lock, err := treelock.Acquire(dir, treelock.Options{})
	if err != nil {
		return err
	}
	defer lock.Close()

	keySec := &secrets{stdin: e.stdin, stderr: e.stderr}
	key, err := keySec.readRecoveryKey()
	if err != nil {
		return err
	}
	master, opts, report, err := recoverFromTree(dir, key, override)
	if err != nil {
		return err
	}
	defer wipe(master)
	pwSec := u.secrets(e)
	pwSec.lines = keySec.lines // the password is the next line of standard input
	pw, err := pwSec.readNew("New password: ")
	if err != nil {
		return err
	}
	defer wipe(pw)
	co := config.CreateOptions{DeterministicNames: opts.DeterministicNames}
	if u.insecureKDF {
		k := config.InsecureTestKDF()
		co.KDF, co.AllowWeakKDF = &k, true
	}
	if _, err := config.CreateWithKey(path, master, pw, co, exists); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Wrote a new %s: the recovery key %s.\nThe new password unlocks %s; the recovery key is unchanged. Keep a copy of %s outside the tree.\n",
		path, report, dir, filepath.Base(path))
	return nil
}

// recoverFromTree turns a recovery key into the tree's master key and
// format options, and checks them against the tree at dir before anyone
// writes with them: names must decrypt and a file's content must
// authenticate. The options come from override, or from the tree (a
// .cryptfs.diriv at its top means per-directory IVs). report says what
// was checked.
func recoverFromTree(dir, key string, override *bool) (master []byte, opts crypt.Options, report string, err error) {
	master, err = config.ParseRecoveryKey(key)
	if err != nil {
		return nil, opts, "", &codedError{code: exitWrongPassword, err: err}
	}
	hasIV := false
	if st, err := os.Lstat(filepath.Join(dir, crypt.DirIVFile)); err == nil && st.Mode().IsRegular() {
		hasIV = true
	}
	opts.DeterministicNames = !hasIV
	if override != nil {
		opts.DeterministicNames = *override
	}
	report, err = checkTree(dir, master, opts, hasIV)
	if err != nil {
		wipe(master)
		return nil, opts, "", err
	}
	return master, opts, report, nil
}

// Limits of the check: how many entries and files it looks at at most.
const (
	checkEntries = 10000
	checkFiles   = 5
)

// checkTree decrypts names of the tree at dir with master and opts
// (breadth first, from the top) and reads the first block of up to
// checkFiles non-empty files, until one authenticates.
func checkTree(dir string, master []byte, opts crypt.Options, hasIV bool) (string, error) {
	layout := "per-directory name IVs"
	if opts.DeterministicNames {
		layout = "deterministic names"
	}
	s, err := crypt.New(master, opts)
	if err != nil {
		return "", err
	}
	defer s.Wipe()
	tr, err := ciphertree.Open(dir, s)
	if err != nil {
		return "", err
	}
	defer tr.Close()
	var (
		queue          = []string{"."}
		seen, decoded  int
		files          []string
		authenticated  string
		lastFileFailed error
	)
	for len(queue) > 0 && seen < checkEntries && len(files) < checkFiles {
		lowerDir := queue[0]
		queue = queue[1:]
		ents, err := os.ReadDir(filepath.Join(dir, lowerDir))
		if err != nil {
			continue
		}
		for _, ent := range ents {
			if crypt.IsReserved(ent.Name(), lowerDir == ".") {
				continue
			}
			lower := path.Join(lowerDir, ent.Name())
			seen++
			plain, err := tr.PlainPath(lower)
			if err != nil {
				continue
			}
			decoded++
			switch {
			case ent.IsDir():
				queue = append(queue, lower)
			case ent.Type().IsRegular() && len(files) < checkFiles:
				if info, err := ent.Info(); err == nil && info.Size() > 0 {
					files = append(files, plain)
				}
			}
		}
	}
	if seen > 0 && decoded == 0 {
		hint := ""
		if !hasIV && !opts.DeterministicNames {
			hint = "; the top directory's .cryptfs.diriv is missing, without which no top-level name decrypts"
		} else if !hasIV {
			hint = " (or the tree has per-directory IVs and its top directory's .cryptfs.diriv is lost)"
		}
		return "", withCode(exitWrongPassword, "the recovery key decrypts none of the %d names checked in %s with %s: it is not this tree's key%s", seen, dir, layout, hint)
	}
	for _, f := range files {
		if lastFileFailed = readFirstBlock(tr, f); lastFileFailed == nil {
			authenticated = f
			break
		}
	}
	if len(files) > 0 && authenticated == "" {
		return "", withCode(exitWrongPassword, "names decrypt, but the content of none of %d files authenticates with this key (%v): refusing to write a config", len(files), lastFileFailed)
	}
	switch {
	case seen == 0:
		return fmt.Sprintf("cannot be checked against an empty tree (%s)", layout), nil
	case authenticated == "":
		return fmt.Sprintf("decrypts %d of %d names checked (%s); no file with content to authenticate", decoded, seen, layout), nil
	}
	return fmt.Sprintf("decrypts %d of %d names checked and authenticates /%s (%s)", decoded, seen, authenticated, layout), nil
}

// readFirstBlock reads (and so authenticates) the first block of a file.
func readFirstBlock(tr *ciphertree.Tree, plain string) error {
	f, err := tr.OpenFile(plain)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, min(f.Size(), crypt.BlockSize))
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("/%s: %w", plain, err)
	}
	return nil
}
