package home

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/control"
)

// State is what root remembers about a user's home between session
// stages (/run/cryptfs/sessions/UID).
type State struct {
	// Sessions counts the open sessions: every open_session adds one,
	// every close_session takes one, whether or not the home could be
	// mounted in it (a session without the password, e.g. a key-based
	// ssh login, counts too).
	Sessions int `json:"sessions"`
	// Daemon is the process serving the home, as started by the last
	// mount (zero when not mounted by a session).
	Daemon Proc `json:"daemon"`
	// Retry is the background process that unmounts the home once it is
	// no longer busy, after the last session closed (zero when none).
	Retry Proc `json:"retry"`
}

// Proc identifies a process across pid reuse: its pid and start time.
type Proc struct {
	PID   int    `json:"pid,omitempty"`
	Start uint64 `json:"start,omitempty"`
}

// ProcOf returns the Proc of a running process (zero if it is gone).
func ProcOf(pid int) Proc {
	start, state, ok := control.ProcessStart(pid)
	if !ok || state == 'Z' {
		return Proc{}
	}
	return Proc{PID: pid, Start: start}
}

// Running reports whether the process still runs (a zombie does not).
func (p Proc) Running() bool {
	if p.PID <= 0 {
		return false
	}
	start, state, ok := control.ProcessStart(p.PID)
	return ok && start == p.Start && state != 'Z'
}

// Sessions is the locked session state of one uid: LockSessions takes an
// exclusive flock on the state file, Save writes it, Unlock releases it.
// Every change of a home's mounted state happens under this lock, so two
// session stages of one user never race.
type Sessions struct {
	UID   int
	State State
	f     *os.File
}

// runDir creates RunDir (root, 0700, and its parent 0700 when missing)
// and checks that it is root's alone.
func runDir() error {
	for _, dir := range []string{filepath.Dir(RunDir), RunDir} {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != uint32(os.Geteuid()) || st.Mode&0o077 != 0 {
			return fmt.Errorf("%s is not a directory of mode 0700 owned by uid %d: remove it", dir, os.Geteuid())
		}
	}
	return nil
}

// StatePath returns the session state file of uid.
func StatePath(uid int) string { return filepath.Join(RunDir, strconv.Itoa(uid)) }

// LogPath returns the log of uid's home: its daemon's output and the
// session stages' messages.
func LogPath(uid int) string { return StatePath(uid) + ".log" }

// SocketPath returns the socket on which the daemon of uid's home takes
// re-wrap requests from root.
func SocketPath(uid int) string { return StatePath(uid) + ".sock" }

// LockSessions locks and reads the session state of uid (an empty state
// if there is none yet). The caller must Unlock it.
func LockSessions(uid int) (*Sessions, error) {
	if err := runDir(); err != nil {
		return nil, err
	}
	path := StatePath(uid)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	s := &Sessions{UID: uid, f: f}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		s.Unlock()
		return nil, err
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &s.State); err != nil {
			// A torn or foreign file: start over rather than refuse every
			// login. The count is a hint; the mount table is the truth.
			s.State = State{}
		}
	}
	if s.State.Sessions < 0 {
		s.State.Sessions = 0
	}
	return s, nil
}

// Save writes the state back (the lock stays held).
func (s *Sessions) Save() error {
	data, err := json.Marshal(s.State)
	if err != nil {
		return err
	}
	if err := s.f.Truncate(0); err != nil {
		return err
	}
	if _, err := s.f.WriteAt(append(data, '\n'), 0); err != nil {
		return fmt.Errorf("write %s: %w", s.f.Name(), err)
	}
	return nil
}

// Unlock releases the lock.
func (s *Sessions) Unlock() {
	if s.f != nil {
		s.f.Close() // releases the flock
		s.f = nil
	}
}
