// Command cryptfs creates, mounts and checks cryptfs encrypted directories.
//
// See `cryptfs help` and the README. Exit codes are listed in exitcodes.go
// and in `cryptfs help exit-codes`.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/cryptfs/cryptfs/internal/harden"
)

func main() {
	// Every command may hold a password or key: no core dump, no ptrace.
	if err := harden.Process(); err != nil {
		fmt.Fprintln(os.Stderr, "cryptfs: warning:", err)
	}
	if name := mountHelperName(os.Args[0]); name != "" { // mount.fuse.cryptfs: see mounthelper.go
		os.Exit(mountHelperMain(name))
	}
	os.Exit(Main())
}

// buildVersion is set at link time by make build (-ldflags "-X
// main.buildVersion=$(git describe --always --dirty)"); a plain go build
// leaves it empty and version falls back to what the Go toolchain
// recorded (the module version, and the VCS revision when stamped).
var buildVersion string

// version says which cryptfs this is, for cryptfs --version.
func version() string {
	v := buildVersion
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if v == "" {
			v = "(unknown)"
		}
		return v
	}
	if v == "" {
		v = info.Main.Version
	}
	var rev, when, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+modified"
			}
		}
	}
	var extra []string
	if rev != "" {
		extra = append(extra, "git "+rev[:min(len(rev), 12)]+dirty)
	}
	if when != "" {
		extra = append(extra, when)
	}
	extra = append(extra, info.GoVersion)
	return v + " (" + strings.Join(extra, ", ") + ")"
}
