package lowerwatch

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newWatcher returns a watcher of dir (key 7) and a channel of its
// batches; it skips where fanotify with directory handles is missing.
func newWatcher(t *testing.T, dir string) (*Watcher, chan []Change, chan bool) {
	t.Helper()
	w, err := New()
	if err != nil {
		t.Skipf("no fanotify with FAN_REPORT_DFID_NAME here: %v", err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := w.Add(fd, 7); err != nil {
		t.Fatalf("Add: %v", err)
	}
	batches := make(chan []Change, 1000)
	overflows := make(chan bool, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(func(c []Change, overflow bool) {
			if overflow {
				overflows <- true
				return
			}
			batches <- slices.Clone(c)
		})
	}()
	t.Cleanup(func() {
		w.Close()
		<-done
	})
	return w, batches, overflows
}

// collect gathers the changes reported until quiet for 300 ms.
func collect(batches chan []Change) map[string]Kind {
	got := make(map[string]Kind)
	for {
		select {
		case b := <-batches:
			for _, c := range b {
				got[c.Name] |= c.Kind
			}
		case <-time.After(300 * time.Millisecond):
			return got
		}
	}
}

func sh(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("sh", "-euc", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// TestChangesOfOthers: changes made by another process (sh) are reported
// with their names and kinds; the same changes made by this process are
// not (the daemon's own writes must cause no invalidation).
func TestChangesOfOthers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "old"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "edit"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, batches, _ := newWatcher(t, dir)

	// This process's own changes: nothing reported.
	for _, name := range []string{"own1", "own2"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("own"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(dir, "own1"), filepath.Join(dir, "own3")); err != nil {
		t.Fatal(err)
	}
	if got := collect(batches); len(got) != 0 {
		t.Fatalf("own changes reported: %v", got)
	}

	sh(t, dir, `echo new > new; mv old renamed; echo more >> edit; chmod 600 own2; rm own3; mkdir newdir; mv sub subrenamed; touch .`)
	got := collect(batches)
	want := map[string]Kind{
		"new":        Names | Content, // created, then closed after writing (possibly coalesced or not)
		"old":        Names,
		"renamed":    Names,
		"edit":       Content,
		"own2":       Content,
		"own3":       Names,
		"newdir":     Names,
		"sub":        Names,
		"subrenamed": Names,
		"":           Self,
	}
	for name, k := range want {
		if got[name]&k != k {
			t.Errorf("%q: got kinds %b, want at least %b (all: %v)", name, got[name], k, got)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected change of %q (%b)", name, got[name])
		}
	}
}

// TestOverflow: a burst larger than the kernel's queue, while the
// consumer is busy, is reported as an overflow (the daemon then
// invalidates everything), and Run keeps reporting afterwards.
func TestOverflow(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping a burst of 20,000 creations in -short mode")
	}
	b, err := os.ReadFile("/proc/sys/fs/fanotify/max_queued_events")
	if err != nil {
		t.Skipf("no fanotify queue limit to overflow: %v", err)
	}
	t.Logf("fs.fanotify.max_queued_events = %s", b)
	dir := t.TempDir()
	w, err := New()
	if err != nil {
		t.Skipf("no fanotify with FAN_REPORT_DFID_NAME here: %v", err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := w.Add(fd, 7); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	batches := make(chan []Change, 100000)
	var overflowed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(func(c []Change, overflow bool) {
			<-gate // a consumer busy with its first batch
			if overflow {
				overflowed.Store(true)
				return
			}
			batches <- slices.Clone(c)
		})
	}()
	defer func() {
		w.Close()
		<-done
	}()
	sh(t, dir, `: > first; i=0; while [ $i -lt 20000 ]; do : > f$i; i=$((i+1)); done`)
	close(gate)
	got := collect(batches)
	t.Logf("%d names reported besides the overflow; stats %+v", len(got), w.Stats())
	if !overflowed.Load() {
		t.Fatalf("20,000 creations queued behind a busy consumer: no overflow reported")
	}
	sh(t, dir, `: > after`)
	if got := collect(batches); got["after"] == 0 {
		t.Fatalf("no change reported after the overflow: %v", got)
	}
}
