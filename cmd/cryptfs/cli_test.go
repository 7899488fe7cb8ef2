package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// The command-line behaviour is specified by the scripts in
// testdata/script: each runs cryptfs and states its exit status and
// output, so a reviewer can check the promises at a glance.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cryptfs": func() { os.Exit(Main()) },
		// The mount helper (mounthelper.go): the binary by another name.
		"mount.fuse.cryptfs": func() { os.Exit(mountHelperMain("mount.fuse.cryptfs")) },
		"cryptfs-mktree":     mktreeMain, // offline_test.go
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			if os.Geteuid() == 0 {
				e.Setenv("ROOT", "1")
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// exitcode N command args...: run the command and require
			// exit status N (its output is kept for stdout/stderr).
			"exitcode": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exitcode N command [args...]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				got := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("%v", err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("exit status %d, want %d", got, want)
				}
			},
		},
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, nil
		},
	})
}
