package control

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"github.com/cryptfs/cryptfs/internal/treelock"
)

// State is what is known of a mount's daemon.
type State int

const (
	// Live: the daemon answers on its control socket.
	Live State = iota
	// Unreachable: the daemon runs (it holds the tree's lock) but its
	// control socket does not answer (removed with the runtime
	// directory, for example when logind cleans /run/user/<uid> at the
	// user's last logout).
	Unreachable
	// Dead: the daemon has exited and left its mount behind (killed,
	// crashed): every request on the mount fails with ENOTCONN.
	Dead
	// Unknown: neither its socket nor the tree's lock tells (the cipher
	// directory moved away, or another user's processes cannot be seen).
	Unknown
)

func (s State) String() string {
	return [...]string{"live", "unreachable", "dead", "unknown"}[s]
}

// Daemon is a cryptfs mount and what is known of the daemon serving it.
type Daemon struct {
	Mount  mountinfo.Mount
	State  State
	Status Status // Live: what the daemon said
	// PID is the daemon's process (Live, and Unreachable when one process
	// holds the tree), StartTicks when it started (to tell it from a
	// later process with its pid); 0 when unknown.
	PID        int
	StartTicks uint64
	// Why says why the socket did not answer (all but Live).
	Why error
}

// Running reports whether the daemon's process still runs.
func (d Daemon) Running() bool {
	if d.PID <= 0 {
		return false
	}
	return Status{PID: d.PID, StartTicks: d.StartTicks}.Running()
}

// ErrNotCryptfs means nothing cryptfs is mounted at the path.
var ErrNotCryptfs = errors.New("not a cryptfs mount")

// Find finds the cryptfs mount at the absolute path mnt and its daemon,
// from the mount itself: its owner (user_id) and connection device name
// the control socket; the lock the daemon holds on its cipher directory
// (the mount's source) tells a daemon without a socket from a dead one.
// Nothing here depends on the caller's environment, and nothing asks the
// mount's file system anything.
func Find(mnt string) (Daemon, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return Daemon{}, err
	}
	return find(ms, mnt)
}

func find(ms []mountinfo.Mount, mnt string) (Daemon, error) {
	var d Daemon
	found := false
	for _, m := range ms {
		if m.Mountpoint == filepath.Clean(mnt) {
			d.Mount, found = m, true // the topmost
		}
	}
	if !found {
		return d, fmt.Errorf("%s: %w", mnt, ErrNotCryptfs)
	}
	if !d.Mount.IsCryptfs() {
		return d, fmt.Errorf("%s: %w (it is %s)", mnt, ErrNotCryptfs, d.Mount.FSType)
	}
	st, err := StatusOf(d.Mount)
	if err == nil {
		d.State, d.Status, d.PID, d.StartTicks = Live, st, st.PID, st.StartTicks
		return d, nil
	}
	d.Why = err
	if errors.Is(err, ErrImpostor) {
		d.State = Unknown
		return d, nil
	}
	holders, herr := treelock.Holders(d.Mount.Source)
	switch {
	case herr != nil || !filepath.IsAbs(d.Mount.Source):
		d.State = Unknown
	case len(holders) == 0:
		d.State = Dead
	default:
		d.State = Unreachable
		if len(holders) == 1 {
			d.PID = holders[0].PID
			d.StartTicks, _, _ = ProcessStart(d.PID)
		}
	}
	return d, nil
}
