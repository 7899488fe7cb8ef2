package cryptfstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cryptfs/cryptfs/internal/control"
)

// Password is the password of the cipher directories the harness creates
// unless CLI.Password or CLI.Passfile says otherwise.
const Password = "correct horse battery staple"

// CLI runs the cryptfs binary. The zero value of every field but Bin is
// what tests want: the password on standard input and cheap KDF parameters
// (--insecure-kdf).
type CLI struct {
	// Bin is the cryptfs binary (Binary in tests).
	Bin string
	// Password is typed on standard input to the commands that unlock or
	// create a cipher directory (Init, Mount, Fsck); "" means Password.
	Password string
	// Passfile, if set, is passed as --passfile instead, and standard
	// input stays empty.
	Passfile string
	// StrongKDF creates cipher directories with the default (slow)
	// Argon2id parameters and does not pass --insecure-kdf, which
	// otherwise Init, Mount and Fsck pass (cheap parameters, for tests).
	StrongKDF bool
	// Env is added to the environment of every command (KEY=VALUE).
	Env []string
	// Cred, if set, runs every command as that user (and group), and so
	// the daemons they start.
	Cred *syscall.Credential
}

// Result is the output of one command.
type Result struct {
	Stdout []byte // standard output alone (the JSON of --json commands)
	Stderr []byte // standard error alone
	Output []byte // both, in the order they were written
}

// ExitError is a command that ran and exited with a code other than 0 (or
// was killed by a signal). A foreground `cryptfs mount -f` that exits
// before the mount is ready is one too; its Result then holds what it
// printed on either stream in both Stderr and Output.
type ExitError struct {
	Args   []string // the command line, without the binary
	Code   int      // the exit code; -1 when a signal ended it
	Result *Result
	Err    error // the *exec.ExitError
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("cryptfs %s: %v: %s", strings.Join(e.Args, " "), e.Err, tail(string(e.Result.Output), 600))
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns the exit code of a command's error: 0 for nil, the code
// of an *ExitError, and -1 for any other error (the command did not run).
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

// password is what the unlocking commands read on standard input.
func (c *CLI) password() string {
	if c.Passfile != "" {
		return ""
	}
	if c.Password != "" {
		return c.Password + "\n"
	}
	return Password + "\n"
}

// unlockArgs are the flags the unlocking commands get.
func (c *CLI) unlockArgs() []string {
	var a []string
	if !c.StrongKDF {
		a = append(a, "--insecure-kdf")
	}
	if c.Passfile != "" {
		a = append(a, "--passfile", c.Passfile)
	}
	return a
}

// Command returns `cryptfs args...` prepared with the CLI's environment
// and credentials, for callers that need to run it their own way.
func (c *CLI) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	c.prepare(cmd, nil)
	return cmd
}

// prepare sets the environment (CLI.Env, then extra) and credentials.
func (c *CLI) prepare(cmd *exec.Cmd, extra []string) {
	if len(c.Env) > 0 || len(extra) > 0 {
		cmd.Env = append(append(os.Environ(), c.Env...), extra...)
	}
	if c.Cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.Cred}
	}
	cmd.WaitDelay = 10 * time.Second
}

// Run runs `cryptfs args...` with stdin on standard input and waits for
// it. A command that exits with a code other than 0 returns its Result and
// an *ExitError.
func (c *CLI) Run(ctx context.Context, stdin string, args ...string) (*Result, error) {
	cmd := c.Command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	all := &syncBuffer{}
	cmd.Stdout = io.MultiWriter(&stdout, all)
	cmd.Stderr = io.MultiWriter(&stderr, all)
	err := cmd.Run()
	res := &Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Output: all.Bytes()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return res, &ExitError{Args: args, Code: ee.ExitCode(), Result: res, Err: err}
	case err != nil:
		return res, fmt.Errorf("cryptfs %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}

// Init creates a cipher directory at dir (created if missing; it must be
// empty) with `cryptfs init`; flags are added (e.g.
// --deterministic-names). The output holds the recovery key.
func (c *CLI) Init(ctx context.Context, dir string, flags ...string) (*Result, error) {
	args := append(append(append([]string{"init"}, c.unlockArgs()...), flags...), dir)
	return c.Run(ctx, c.password(), args...)
}

// Fsck runs `cryptfs fsck` on a cipher directory; flags are added (e.g.
// --json). Damage found is an *ExitError with code 20.
func (c *CLI) Fsck(ctx context.Context, cipher string, flags ...string) (*Result, error) {
	args := append(append(append([]string{"fsck"}, c.unlockArgs()...), flags...), cipher)
	return c.Run(ctx, c.password(), args...)
}

// Status runs `cryptfs status --json` for the mount at mnt.
func (c *CLI) Status(ctx context.Context, mnt string) (control.Status, error) {
	var st control.Status
	return st, c.runJSON(ctx, &st, "status", "--json", mnt)
}

// Stats runs `cryptfs stats --json` for the mount at mnt.
func (c *CLI) Stats(ctx context.Context, mnt string) (control.Stats, error) {
	var st control.Stats
	return st, c.runJSON(ctx, &st, "stats", "--json", mnt)
}

func (c *CLI) runJSON(ctx context.Context, v any, args ...string) error {
	res, err := c.Run(ctx, "", args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(res.Stdout, v); err != nil {
		return fmt.Errorf("cryptfs %s: %w: %s", strings.Join(args, " "), err, tail(string(res.Stdout), 200))
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a daemon's
// standard output and error, copied by two goroutines).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
