package fstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The checks that need another identity (another user, another umask) run one system call in
// a child process: the test binary itself, re-executed with helperEnv set. The package's
// init function recognises the variable and serves the request before any test runs, so any
// test binary that links this package can act as the helper without a TestMain.
//
// The child starts with the parent's credentials and drops to the requested uid/gid itself
// (setgroups, setgid, setuid, which Go applies to all threads) instead of being started with
// SysProcAttr.Credential: the test binary lives in a 0700 build directory that another user
// could not execute. The directory the operation works in is passed as descriptor 3, so that
// the parents of the check's directory (t.TempDir is 0700) do not need to be searchable by
// that user; only the permissions of the entries the check sets up count.
const helperEnv = "FSTEST_HELPER_REQUEST"

// otherID is the uid and gid the cross-user checks act as (nobody/nogroup).
const otherID = 65534

// helperRequest is one operation for the child, relative to descriptor 3.
type helperRequest struct {
	UID   int    // drop to this uid and gid; -1 keeps the parent's identity
	GID   int    //
	Umask int    // set this umask first; -1 keeps the inherited one
	Op    string // see helperDo
	Name  string // path relative to descriptor 3
	Flags int    // open flags, access mode, or xattr flags
	Mode  uint32 // create mode
	Data  []byte // bytes to write after open
}

// helperReply is the child's answer.
type helperReply struct {
	Errno int    // errno of the operation, 0 on success
	Fatal string // set if the child could not even perform the operation
}

func init() {
	if req, ok := os.LookupEnv(helperEnv); ok {
		os.Exit(helperMain(req))
	}
}

func helperMain(raw string) int {
	var req helperRequest
	reply := func(r helperReply) int {
		if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "fstest helper:", err)
			return 2
		}
		return 0
	}
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		return reply(helperReply{Fatal: fmt.Sprintf("decode request: %v", err)})
	}
	if req.UID >= 0 {
		if err := syscall.Setgroups(nil); err != nil {
			return reply(helperReply{Fatal: fmt.Sprintf("setgroups: %v", err)})
		}
		if err := syscall.Setgid(req.GID); err != nil {
			return reply(helperReply{Fatal: fmt.Sprintf("setgid %d: %v", req.GID, err)})
		}
		if err := syscall.Setuid(req.UID); err != nil {
			return reply(helperReply{Fatal: fmt.Sprintf("setuid %d: %v", req.UID, err)})
		}
	}
	if req.Umask >= 0 {
		syscall.Umask(req.Umask)
	}
	err := helperDo(&req)
	if err != nil {
		var e unix.Errno
		if !errors.As(err, &e) {
			return reply(helperReply{Fatal: err.Error()})
		}
		return reply(helperReply{Errno: int(e)})
	}
	return reply(helperReply{})
}

// helperDo performs the request's operation on descriptor 3.
func helperDo(req *helperRequest) error {
	const dirfd = 3
	switch req.Op {
	case "open":
		fd, err := retry(func() (int, error) {
			return unix.Openat(dirfd, req.Name, req.Flags|unix.O_CLOEXEC, req.Mode)
		})
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for len(req.Data) > 0 {
			n, err := retry(func() (int, error) { return unix.Write(fd, req.Data) })
			if err != nil {
				return err
			}
			req.Data = req.Data[n:]
		}
		return unix.Close(fd)
	case "access":
		return unix.Faccessat(dirfd, req.Name, uint32(req.Flags), 0)
	case "unlink":
		return unix.Unlinkat(dirfd, req.Name, 0)
	case "mkdir":
		return unix.Mkdirat(dirfd, req.Name, req.Mode)
	case "mkfifo":
		return unix.Mkfifoat(dirfd, req.Name, req.Mode)
	case "chmod":
		return unix.Fchmodat(dirfd, req.Name, req.Mode, 0)
	case "utimes-now":
		return unix.UtimesNanoAt(dirfd, req.Name, nil, 0)
	case "utimes-past":
		return unix.UtimesNanoAt(dirfd, req.Name, []unix.Timespec{pastTime, pastTime}, 0)
	case "setxattr":
		// Not through /proc/self/fd: a process that changed its uid is not dumpable and
		// cannot use its own /proc entries.
		fd, err := retry(func() (int, error) {
			return unix.Openat(dirfd, req.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fsetxattr(fd, "user.fstest", req.Data, req.Flags)
	}
	return fmt.Errorf("unknown helper operation %q", req.Op)
}

// runHelper runs req in a child process on directory dir and returns the errno of the
// operation (nil on success). It fails the check if the child itself fails.
func runHelper(t *testing.T, dir string, req helperRequest) error {
	t.Helper()
	exe, err := os.Executable()
	must(t, err, "find test executable")
	raw, err := json.Marshal(req)
	must(t, err, "encode helper request")
	d, err := os.Open(dir)
	must(t, err, "open %s", dir)
	defer d.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	cmd.ExtraFiles = []*os.File{d}
	var stderr []byte
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	if err != nil {
		t.Fatalf("helper %s %q: %v; stderr: %s", req.Op, req.Name, err, stderr)
	}
	var rep helperReply
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper %s %q: bad reply %q: %v", req.Op, req.Name, out, err)
	}
	if rep.Fatal != "" {
		t.Fatalf("helper %s %q: %s", req.Op, req.Name, rep.Fatal)
	}
	if rep.Errno != 0 {
		return unix.Errno(rep.Errno)
	}
	return nil
}

// asOther builds a request that runs as otherID with the inherited umask.
func asOther(op, name string) helperRequest {
	return helperRequest{UID: otherID, GID: otherID, Umask: -1, Op: op, Name: name}
}
