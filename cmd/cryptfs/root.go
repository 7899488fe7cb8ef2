package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/crypt/config"
)

// env is what a command needs from its process: standard streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// Main runs the command line and returns the exit code.
func Main() int {
	return run(os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
}

func run(args []string, e env) int {
	root := newRoot(e)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil && strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own error for an unknown command: a usage error like an
		// unknown flag.
		err = &codedError{code: exitUsage, err: fmt.Errorf("%w (run 'cryptfs --help' for the commands)", err)}
	}
	if err != nil && !errors.Is(err, errReported) {
		fmt.Fprintf(e.stderr, "cryptfs: %v\n", err)
	}
	return exitCode(err)
}

func newRoot(e env) *cobra.Command {
	root := &cobra.Command{
		Use:           "cryptfs",
		Short:         "An encrypted FUSE file system with an in-kernel metadata fast path",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("cryptfs {{.Version}}\n")
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &codedError{code: exitUsage, err: fmt.Errorf("%w (run '%s --help' for usage)", err, c.CommandPath())}
	})
	root.AddCommand(
		newInit(e), newMount(e), newUnmount(e), newPasswd(e), newRekey(e), newRecover(e), newInfo(e),
		newStatus(e), newStats(e), newFsck(e), newKmod(e),
		newPath(e), newCat(e), newRestore(e), // offline tools: path.go, cat.go, restore.go
		newHome(e),
		newPAM(e),
		&cobra.Command{Use: "exit-codes", Short: "Describe the exit codes", Run: func(*cobra.Command, []string) {
			fmt.Fprint(e.stdout, exitCodesHelp)
		}},
	)
	root.AddCommand(newGendoc(e)) // hidden: man pages and completions for make install (gendoc.go)
	return root
}

// args checks the positional argument count with the usage exit code.
func args(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if len(a) != n {
			return withCode(exitUsage, "%s needs %d argument(s), got %d\nUsage: %s", c.Name(), n, len(a), c.UseLine())
		}
		return nil
	}
}

// configPath returns where the config of a cipher directory lives.
func configPath(cipherDir, override string) string {
	if override != "" {
		return override
	}
	return filepath.Join(cipherDir, config.FileName)
}

// loadConfig loads a config and maps its failures to exit codes. A
// missing or damaged config points to cryptfs recover: the directory may
// well hold data (never to init, which would start a new tree).
func loadConfig(path string, allowWeak bool) (*config.Config, error) {
	cfg, err := config.Load(path, config.LoadOptions{AllowWeakKDF: allowWeak})
	dir := filepath.Dir(path)
	switch {
	case err == nil:
		return cfg, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, withCode(exitNoConfig, "no %s found in %s: either it is not a cryptfs directory, or its config is lost; "+
			"put your copy of %s back, or write a new one with the recovery key: cryptfs recover %s",
			filepath.Base(path), dir, filepath.Base(path), dir)
	case errors.Is(err, config.ErrCorrupt):
		return nil, withCode(exitBadConfig, "%w; put your copy of %s back, or write a new one with the recovery key: cryptfs recover %s",
			err, filepath.Base(path), dir)
	case errors.Is(err, config.ErrWeakKDF), errors.Is(err, config.ErrUnsupported):
		return nil, &codedError{code: exitBadConfig, err: err}
	default:
		return nil, err
	}
}

// unlockFlags are the ways to unlock a config.
type unlockFlags struct {
	passfile    string
	extpass     string
	recoveryKey bool
	config      string
	insecureKDF bool
}

func (u *unlockFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&u.passfile, "passfile", "", "read the password from the first line of `FILE`")
	c.Flags().StringVar(&u.extpass, "extpass", "", "run `CMD` (with /bin/sh) and use the first line it prints as the password")
	c.Flags().BoolVar(&u.recoveryKey, "recovery-key", false, "unlock with the recovery key shown at init instead of the password")
	c.Flags().StringVar(&u.config, "config", "", "use the config `FILE` instead of CIPHERDIR/cryptfs.conf")
	c.Flags().BoolVar(&u.insecureKDF, "insecure-kdf", false, "accept KDF parameters below the safe minimum (tests only)")
	c.Flags().MarkHidden("insecure-kdf")
	c.PreRunE = func(*cobra.Command, []string) error { return u.check() }
}

// check refuses conflicting ways to give the password.
func (u *unlockFlags) check() error {
	if u.passfile != "" && u.extpass != "" {
		return withCode(exitUsage, "--passfile and --extpass are two ways to give the same password: use one")
	}
	return nil
}

func (u *unlockFlags) secrets(e env) *secrets {
	return &secrets{passfile: u.passfile, extpass: u.extpass, stdin: e.stdin, stderr: e.stderr}
}

// unlock loads the config of cipherDir and returns it with the master key.
func (u *unlockFlags) unlock(e env, cipherDir string, sec *secrets) (*config.Config, []byte, error) {
	cfg, err := loadConfig(configPath(cipherDir, u.config), u.insecureKDF)
	if err != nil {
		return nil, nil, err
	}
	var master []byte
	if u.recoveryKey {
		key, err := sec.readRecoveryKey()
		if err != nil {
			return nil, nil, err
		}
		master, err = cfg.UnlockRecovery(key)
		if err != nil {
			if errors.Is(err, config.ErrRecoveryKeyTypo) || errors.Is(err, config.ErrWrongRecoveryKey) {
				return nil, nil, &codedError{code: exitWrongPassword, err: err}
			}
			if errors.Is(err, config.ErrCorrupt) {
				return nil, nil, &codedError{code: exitBadConfig, err: err}
			}
			return nil, nil, err
		}
		return cfg, master, nil
	}
	pw, err := sec.read("Password: ")
	if err != nil {
		return nil, nil, err
	}
	master, err = cfg.Unlock(pw)
	wipe(pw)
	if errors.Is(err, config.ErrCorrupt) {
		return nil, nil, &codedError{code: exitBadConfig, err: err}
	}
	if errors.Is(err, config.ErrWrongPassword) {
		return nil, nil, withCode(exitWrongPassword, "wrong password for %s, or the file was tampered with (forgot the password? use --recovery-key)", configPath(cipherDir, u.config))
	}
	return cfg, master, err
}

// newLogger returns the structured logger: warnings and errors only
// unless debug is set.
func newLogger(w io.Writer, debug bool) zerolog.Logger {
	level := zerolog.WarnLevel
	if debug {
		level = zerolog.DebugLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
