package home

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/cryptfs/cryptfs/internal/holders"
)

// Level is the importance of a log message of the session stages.
type Level string

// Levels, as the PAM module maps them to syslog priorities. Warnings and
// errors are also shown to the user when the application allows it.
const (
	Info    Level = "info"
	Notice  Level = "notice"
	Warning Level = "warning"
	Error   Level = "error"
)

// Logger receives the messages of the session stages. No message ever
// holds a secret.
type Logger func(level Level, msg string)

func (l Logger) printf(level Level, format string, args ...any) {
	if l != nil {
		l(level, fmt.Sprintf(format, args...))
	}
}

// Errors of the session stages.
var (
	// ErrNoPassword: the session brought no password (a key-based ssh
	// login, su from root), so a home that is not mounted stays locked.
	ErrNoPassword = errors.New("no password in this session")
)

// SessionOptions are what the session stages need besides the user.
type SessionOptions struct {
	Log Logger
	// Exe is the cryptfs binary for the processes the stages start ("":
	// this one).
	Exe string
}

func (o SessionOptions) exe() string {
	if o.Exe == "" {
		return "/proc/self/exe"
	}
	return o.Exe
}

// OpenSession is the open_session stage for user (root): it counts the
// session and, unless the home is mounted already, mounts it with
// password, the daemon running as the user. A user without a registry
// entry is left alone (nil).
func OpenSession(user string, password []byte, o SessionOptions) error {
	e, u, err := lookup(user)
	if err != nil || e == nil {
		return err
	}
	s, err := LockSessions(u.UID)
	if err != nil {
		return err
	}
	defer s.Unlock()
	s.State.Sessions++
	if err := s.Save(); err != nil {
		return err
	}
	if Mounted(e.Mountpoint) {
		if s.State.Daemon.PID == 0 || s.State.Daemon.Running() {
			o.Log.printf(Info, "%s: %s is mounted already; %d sessions open", user, e.Mountpoint, s.State.Sessions)
			return nil
		}
		// Our daemon died (killed, crashed): the mount is dead and holds
		// no data. Clear it so that this session gets a working home.
		o.Log.printf(Warning, "%s: the daemon of %s (pid %d) is gone; removing the dead mount", user, e.Mountpoint, s.State.Daemon.PID)
		if err := Unmount(e.Mountpoint); err != nil {
			unmountFailed(e.Mountpoint) // busy with processes that can only get ENOTCONN: detach
		}
		s.State.Daemon = Proc{}
		s.Save()
	}
	if len(password) == 0 {
		o.Log.printf(Warning, "%s: %v (key-based login, or su from root): the encrypted home %s stays locked until a login with the password", user, ErrNoPassword, e.Mountpoint)
		return ErrNoPassword
	}
	logf, err := OpenLog(u.UID)
	if err != nil {
		return err
	}
	defer logf.Close()
	p, err := Mount(MountOptions{Entry: *e, User: u, Secret: password, Log: logf, Rewrap: true, Exe: o.exe()})
	if errors.Is(err, ErrWrongPassword) {
		o.Log.printf(Warning, "%s: the login password does not unlock the encrypted home %s: it stays locked. "+
			"If the login password was changed without the old one, run 'cryptfs passwd %s' as %s (old password, then the login password)",
			user, e.Mountpoint, e.Cipher, user)
		return err
	}
	if err != nil {
		o.Log.printf(Error, "%s: mounting the encrypted home %s failed: %v", user, e.Mountpoint, err)
		return err
	}
	s.State.Daemon = p
	if err := s.Save(); err != nil {
		return err
	}
	o.Log.printf(Notice, "%s: mounted the encrypted home %s (daemon pid %d, %d sessions open)", user, e.Mountpoint, p.PID, s.State.Sessions)
	return nil
}

// CloseSession is the close_session stage for user (root): it counts the
// session out and, when it was the last one, unmounts the home the normal
// way. A busy home stays mounted: the log names what keeps it busy, and a
// background process (cryptfs home unmount-when-free) unmounts it once it
// is free, unless a session opens first.
func CloseSession(user string, o SessionOptions) error {
	e, u, err := lookup(user)
	if err != nil || e == nil {
		return err
	}
	s, err := LockSessions(u.UID)
	if err != nil {
		return err
	}
	defer s.Unlock()
	if s.State.Sessions > 0 {
		s.State.Sessions--
	}
	if err := s.Save(); err != nil {
		return err
	}
	if s.State.Sessions > 0 {
		o.Log.printf(Info, "%s: %d sessions still open; %s stays mounted", user, s.State.Sessions, e.Mountpoint)
		return nil
	}
	busy, err := unmountLast(e, s, o.Log)
	if err != nil || !busy {
		return err
	}
	if s.State.Retry.Running() {
		return nil
	}
	p, err := startRetry(user, u.UID, o.exe())
	if err != nil {
		o.Log.printf(Error, "%s: cannot start the background unmount of %s: %v; run 'cryptfs home lock %s' once it is free", user, e.Mountpoint, err, user)
		return err
	}
	s.State.Retry = p
	return s.Save()
}

// unmountLast unmounts e after its last session (s locked). busy reports
// a refusal because the home is in use, which it logs with the holders.
func unmountLast(e *Entry, s *Sessions, log Logger) (busy bool, err error) {
	if !Mounted(e.Mountpoint) {
		s.State.Daemon = Proc{}
		return false, s.Save()
	}
	err = Unmount(e.Mountpoint)
	if errors.Is(err, ErrBusy) {
		log.printf(Warning, "%s: the last session closed, but %s is still in use, so it stays mounted until it is not: %s",
			e.User, e.Mountpoint, holders.Describe(e.Mountpoint))
		return true, nil
	}
	if err != nil {
		log.printf(Error, "%s: %v", e.User, err)
		return false, err
	}
	if s.State.Daemon.PID != 0 && !waitExit(s.State.Daemon, exitTimeout) {
		log.printf(Warning, "%s: unmounted %s, but its daemon (pid %d) has not exited after %v", e.User, e.Mountpoint, s.State.Daemon.PID, exitTimeout)
	}
	log.printf(Notice, "%s: the last session closed; unmounted the encrypted home %s", e.User, e.Mountpoint)
	s.State.Daemon = Proc{}
	return false, s.Save()
}

// UnmountWhenFree is the background process CloseSession starts for a
// busy home: it retries the unmount (every 2 s for a minute, then every
// 30 s) until it succeeds, the home is no longer mounted, or a session opens.
func UnmountWhenFree(user string, log Logger) error {
	e, u, err := lookup(user)
	if err != nil || e == nil {
		return err
	}
	start, last := time.Now(), ""
	for {
		// Every 2 s for the first minute (the holder is often a
		// process that is exiting), then every 30 s.
		if time.Since(start) < time.Minute {
			time.Sleep(2 * time.Second)
		} else {
			time.Sleep(30 * time.Second)
		}
		done, err := func() (bool, error) {
			s, err := LockSessions(u.UID)
			if err != nil {
				return true, err
			}
			defer s.Unlock()
			if s.State.Retry.PID != os.Getpid() {
				return true, nil // replaced, or cleared by a new session
			}
			if s.State.Sessions > 0 || !Mounted(e.Mountpoint) {
				s.State.Retry = Proc{}
				return true, s.Save()
			}
			err = Unmount(e.Mountpoint)
			if errors.Is(err, ErrBusy) {
				if h := holders.Describe(e.Mountpoint); h != last {
					log.printf(Info, "%s: %s still in use, still mounted: %s", user, e.Mountpoint, h)
					last = h
				}
				return false, nil
			}
			s.State.Retry = Proc{}
			if err != nil {
				s.Save()
				log.printf(Error, "%s: %v", user, err)
				return true, err
			}
			if s.State.Daemon.PID != 0 {
				waitExit(s.State.Daemon, exitTimeout)
			}
			s.State.Daemon = Proc{}
			log.printf(Notice, "%s: %s is no longer in use; unmounted the encrypted home", user, e.Mountpoint)
			return true, s.Save()
		}()
		if done {
			return err
		}
	}
}

// startRetry starts UnmountWhenFree in the background, detached from the
// session (its own session, output to the home's log).
func startRetry(user string, uid int, exe string) (Proc, error) {
	logf, err := OpenLog(uid)
	if err != nil {
		return Proc{}, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "home", "unmount-when-free", "--", user)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, err
	}
	p := ProcOf(cmd.Process.Pid)
	cmd.Process.Release()
	return p, nil
}

// Lock unmounts user's home now, whatever the session count says (which
// it resets): for an administrator, or after sessions that ended without
// their close stage (a crash). A busy home is not unmounted (ErrBusy,
// with the holders).
func Lock(user string, log Logger) error {
	e, u, err := lookup(user)
	if err != nil {
		return err
	}
	if e == nil {
		return fmt.Errorf("%s: %w", user, ErrNoEntry)
	}
	s, err := LockSessions(u.UID)
	if err != nil {
		return err
	}
	defer s.Unlock()
	s.State.Sessions = 0
	if err := s.Save(); err != nil {
		return err
	}
	if !Mounted(e.Mountpoint) {
		return nil
	}
	busy, err := unmountLast(e, s, log)
	if busy {
		return fmt.Errorf("%s: %w: %s", e.Mountpoint, ErrBusy, holders.Describe(e.Mountpoint))
	}
	return err
}

// ChangePassword is the password stage for user (root): it re-wraps the
// home's key under newPassword so that the next login unlocks it. With
// oldPassword it does so as the user; without one (root reset the
// password), or when the old one does not open it, it asks the home's
// running daemon, which still holds the key. Where neither works the log
// says exactly what the user runs.
func ChangePassword(user string, oldPassword, newPassword []byte, o SessionOptions) error {
	e, u, err := lookup(user)
	if err != nil || e == nil {
		return err
	}
	if len(newPassword) == 0 {
		return nil
	}
	why := "no old password (changed by root)"
	if len(oldPassword) > 0 {
		err := rewrapAsUser(u, e.Cipher, oldPassword, newPassword, o.exe())
		if err == nil {
			o.Log.printf(Notice, "%s: re-wrapped the key of the encrypted home %s under the new login password", user, e.Mountpoint)
			return nil
		}
		if !errors.Is(err, ErrWrongPassword) {
			o.Log.printf(Error, "%s: re-wrapping the key of %s failed: %v", user, e.Cipher, err)
			return err
		}
		why = "the old login password does not open it"
	}
	err = RewrapThroughDaemon(u.UID, newPassword)
	if err == nil {
		o.Log.printf(Notice, "%s: re-wrapped the key of the encrypted home %s under the new login password (through its running daemon: %s)", user, e.Mountpoint, why)
		return nil
	}
	o.Log.printf(Warning, "%s: the encrypted home %s still opens with its previous password (%s; %v). "+
		"The user runs: cryptfs passwd %s (previous password, then the new login password), or, without it: cryptfs passwd --recovery-key %s",
		user, e.Mountpoint, why, err, e.Cipher, e.Cipher)
	return fmt.Errorf("%s: key not re-wrapped: %s", user, why)
}

// rewrapAsUser runs Rewrap as u in a child process (cryptfs home rewrap),
// the passwords on its standard input.
func rewrapAsUser(u *User, cipher string, oldPassword, newPassword []byte, exe string) error {
	cmd := exec.Command(exe, "home", "rewrap", "--", cipher)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Credential()}
	in := make([]byte, 0, len(oldPassword)+len(newPassword)+2)
	in = append(append(append(append(in, oldPassword...), 0), newPassword...), 0)
	defer wipe(in)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(string(out))
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == exitWrongPassword {
		return fmt.Errorf("%s: %w", msg, ErrWrongPassword)
	}
	return fmt.Errorf("%v: %s", err, msg)
}

// exitWrongPassword is the exit code of cryptfs home rewrap for a wrong
// old password (as cryptfs's exitWrongPassword).
const exitWrongPassword = 10

// ReadSecrets reads up to n secrets from r, each ended by a NUL byte (or
// by the end of the input), at most 4 KiB each: the format in which the
// PAM module hands over the passwords. Secrets missing at the end are
// empty.
func ReadSecrets(r io.Reader, n int) ([][]byte, error) {
	out := make([][]byte, n)
	for i := range out {
		s, err := readSecret(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// lookup returns user's registry entry (nil when there is none) and
// account.
func lookup(user string) (*Entry, *User, error) {
	e, err := Load(user)
	if errors.Is(err, ErrNoEntry) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := LookupUser(user)
	if err != nil {
		return nil, nil, err
	}
	return &e, u, nil
}

// OpenLog opens the log of uid's home for appending (root's, 0600).
func OpenLog(uid int) (*os.File, error) {
	if err := runDir(); err != nil {
		return nil, err
	}
	return os.OpenFile(LogPath(uid), os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
