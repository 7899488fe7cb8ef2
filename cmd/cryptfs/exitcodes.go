package main

import (
	"errors"
	"fmt"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"github.com/cryptfs/cryptfs/internal/treelock"
)

// Exit codes. They are part of the command-line interface: scripts and
// the systemd unit rely on them, so a code never changes meaning.
const (
	exitOK             = 0
	exitError          = 1   // any other failure
	exitUsage          = 2   // bad flags or arguments
	exitWrongPassword  = 10  // wrong password or recovery key (also a mistyped recovery key)
	exitNoConfig       = 11  // no cryptfs.conf: not a cryptfs directory, or its config is lost (cryptfs recover)
	exitBadConfig      = 12  // cryptfs.conf corrupt, tampered, unsupported or with weak KDF parameters
	exitNoMountpoint   = 13  // the mountpoint does not exist or is not a directory
	exitNotEmpty       = 14  // the mountpoint is not empty
	exitAlreadyMounted = 15  // something is already mounted there
	exitNoFUSE         = 16  // no /dev/fuse or no fusermount3; --transport=uring without FUSE over io_uring
	exitNotMounted     = 17  // unmount/status/stats: no cryptfs mount there
	exitTreeInUse      = 18  // the cipher directory is mounted already (one daemon per tree)
	exitBusy           = 19  // unmount refused: the mount is in use (nothing changed)
	exitFsckProblems   = 20  // fsck found damaged or tampered data
	exitDeadMount      = 21  // status/stats: the mount's daemon has exited (cryptfs unmount removes it)
	exitConfigValid    = 22  // recover: the config is valid; --force replaces it
	exitInterrupted    = 130 // interrupted (Ctrl-C) at a prompt
)

const exitCodesHelp = `Exit codes:
   0  success
   1  any other failure
   2  bad flags or arguments
  10  wrong password or recovery key
  11  no cryptfs.conf (not a cryptfs directory, or its config is lost: cryptfs recover)
  12  cryptfs.conf corrupt, tampered, unsupported or with weak KDF parameters
      (a lost or damaged config: cryptfs recover, with the recovery key)
  13  the mountpoint does not exist or is not a directory
  14  the mountpoint is not empty
  15  something is already mounted on the mountpoint
  16  FUSE is not available (/dev/fuse or fusermount3 missing; or
      --transport=uring and the kernel does not offer FUSE over io_uring)
  17  no cryptfs mount at that path
  18  the cipher directory is already mounted (one daemon per cipher tree;
      read-only mounts may share one)
  19  unmount refused: the mount is busy (the processes that use it are
      listed; nothing was changed)
  20  fsck found damaged or tampered data
  21  dead mount: its daemon has exited (cryptfs unmount removes it)
  22  recover: CIPHERDIR has a valid cryptfs.conf (--force replaces it)
 130  interrupted (Ctrl-C at a prompt)
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
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, treelock.ErrInUse):
		return exitTreeInUse
	case errors.Is(err, mountinfo.ErrBusy):
		return exitBusy
	}
	return exitError
}
