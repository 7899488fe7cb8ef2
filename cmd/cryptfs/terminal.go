package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// readPasswordTTY reads a password from the terminal fd without echo. An
// interrupt at the prompt (Ctrl-C, or SIGTERM/SIGHUP/SIGQUIT) puts the
// terminal back as it was before the process exits with
// exitInterrupted: the default handling would leave the shell without
// echo.
func readPasswordTTY(fd int) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return term.ReadPassword(fd)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-sigs:
			term.Restore(fd, state)
			fmt.Fprintf(os.Stderr, "\ncryptfs: interrupted (%v)\n", sig)
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return term.ReadPassword(fd)
}

// killProcess sends SIGKILL to pid.
func killProcess(pid int) error {
	return syscall.Kill(pid, syscall.SIGKILL)
}
