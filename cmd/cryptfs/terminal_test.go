package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("skipping: no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("skipping: cannot open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestInterruptAtPasswordPrompt: Ctrl-C at a password prompt on a
// terminal puts the terminal back (echo on) and exits 130 without having
// created anything. The default signal handling left the terminal without
// echo.
func TestInterruptAtPasswordPrompt(t *testing.T) {
	bin, err := exec.LookPath("cryptfs") // set up by testscript.Main
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		args   []string
		prompt string
	}{
		{"init", []string{"init", "--insecure-kdf", "DIR/cipher"}, "New password: "},
		{"init, second prompt", []string{"init", "--insecure-kdf", "DIR/cipher"}, "Repeat password: "},
		{"recover", []string{"recover", "--insecure-kdf", "DIR"}, "Recovery key: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ptm, pts := openPTY(t)
			var args []string
			for _, a := range c.args {
				args = append(args, strings.ReplaceAll(a, "DIR", dir))
			}
			cmd := exec.Command(bin, args...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var mu sync.Mutex
			var out bytes.Buffer
			go func() {
				buf := make([]byte, 1024)
				for {
					n, err := ptm.Read(buf)
					mu.Lock()
					out.Write(buf[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
			waitFor := func(s string) {
				t.Helper()
				deadline := time.Now().Add(20 * time.Second)
				for {
					mu.Lock()
					got := out.String()
					mu.Unlock()
					if strings.Contains(got, s) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("no %q on the terminal; got %q", s, got)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if c.prompt == "Repeat password: " {
				waitFor("New password: ")
				echoOff(t, pts)
				ptm.Write([]byte("first\n"))
			}
			waitFor(c.prompt)
			echoOff(t, pts)
			if _, err := ptm.Write([]byte{0x03}); err != nil { // Ctrl-C
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
					t.Errorf("exit after Ctrl-C: %v, want code %d", err, exitInterrupted)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("still running 20 s after Ctrl-C")
			}
			tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if tio.Lflag&unix.ECHO == 0 {
				t.Errorf("the terminal has no echo after Ctrl-C at %q", c.prompt)
			}
			if _, err := os.Stat(filepath.Join(dir, "cipher")); err == nil {
				t.Errorf("init created the directory although it was interrupted")
			}
		})
	}
}

// echoOff waits until the program turned echo off on the terminal (it is
// reading a password).
func echoOff(t *testing.T, pts *os.File) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("echo still on at the password prompt")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
