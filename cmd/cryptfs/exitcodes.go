package main

import (
	"errors"
	"fmt"
)

// Exit codes. They are part of the command-line interface: scripts and
// the systemd unit rely on them, so a code never changes meaning.
const (
	exitOK             = 0
	exitError          = 1  // any other failure
	exitUsage          = 2  // bad flags or arguments
	exitWrongPassword  = 10 // wrong password or recovery key (also a mistyped recovery key)
	exitNoConfig       = 11 // no cryptfs.conf: not a cryptfs directory (run cryptfs init)
	exitBadConfig      = 12 // cryptfs.conf corrupt, tampered, unsupported or with weak KDF parameters
	exitNoMountpoint   = 13 // the mountpoint does not exist or is not a directory
	exitNotEmpty       = 14 // the mountpoint is not empty
	exitAlreadyMounted = 15 // something is already mounted there
	exitNoFUSE         = 16 // no /dev/fuse or no fusermount3
	exitNotMounted     = 17 // unmount/status/stats: no cryptfs mount there
	exitFsckProblems   = 20 // fsck found damaged or tampered data
)

const exitCodesHelp = `Exit codes:
   0  success
   1  any other failure
   2  bad flags or arguments
  10  wrong password or recovery key
  11  no cryptfs.conf (not a cryptfs directory; run cryptfs init)
  12  cryptfs.conf corrupt, tampered, unsupported or with weak KDF parameters
  13  the mountpoint does not exist or is not a directory
  14  the mountpoint is not empty
  15  something is already mounted on the mountpoint
  16  FUSE is not available (/dev/fuse or fusermount3 missing)
  17  no cryptfs mount at that path
  20  fsck found damaged or tampered data
`

// codedError carries the exit code for an error.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code int, format string, args ...any) error {
	return &codedError{code: code, err: fmt.Errorf(format, args...)}
}

// exitCode returns the exit code for err.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitError
}
