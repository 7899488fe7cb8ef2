// Command cryptfs creates, mounts and checks cryptfs encrypted directories.
//
// See `cryptfs help` and the README. Exit codes are listed in exitcodes.go
// and in `cryptfs help exit-codes`.
package main

import (
	"fmt"
	"os"

	"github.com/cryptfs/cryptfs/internal/harden"
)

func main() {
	// Every command may hold a password or key: no core dump, no ptrace.
	if err := harden.Process(); err != nil {
		fmt.Fprintln(os.Stderr, "cryptfs: warning:", err)
	}
	os.Exit(Main())
}
