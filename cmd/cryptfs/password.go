package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/cryptfs/cryptfs/crypt"
)

// secrets reads passwords and recovery keys: from --passfile, from the
// output of --extpass, from the terminal (no echo), or one line per secret
// from standard input when it is not a terminal.
type secrets struct {
	passfile string
	extpass  string
	stdin    io.Reader
	stderr   io.Writer
	lines    *bufio.Reader
}

func (s *secrets) isTTY() bool {
	f, ok := s.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// maxSecret is the longest password or recovery key line read from any
// source: a --passfile, --extpass or standard input that never ends (a
// mistake like --passfile /dev/zero) must not make cryptfs read without
// end; no real password comes near it.
const maxSecret = 4096

// errSecretTooLong reports a source whose first line is longer than
// maxSecret.
func errSecretTooLong(what string) error {
	return withCode(exitUsage, "%s: no line end in the first %d bytes; a password or recovery key is one line of at most %d bytes", what, maxSecret, maxSecret)
}

// firstLine returns a copy of the first line of data (without its "\n"
// and a "\r" before it); data holds at most maxSecret+1 bytes read from
// the source, which is too long if it has no line end within maxSecret.
func firstLine(what string, data []byte) ([]byte, error) {
	line, _, found := bytes.Cut(data, []byte("\n"))
	if !found && len(data) > maxSecret {
		return nil, errSecretTooLong(what)
	}
	return bytes.Clone(bytes.TrimSuffix(line, []byte("\r"))), nil
}

// read returns one secret. prompt is shown on a terminal only.
func (s *secrets) read(prompt string) ([]byte, error) {
	switch {
	case s.passfile != "":
		f, err := os.Open(s.passfile)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
		f.Close()
		defer crypt.Wipe(data)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		line, err := firstLine("password file "+s.passfile, data)
		if err != nil {
			return nil, err
		}
		return nonEmpty(line)
	case s.extpass != "":
		cmd := exec.Command("/bin/sh", "-c", s.extpass)
		cmd.Stderr = s.stderr
		cmd.WaitDelay = 5 * time.Second // output pipes held by the command's children
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("--extpass %q: %w", s.extpass, err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("--extpass %q: %w", s.extpass, err)
		}
		data, rerr := io.ReadAll(io.LimitReader(out, maxSecret+1))
		defer crypt.Wipe(data)
		if len(data) > maxSecret {
			out.Close() // what still writes gets EPIPE
			cmd.Process.Kill()
			cmd.Wait()
			return nil, errSecretTooLong(fmt.Sprintf("--extpass %q", s.extpass))
		}
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("--extpass %q: %w", s.extpass, err)
		}
		if rerr != nil {
			return nil, fmt.Errorf("--extpass %q: %w", s.extpass, rerr)
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		return nonEmpty(bytes.Clone(line))
	case s.isTTY():
		fmt.Fprint(s.stderr, prompt)
		pw, err := readPasswordTTY(int(s.stdin.(*os.File).Fd()))
		fmt.Fprintln(s.stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if len(pw) > maxSecret {
			crypt.Wipe(pw)
			return nil, errSecretTooLong("the password typed")
		}
		return nonEmpty(pw)
	default:
		if s.lines == nil {
			s.lines = bufio.NewReaderSize(s.stdin, maxSecret+1)
		}
		line, err := s.lines.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, errSecretTooLong("standard input")
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			return nil, fmt.Errorf("read password from standard input: %w", err)
		}
		secret := bytes.Clone(bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")))
		crypt.Wipe(line) // the reader's own buffer
		return nonEmpty(secret)
	}
}

// readNew reads a new password, asking twice on a terminal.
func (s *secrets) readNew(prompt string) ([]byte, error) {
	pw, err := s.read(prompt)
	if err != nil || !s.isTTY() || s.passfile != "" || s.extpass != "" {
		return pw, err
	}
	again, err := s.read("Repeat password: ")
	if err != nil {
		crypt.Wipe(pw)
		return nil, err
	}
	defer crypt.Wipe(again)
	if !bytes.Equal(pw, again) {
		crypt.Wipe(pw)
		return nil, errors.New("the passwords do not match")
	}
	return pw, nil
}

// readRecoveryKey reads a recovery key (whitespace and dashes allowed).
func (s *secrets) readRecoveryKey() (string, error) {
	k, err := s.read("Recovery key: ")
	if err != nil {
		return "", err
	}
	defer crypt.Wipe(k)
	return strings.TrimSpace(string(k)), nil
}

func nonEmpty(pw []byte) ([]byte, error) {
	if len(pw) == 0 {
		return nil, withCode(exitUsage, "empty password")
	}
	return pw, nil
}
