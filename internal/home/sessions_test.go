package home

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestSessionsCount: concurrent stages of one user count exactly, under
// the lock, and the count never goes below zero.
func TestSessionsCount(t *testing.T) {
	defer func(d string) { RunDir = d }(RunDir)
	RunDir = filepath.Join(t.TempDir(), "run", "sessions")
	const n = 20
	add := func(delta int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := LockSessions(1234)
				if err != nil {
					errs <- err
					return
				}
				defer s.Unlock()
				s.State.Sessions = max(s.State.Sessions+delta, 0)
				errs <- s.Save()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() int {
		s, err := LockSessions(1234)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Unlock()
		return s.State.Sessions
	}
	add(+1)
	if got := count(); got != n {
		t.Errorf("%d sessions after %d concurrent opens", got, n)
	}
	add(-1)
	add(-1)
	if got := count(); got != 0 {
		t.Errorf("%d sessions after more closes than opens, want 0", got)
	}
	st, err := os.Stat(RunDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("RunDir: %v, mode %v, want 0700", err, st.Mode().Perm())
	}
}

// TestSessionsTornState: a state file that does not parse starts over
// instead of refusing every login.
func TestSessionsTornState(t *testing.T) {
	defer func(d string) { RunDir = d }(RunDir)
	RunDir = filepath.Join(t.TempDir(), "run", "sessions")
	if err := runDir(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(StatePath(7), []byte(`{"sessions": 3,`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LockSessions(7)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unlock()
	if s.State.Sessions != 0 {
		t.Errorf("torn state read as %+v", s.State)
	}
}

// TestRunDirRefusesOthers: a RunDir that is not root's 0700 is refused.
func TestRunDirRefusesOthers(t *testing.T) {
	defer func(d string) { RunDir = d }(RunDir)
	RunDir = filepath.Join(t.TempDir(), "run", "sessions")
	if err := os.MkdirAll(RunDir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(RunDir, 0o777)
	if _, err := LockSessions(1); err == nil {
		t.Errorf("LockSessions accepted a world-writable %s", RunDir)
	}
}
