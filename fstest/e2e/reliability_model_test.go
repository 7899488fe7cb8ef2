package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/fstest"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// The reliability tests' sizes: CI size by default, full size with FSTEST_STRESS=1
// (make stress). Single knobs override either.
//
//	FSTEST_STRESS=1            full size for every reliability test
//	FSTEST_MODEL_OPS=N         operations of the model run
//	FSTEST_MODEL_SEED=N        seed of the model run (default: from the clock, logged)
//	FSTEST_MODEL_REPLAY=FILE   replay a saved op log instead of generating one
//	FSTEST_SHRINK_BUDGET=DUR   time allowed for shrinking a failure (default 3m)

// stress reports whether the tests run at full size.
func stress() bool { return os.Getenv("FSTEST_STRESS") == "1" }

// envInt returns the integer in the environment variable name, or def.
func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// sized returns ci, or full under FSTEST_STRESS=1.
func sized(ci, full int) int {
	if stress() {
		return full
	}
	return ci
}

// modelSeed returns FSTEST_MODEL_SEED, or a seed from the clock.
func modelSeed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("FSTEST_MODEL_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("FSTEST_MODEL_SEED=%q: %v", v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// TestReliabilityModel runs the model checker against a real cryptfs mount, with a
// reference directory on the lower filesystem, in the tier the kernel picks (auto) and
// with no caching (off): 10k operations each by default, 200k under FSTEST_STRESS=1,
// with a remount every 2000 operations so that what was stored (not only
// what is cached) is compared. A failure prints the seed, saves the op log and shrinks it
// to a short sequence that still fails, which it prints.
func TestReliabilityModel(t *testing.T) {
	for _, tier := range []string{"auto", "off"} {
		t.Run(tier, func(t *testing.T) {
			nops := int(envInt(t, "FSTEST_MODEL_OPS", int64(sized(10_000, 200_000))))
			runModelOnCryptfs(t, []string{"--fast-path=" + tier}, nops)
		})
	}
}

// modelMount is a cryptfs mount that model runs can remount.
type modelMount struct {
	t      *testing.T
	args   []string
	cipher string
	m      *cryptfstest.Mount
	logs   strings.Builder // what earlier daemons of this cipher directory logged
}

func newModelMount(t *testing.T, args []string) *modelMount {
	c := &modelMount{t: t, args: args, cipher: cryptfstest.Init(t)}
	c.m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: c.cipher, Args: args})
	return c
}

// remount returns a fstest.ModelConfig.Remount for the directory sub of the mount.
func (c *modelMount) remount(sub string) func() (string, error) {
	return func() (string, error) {
		cryptfstest.Unmount(c.t, c.m)
		c.logs.WriteString(c.m.Log())
		c.m = cryptfstest.NewMount(c.t, cryptfstest.MountOptions{Cipher: c.cipher, Args: c.args})
		return filepath.Join(c.m.Dir, sub), nil
	}
}

// log returns everything the daemons of this mount logged.
func (c *modelMount) log() string { return c.logs.String() + c.m.Log() }

// alive reports whether the current daemon runs.
func (c *modelMount) alive() bool {
	select {
	case <-c.m.Done():
		return false
	default:
		return true
	}
}

// runModelOnCryptfs generates (or replays) a model run on a fresh mount.
func runModelOnCryptfs(t *testing.T, mountArgs []string, nops int) {
	mm := newModelMount(t, mountArgs)
	refRoot := t.TempDir()
	sut, ref := filepath.Join(mm.m.Dir, "model"), filepath.Join(refRoot, "model")
	mustDo(t, os.Mkdir(sut, 0o755))
	mustDo(t, os.Mkdir(ref, 0o755))

	var (
		ops  []fstest.Op
		div  *fstest.Divergence
		err  error
		seed uint64
	)
	start := time.Now()
	if file := os.Getenv("FSTEST_MODEL_REPLAY"); file != "" {
		if ops, err = fstest.LoadOps(file); err != nil {
			t.Fatal(err)
		}
		t.Logf("replaying %d operations from %s", len(ops), file)
		div, err = fstest.Replay(sut, ref, ops, fstest.ModelConfig{CheckEvery: 1, Remount: mm.remount("model")})
	} else {
		seed = modelSeed(t)
		t.Logf("model run: seed %d, %d operations (reproduce: FSTEST_MODEL_SEED=%d FSTEST_MODEL_OPS=%d go test ./fstest/e2e -run '^%s$')",
			seed, nops, seed, nops, t.Name())
		ops, div, err = fstest.RunModel(sut, ref, fstest.ModelConfig{Seed: seed, Ops: nops, Remount: mm.remount("model")})
	}
	if err != nil {
		t.Fatalf("model checker failed (seed %d): %v\ndaemon log (tail):\n%s", seed, err, tail(mm.log(), 40))
	}
	t.Logf("%d operations in %v", len(ops), time.Since(start).Round(time.Millisecond))
	if div == nil {
		if !mm.alive() {
			t.Fatalf("the daemon exited:\n%s", tail(mm.log(), 40))
		}
		if strings.Contains(mm.log(), `"level":"error"`) {
			t.Errorf("the daemon logged errors:\n%s", tail(mm.log(), 40))
		}
		return
	}
	reportDivergence(t, mm, seed, div)
}

// reportDivergence saves the failing op log, shrinks it and fails the test with both.
func reportDivergence(t *testing.T, mm *modelMount, seed uint64, div *fstest.Divergence) {
	t.Helper()
	full := filepath.Join(os.TempDir(), fmt.Sprintf("fstest-model-%d.json", seed))
	if err := fstest.SaveOps(full, div.Ops); err != nil {
		t.Log(err)
	}
	alive := "alive"
	if !mm.alive() {
		alive = "DEAD"
	}
	log := mm.log()
	budget := 3 * time.Minute
	if v := os.Getenv("FSTEST_SHRINK_BUDGET"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			budget = d
		}
	}
	msg := fmt.Sprintf("cryptfs diverged from the reference (seed %d, daemon %s):\n  %v\n"+
		"full op log (%d operations) saved to %s\n", seed, alive, div, len(div.Ops), full)
	shrunk, how := shrinkOnCryptfs(t, mm, div.Ops, budget)
	if shrunk != nil {
		small := filepath.Join(os.TempDir(), fmt.Sprintf("fstest-model-%d-min.json", seed))
		if err := fstest.SaveOps(small, shrunk); err != nil {
			t.Log(err)
		}
		d := replayOnce(t, mm, shrunk, how)
		msg += fmt.Sprintf("shrunk to %d operations (replayed on a %s), saved to %s; replay with\n"+
			"  FSTEST_MODEL_REPLAY=%s go test ./fstest/e2e -run '^TestReliabilityModel$'\n%s  -> %v\n",
			len(shrunk), how, small, small, fstest.FormatOps(shrunk), d)
	} else {
		msg += "the failure did not reproduce on a fresh directory or a fresh mount; last operations:\n" +
			fstest.FormatOps(div.Ops[max(0, len(div.Ops)-20):])
	}
	t.Fatalf("%s\ndaemon log (tail):\n%s", msg, tail(log, 40))
}

// shrinkOnCryptfs shrinks ops with replays in fresh directories of the same mount or, if the
// failure needs a fresh daemon, on fresh mounts. It returns nil if neither reproduces it.
func shrinkOnCryptfs(t *testing.T, mm *modelMount, ops []fstest.Op, budget time.Duration) ([]fstest.Op, string) {
	for _, how := range []string{"same mount", "fresh mount"} {
		if how == "same mount" && !mm.alive() {
			continue // the daemon died: only fresh mounts can tell
		}
		fails := func(sub []fstest.Op) (bool, error) { return replayOnce(t, mm, sub, how) != nil, nil }
		if ok, _ := fails(ops); !ok {
			continue
		}
		shrunk, err := fstest.Shrink(ops, fails, budget)
		if err != nil {
			t.Logf("shrinking stopped: %v", err)
		}
		return shrunk, how
	}
	return nil, ""
}

var replays int

// replayOnce replays ops in fresh directories, on the same mount (remounting it for
// OpRemount) or on a fresh one, and returns the divergence, if any.
func replayOnce(t *testing.T, mm *modelMount, ops []fstest.Op, how string) *fstest.Divergence {
	t.Helper()
	replays++
	sub := fmt.Sprintf("replay-%d", replays)
	if how == "fresh mount" {
		mm = newModelMount(t, mm.args)
		defer func() {
			if mm.alive() {
				cryptfstest.Unmount(t, mm.m)
			}
		}()
	} else if !mm.alive() {
		return nil
	}
	sut := filepath.Join(mm.m.Dir, sub)
	ref := filepath.Join(t.TempDir(), "replay")
	if err := os.Mkdir(sut, 0o755); err != nil {
		return &fstest.Divergence{Detail: "mkdir on the mount: " + err.Error()}
	}
	mustDo(t, os.Mkdir(ref, 0o755))
	defer func() {
		if mm.alive() {
			os.RemoveAll(filepath.Join(mm.m.Dir, sub))
		}
	}()
	d, err := fstest.Replay(sut, ref, ops, fstest.ModelConfig{Remount: mm.remount(sub)})
	if err != nil {
		t.Logf("replay: %v", err)
		return nil
	}
	return d
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
