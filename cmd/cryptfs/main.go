// Command cryptfs creates, mounts and checks cryptfs encrypted directories.
//
// See `cryptfs help` and the README. Exit codes are listed in exitcodes.go
// and in `cryptfs help exit-codes`.
package main

import (
	"os"
)

func main() {
	if name := mountHelperName(os.Args[0]); name != "" { // mount.fuse.cryptfs: see mounthelper.go
		os.Exit(mountHelperMain(name))
	}
	os.Exit(Main())
}
