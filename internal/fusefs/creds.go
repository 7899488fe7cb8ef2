package fusefs

import (
	"context"
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// New entries belong to their creator.
//
// A daemon running as root on behalf of other users (--allow-other) creates
// each new lower entry with the caller's file system uid and gid, so that it
// is born with its owner: no chown by name follows that a user who can
// write the lower directory could redirect to another file (issue 13.1).
// The switch is per thread: on an OS thread locked to the request's
// goroutine, setfsgid and setfsuid, which in Linux change only the calling
// thread (x/sys calls them directly, unlike syscall.Setgid and friends,
// which Go applies to every thread).
//
// Leaving fsuid 0 clears the file system capabilities (CAP_CHOWN,
// CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_MKNOD,
// ...) from the thread's effective set; they stay permitted, and we raise
// them again with capset for the duration. The kernel has already checked
// the caller's permission to create the entry, with the caller's real
// groups, at the FUSE layer (default_permissions): the lower creation must
// not fail, or strip a set-group-ID bit, because this thread has root's
// supplementary groups instead of the caller's. The capabilities change
// only permission checks, never the owner of what is created. (The
// alternative, setgroups on the thread with the caller's groups read from
// /proc/PID/task/TID/status as gocryptfs does, costs an open and a read per
// creation, races with the caller's exit, and still needs CAP_MKNOD for
// device nodes.) Going back to fsuid 0 raises the capabilities again in the
// kernel; both ids are checked before the thread is unlocked.

// asCaller runs create, which makes exactly one new lower entry at a
// (directory descriptor, name) without following symlinks, with the
// caller's fsuid and fsgid when the daemon runs as root. A daemon that is
// not root creates everything as itself, and so does a root caller.
func (fs *FS) asCaller(ctx context.Context, create func() error) error {
	if !fs.asRoot {
		return create()
	}
	uid, gid := caller(ctx)
	if uid == 0 && gid == 0 {
		return create()
	}
	return fs.withFSIDs(int(uid), int(gid), create)
}

// capEffective returns the calling thread's capability sets.
func capGet() ([2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	return data, err
}

func capSet(data [2]unix.CapUserData) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	return unix.Capset(&hdr, &data[0])
}

// withFSIDs runs fn on the current goroutine's OS thread with fsuid uid and
// fsgid gid and the thread's effective capabilities as they were. Call as
// root (fsuid 0, fsgid 0).
func (fs *FS) withFSIDs(uid, gid int, fn func() error) (err error) {
	runtime.LockOSThread()
	caps, err := capGet()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("capget: %w", err)
	}
	defer func() {
		// Back to root before the thread may run anything else. Both
		// calls only fail to take effect for a caller without
		// CAP_SETUID/CAP_SETGID, which root is not; if they did, this
		// thread, still locked, must never serve another request: the
		// daemon stops (a dead mount, not one acting as a user).
		unix.Setfsuid(0)
		unix.Setfsgid(0)
		u, _ := unix.SetfsuidRetUid(-1)
		g, _ := unix.SetfsgidRetGid(-1)
		if u != 0 || g != 0 {
			fs.log.Fatal().Int("fsuid", u).Int("fsgid", g).Msg("cannot return to fsuid 0 and fsgid 0 after creating an entry as its owner; stopping")
		}
		if cerr := capSet(caps); cerr != nil && err == nil {
			err = fmt.Errorf("capset: %w", cerr)
		}
		runtime.UnlockOSThread()
	}()
	unix.Setfsgid(gid)
	unix.Setfsuid(uid)
	if u, _ := unix.SetfsuidRetUid(-1); u != uid {
		return fmt.Errorf("setfsuid %d did not take effect: %w", uid, syscall.EPERM)
	}
	if g, _ := unix.SetfsgidRetGid(-1); g != gid {
		return fmt.Errorf("setfsgid %d did not take effect: %w", gid, syscall.EPERM)
	}
	if err := capSet(caps); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return fn()
}
