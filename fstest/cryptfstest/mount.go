package cryptfstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// Timeouts of the waits the harness does on its own.
const (
	readyTimeout   = 30 * time.Second // from start to a mount that answers
	exitTimeout    = 30 * time.Second // from unmount to the daemon's exit
	sigtermTimeout = 15 * time.Second // Close: from SIGTERM to the daemon's exit
	killTimeout    = 10 * time.Second // from SIGKILL to the daemon's exit
)

// MountOptions say how to mount.
type MountOptions struct {
	// Cipher is the cipher directory.
	Cipher string
	// Dir is the mountpoint; it is created (mode 0755) if missing.
	Dir string
	// FastPath, if set, adds --fast-path=FastPath, and unless it is
	// "auto" the mount fails (and is unmounted) when the daemon runs
	// another tier.
	FastPath string
	// Transport, if set, adds --transport=Transport ("uring", "dev" or
	// "auto"; default: $CRYPTFS_TRANSPORT, see TransportEnv), and unless
	// it is "auto" the mount fails (and is unmounted) when the daemon
	// uses another. A --transport in Args wins.
	Transport string
	// Poll, if set, adds --poll=Poll ("adaptive", "off" or "auto";
	// default: $CRYPTFS_POLL, see PollEnv). With "adaptive" or "off" the
	// mount fails (and is unmounted) when the daemon reads /dev/fuse
	// without (or with) polling; over io_uring it does not apply. A
	// --poll in Args wins.
	Poll string
	// Args are extra flags for cryptfs mount (e.g. "--fast-path=off",
	// "--debug", "--allow-other"), placed before the two directories.
	Args []string
	// Env is added to the environment of the mount command (after
	// CLI.Env), and so of the daemon.
	Env []string
	// Background runs `cryptfs mount`, whose daemon detaches (the
	// command returns once the mount answers), instead of the default
	// `cryptfs mount -f`, which stays the harness's child and logs to
	// its standard error.
	Background bool
	// LogFile is passed as --log-file: where a background daemon logs
	// (default: the one in the runtime directory that cryptfs status
	// names). A foreground daemon ignores it.
	LogFile string
}

// Mount is a running cryptfs daemon and its mount.
type Mount struct {
	Dir     string // the mountpoint
	Cipher  string // the cipher directory
	LogFile string // the background daemon's log file ("" in the foreground)

	cli  *CLI
	pid  int
	cmd  *exec.Cmd   // the foreground daemon
	log  *syncBuffer // the foreground daemon's standard output and error
	done chan struct{}
	err  error // the foreground daemon's exit status, once done

	// under is the FUSE mount that was at Dir before this one (a
	// mount this one failed to replace, or sits on): never touched.
	under    uint32
	hasUnder bool

	closeOnce sync.Once
	closeErr  error
}

// Mount mounts a cipher directory and returns once the mount answers. On
// any error nothing stays mounted and no daemon runs.
func (c *CLI) Mount(ctx context.Context, o MountOptions) (*Mount, error) {
	if o.Cipher == "" || o.Dir == "" {
		return nil, errors.New("cryptfstest: Mount needs a cipher directory and a mountpoint")
	}
	var err error
	if o.Cipher, err = filepath.Abs(o.Cipher); err != nil {
		return nil, err
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{"mount"}
	if !o.Background {
		args = append(args, "-f")
	}
	args = append(args, c.unlockArgs()...)
	if o.FastPath != "" {
		args = append(args, "--fast-path="+o.FastPath)
	}
	transport := o.transport()
	if transport != "" {
		args = append(args, "--transport="+transport)
	}
	poll := o.poll()
	if poll != "" {
		args = append(args, "--poll="+poll)
	}
	if o.LogFile != "" {
		args = append(args, "--log-file", o.LogFile)
	}
	args = append(append(args, o.Args...), o.Cipher, o.Dir)
	m := &Mount{Dir: o.Dir, Cipher: o.Cipher, cli: c, done: make(chan struct{})}
	if dev, err := mountinfo.FUSEDevice(o.Dir); err == nil {
		m.under, m.hasUnder = dev, true
	}
	if o.Background {
		err = m.startBackground(ctx, o, args)
	} else {
		err = m.startForeground(ctx, o, args)
	}
	if err != nil {
		return nil, err
	}
	checkPoll := poll == "adaptive" || poll == "off"
	if (o.FastPath != "" && o.FastPath != "auto") || (transport != "" && transport != "auto") || checkPoll {
		st, err := m.Status(ctx)
		if err == nil && o.FastPath != "" && o.FastPath != "auto" && st.Tier != o.FastPath {
			err = fmt.Errorf("mounted with --fast-path=%s, but the daemon runs %q (%s)", o.FastPath, st.Tier, st.TierReason)
		}
		if err == nil && transport != "" && transport != "auto" && st.Transport != transport {
			err = fmt.Errorf("mounted with --transport=%s, but the daemon uses %q (%s)", transport, st.Transport, st.TransportReason)
		}
		if err == nil && checkPoll && st.Transport == "dev" && st.Poll != poll {
			err = fmt.Errorf("mounted with --poll=%s, but the daemon's polling is %q (%s)", poll, st.Poll, st.TransportReason)
		}
		if err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// startForeground runs `cryptfs mount -f` as a child and waits for its
// READY=1 on a NOTIFY_SOCKET of our own.
func (m *Mount) startForeground(ctx context.Context, o MountOptions, args []string) error {
	// A daemon that runs as another user must reach the socket.
	notify, err := ListenNotify(m.cli.Cred != nil)
	if err != nil {
		return err
	}
	defer notify.Close()

	m.log = &syncBuffer{}
	m.cmd = exec.Command(m.cli.Bin, args...) // outlives ctx
	m.cli.prepare(m.cmd, append(slices.Clone(o.Env), "NOTIFY_SOCKET="+notify.Path))
	m.cmd.Stdin = strings.NewReader(m.cli.password())
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("start cryptfs mount -f: %w", err)
	}
	m.pid = m.cmd.Process.Pid
	go func() {
		m.err = m.cmd.Wait()
		close(m.done)
	}()

	fail := func(err error) error {
		m.Close()
		return err
	}
	select {
	case err := <-notify.Ready():
		if err != nil {
			return fail(fmt.Errorf("waiting for the daemon's READY=1: %w: %s", err, tail(m.log.String(), 4000)))
		}
		return nil
	case <-m.done:
		// Refused (wrong password, already mounted...): the exit code
		// says why, as for any command.
		out := m.log.Bytes()
		var ee *exec.ExitError
		if errors.As(m.err, &ee) {
			return fail(&ExitError{Args: args, Code: ee.ExitCode(), Result: &Result{Stderr: out, Output: out}, Err: m.err})
		}
		return fail(fmt.Errorf("cryptfs mount -f exited early: %v: %s", m.err, tail(string(out), 4000)))
	case <-time.After(readyTimeout):
		return fail(fmt.Errorf("cryptfs mount -f not ready after %v: %s", readyTimeout, tail(m.log.String(), 4000)))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// startBackground runs `cryptfs mount` and asks the daemon's status for
// its pid and log file.
func (m *Mount) startBackground(ctx context.Context, o MountOptions, args []string) error {
	c := *m.cli
	c.Env = append(slices.Clone(c.Env), o.Env...)
	if _, err := c.Run(ctx, c.password(), args...); err != nil {
		return err
	}
	st, err := m.cli.Status(ctx, m.Dir)
	if err == nil && st.PID <= 0 {
		err = fmt.Errorf("cryptfs status --json %s: no daemon pid", m.Dir)
	}
	if err != nil {
		// Mounted, but not by a daemon we can see: cut it off.
		m.detach()
		close(m.done)
		return err
	}
	m.pid, m.LogFile = st.PID, st.LogFile
	go watchExit(st, m.done)
	return nil
}

// watchExit closes done when the daemon described by st has exited. It is
// not our child (the background mount command started it), so it cannot
// be waited for: a pidfd becomes readable when it exits, and where pidfds
// are missing its /proc entry is polled.
func watchExit(st control.Status, done chan struct{}) {
	defer close(done)
	if fd, err := unix.PidfdOpen(st.PID, 0); err == nil {
		defer unix.Close(fd)
		if !st.Running() { // the pid may belong to another process by now
			return
		}
		for {
			_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			if !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}
	for st.Running() {
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the daemon's process id.
func (m *Mount) PID() int { return m.pid }

// Done is closed when the daemon has exited.
func (m *Mount) Done() <-chan struct{} { return m.done }

// running reports whether the daemon has not exited yet.
func (m *Mount) running() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Err returns how a foreground daemon exited (nil: status 0, or not
// exited yet); always nil for a background daemon, whose status only its
// parent could see.
func (m *Mount) Err() error {
	if m.running() {
		return nil
	}
	return m.err
}

// Wait waits until the daemon has exited, at most until ctx ends, and
// returns Err.
func (m *Mount) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		return m.Err()
	case <-ctx.Done():
		return fmt.Errorf("daemon %d still running: %w", m.pid, ctx.Err())
	}
}

// Signal sends sig to the daemon.
func (m *Mount) Signal(sig syscall.Signal) error {
	if !m.running() {
		return os.ErrProcessDone
	}
	return syscall.Kill(m.pid, sig)
}

// Log returns what the daemon has logged so far: a foreground daemon's
// standard output and error, or a background daemon's log file.
func (m *Mount) Log() string {
	if m.log != nil {
		return m.log.String()
	}
	if m.LogFile == "" {
		return ""
	}
	data, err := os.ReadFile(m.LogFile)
	if err != nil {
		return fmt.Sprintf("(log %s: %v)", m.LogFile, err)
	}
	return string(data)
}

// Status runs `cryptfs status --json` for the mount.
func (m *Mount) Status(ctx context.Context) (control.Status, error) {
	return m.cli.Status(ctx, m.Dir)
}

// Stats runs `cryptfs stats --json` for the mount.
func (m *Mount) Stats(ctx context.Context) (control.Stats, error) {
	return m.cli.Stats(ctx, m.Dir)
}

// Unmount runs `cryptfs unmount` (flags are added, e.g. --lazy) and waits
// until the daemon has exited: at most 30 s, or until ctx ends. A refused
// unmount (busy) is an *ExitError and leaves the daemon running; so does
// a foreground daemon's exit status other than 0 (an *exec.ExitError).
func (m *Mount) Unmount(ctx context.Context, flags ...string) error {
	if _, ok := m.device(); !ok {
		return fmt.Errorf("cryptfs unmount: nothing of this mount's is mounted at %s", m.Dir)
	}
	args := append(append([]string{"unmount"}, flags...), m.Dir)
	if _, err := m.cli.Run(ctx, "", args...); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, exitTimeout)
	defer cancel()
	if err := m.Wait(wctx); err != nil {
		return fmt.Errorf("after cryptfs unmount %s: %w", m.Dir, err)
	}
	return nil
}

// Kill sends SIGKILL to the daemon and waits until it has exited, which
// leaves a dead mount behind (ENOTCONN) for the test to look at; Close or
// Abort removes it. A daemon that does not die (stuck in a request on its
// own mount) has its connection aborted.
func (m *Mount) Kill() error {
	if err := m.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill daemon %d: %w", m.pid, err)
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(killTimeout):
	}
	if dev, ok := m.device(); ok {
		mountinfo.AbortFUSE(dev)
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("daemon %d still running %v after SIGKILL", m.pid, 2*killTimeout)
	}
}

// Abort cuts the mount off at once, as after a crash: it aborts the FUSE
// connection through fusectl (processes waiting on the mount get
// ENOTCONN), kills the daemon with SIGKILL, waits for it and detaches the
// mount. Nothing is left mounted or running unless it returns an error.
func (m *Mount) Abort() error {
	if dev, ok := m.device(); ok {
		mountinfo.AbortFUSE(dev)
	}
	var errs []error
	if err := m.Kill(); err != nil {
		errs = append(errs, err)
	}
	if err := m.detach(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// device returns the FUSE connection mounted at Dir, unless there is none
// or it is the one that was there before this mount.
func (m *Mount) device() (uint32, bool) {
	dev, err := mountinfo.FUSEDevice(m.Dir)
	if err != nil || (m.hasUnder && dev == m.under) {
		return 0, false
	}
	return dev, true
}

// detach aborts and detaches whatever FUSE mount at Dir may be this
// one's (all but the one that was there before).
func (m *Mount) detach() error {
	for i := 0; i < 3; i++ {
		dev, ok := m.device()
		if !ok {
			return nil
		}
		mountinfo.AbortFUSE(dev)
		unix.Unmount(m.Dir, unix.MNT_DETACH)
	}
	if _, ok := m.device(); ok {
		return fmt.Errorf("%s is still mounted", m.Dir)
	}
	return nil
}

// Close tears the mount down, whatever state it is in; it is idempotent.
// A daemon still running is asked to stop (SIGTERM in the foreground,
// `cryptfs unmount` in the background); if it has not exited after 15 s
// (30 s), its connection is aborted and it is killed, and Close returns an
// error saying so. Then whatever is still mounted at Dir is aborted and
// detached; an error says if that failed.
func (m *Mount) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Mount) close() error {
	var errs []error
	if m.cmd == nil && m.running() && !IsMounted(m.Dir) {
		// Unmounted by the test: the daemon is on its way out, and
		// watchExit closes done a moment after it has exited.
		select {
		case <-m.done:
		case <-time.After(exitTimeout):
		}
	}
	if m.running() {
		if m.cmd != nil {
			m.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(sigtermTimeout):
				errs = append(errs, fmt.Errorf("daemon %d ignored SIGTERM for %v; aborted its connection and killed it", m.pid, sigtermTimeout))
				if err := m.Abort(); err != nil {
					errs = append(errs, err)
				}
			}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 2*exitTimeout)
			err := m.Unmount(ctx)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("%w; aborted its connection and killed it", err))
				if err := m.Abort(); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	// Whatever happened, nothing may stay mounted.
	if err := m.detach(); err != nil {
		errs = append(errs, fmt.Errorf("after teardown: %w", err))
	}
	return errors.Join(errs...)
}

// Detach frees dir of whatever FUSE file system is mounted there (a few
// times over, for stacked mounts): it aborts its connection through
// fusectl, so that nothing waits on its daemon, and unmounts it lazily.
// For tests that mount with the bare command; a Mount has Close.
func Detach(dir string) error {
	for i := 0; i < 3 && IsMounted(dir); i++ {
		if dev, err := mountinfo.FUSEDevice(dir); err == nil {
			mountinfo.AbortFUSE(dev)
		}
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	if IsMounted(dir) {
		return fmt.Errorf("%s is still mounted", dir)
	}
	return nil
}

// IsMounted reports whether a FUSE file system is mounted at dir.
func IsMounted(dir string) bool {
	_, err := mountinfo.FUSEDevice(dir)
	return err == nil
}
