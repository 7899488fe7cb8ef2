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

// read returns one secret. prompt is shown on a terminal only.
func (s *secrets) read(prompt string) ([]byte, error) {
	switch {
	case s.passfile != "":
		data, err := os.ReadFile(s.passfile)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		defer crypt.Wipe(data)
		line, _, _ := bytes.Cut(data, []byte("\n"))
		return nonEmpty(bytes.Clone(bytes.TrimSuffix(line, []byte("\r"))))
	case s.extpass != "":
		cmd := exec.Command("/bin/sh", "-c", s.extpass)
		cmd.Stderr = s.stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("--extpass %q: %w", s.extpass, err)
		}
		defer crypt.Wipe(out)
		line, _, _ := bytes.Cut(out, []byte("\n"))
		return nonEmpty(bytes.Clone(line))
	case s.isTTY():
		fmt.Fprint(s.stderr, prompt)
		pw, err := readPasswordTTY(int(s.stdin.(*os.File).Fd()))
		fmt.Fprintln(s.stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		return nonEmpty(pw)
	default:
		if s.lines == nil {
			s.lines = bufio.NewReader(s.stdin)
		}
		line, err := s.lines.ReadBytes('\n')
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			return nil, fmt.Errorf("read password from standard input: %w", err)
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		return nonEmpty(line)
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
