package fstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	m      *Mount
	logs   strings.Builder // what earlier daemons of this cipher directory logged
}

func newModelMount(t *testing.T, args []string) *modelMount {
	c := &modelMount{t: t, args: args, cipher: Init(t)}
	c.m = MountCryptfs(t, MountOptions{Cipher: c.cipher, Args: args})
	return c
}

// remount returns a ModelConfig.Remount for the directory sub of the mount.
func (c *modelMount) remount(sub string) func() (string, error) {
	return func() (string, error) {
		c.m.Unmount(c.t)
		c.logs.WriteString(c.m.Log())
		c.m = MountCryptfs(c.t, MountOptions{Cipher: c.cipher, Args: c.args})
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
		ops  []Op
		div  *Divergence
		err  error
		seed uint64
	)
	start := time.Now()
	if file := os.Getenv("FSTEST_MODEL_REPLAY"); file != "" {
		if ops, err = LoadOps(file); err != nil {
			t.Fatal(err)
		}
		t.Logf("replaying %d operations from %s", len(ops), file)
		div, err = Replay(sut, ref, ops, ModelConfig{CheckEvery: 1, Remount: mm.remount("model")})
	} else {
		seed = modelSeed(t)
		t.Logf("model run: seed %d, %d operations (reproduce: FSTEST_MODEL_SEED=%d FSTEST_MODEL_OPS=%d go test ./fstest -run '^%s$')",
			seed, nops, seed, nops, t.Name())
		ops, div, err = RunModel(sut, ref, ModelConfig{Seed: seed, Ops: nops, Remount: mm.remount("model")})
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
func reportDivergence(t *testing.T, mm *modelMount, seed uint64, div *Divergence) {
	t.Helper()
	full := filepath.Join(os.TempDir(), fmt.Sprintf("fstest-model-%d.json", seed))
	if err := SaveOps(full, div.Ops); err != nil {
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
		if err := SaveOps(small, shrunk); err != nil {
			t.Log(err)
		}
		d := replayOnce(t, mm, shrunk, how)
		msg += fmt.Sprintf("shrunk to %d operations (replayed on a %s), saved to %s; replay with\n"+
			"  FSTEST_MODEL_REPLAY=%s go test ./fstest -run '^TestReliabilityModel$'\n%s  -> %v\n",
			len(shrunk), how, small, small, FormatOps(shrunk), d)
	} else {
		msg += "the failure did not reproduce on a fresh directory or a fresh mount; last operations:\n" +
			FormatOps(div.Ops[max(0, len(div.Ops)-20):])
	}
	t.Fatalf("%s\ndaemon log (tail):\n%s", msg, tail(log, 40))
}

// shrinkOnCryptfs shrinks ops with replays in fresh directories of the same mount or, if the
// failure needs a fresh daemon, on fresh mounts. It returns nil if neither reproduces it.
func shrinkOnCryptfs(t *testing.T, mm *modelMount, ops []Op, budget time.Duration) ([]Op, string) {
	for _, how := range []string{"same mount", "fresh mount"} {
		if how == "same mount" && !mm.alive() {
			continue // the daemon died: only fresh mounts can tell
		}
		fails := func(sub []Op) (bool, error) { return replayOnce(t, mm, sub, how) != nil, nil }
		if ok, _ := fails(ops); !ok {
			continue
		}
		shrunk, err := Shrink(ops, fails, budget)
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
func replayOnce(t *testing.T, mm *modelMount, ops []Op, how string) *Divergence {
	t.Helper()
	replays++
	sub := fmt.Sprintf("replay-%d", replays)
	if how == "fresh mount" {
		mm = newModelMount(t, mm.args)
		defer func() {
			if mm.alive() {
				mm.m.Unmount(t)
			}
		}()
	} else if !mm.alive() {
		return nil
	}
	sut := filepath.Join(mm.m.Dir, sub)
	ref := filepath.Join(t.TempDir(), "replay")
	if err := os.Mkdir(sut, 0o755); err != nil {
		return &Divergence{Detail: "mkdir on the mount: " + err.Error()}
	}
	mustDo(t, os.Mkdir(ref, 0o755))
	defer func() {
		if mm.alive() {
			os.RemoveAll(filepath.Join(mm.m.Dir, sub))
		}
	}()
	d, err := Replay(sut, ref, ops, ModelConfig{Remount: mm.remount(sub)})
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

// TestModelPlainDirs runs the model checker with two plain directories of the same
// filesystem: they must never diverge, or the checker itself (generator, executor or
// comparison) is nondeterministic and its reports on cryptfs cannot be trusted.
func TestModelPlainDirs(t *testing.T) {
	seed := modelSeed(t)
	// At different depths, so that anything resolving outside the run's directory (a
	// symlink target climbing out with "..") would differ.
	a, b := t.TempDir(), filepath.Join(t.TempDir(), "one", "level", "deeper")
	mustDo(t, os.MkdirAll(b, 0o755))
	mustDo(t, os.Chmod(a, 0o755))
	ops, div, err := RunModel(a, b, ModelConfig{Seed: seed, Ops: sized(3000, 20000), CheckEvery: 50})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	if div != nil {
		t.Fatalf("seed %d: two plain directories diverged: %v\n%s", seed, div, FormatOps(div.Ops[max(0, div.Index-20):]))
	}
	// The generator must actually exercise every kind of operation, mostly successfully.
	count := map[OpKind]int{}
	for _, op := range ops {
		count[op.Kind]++
	}
	for _, k := range AllOpKinds {
		if count[k] == 0 {
			t.Errorf("seed %d: no %s among %d operations", seed, k, len(ops))
		}
	}
}

// TestModelGeneratorDeterministic checks that one seed gives one op sequence.
func TestModelGeneratorDeterministic(t *testing.T) {
	run := func() []Op {
		a, b := t.TempDir(), t.TempDir()
		ops, div, err := RunModel(a, b, ModelConfig{Seed: 42, Ops: 500})
		if err != nil || div != nil {
			t.Fatalf("run: %v %v", err, div)
		}
		return ops
	}
	x, y := run(), run()
	if FormatOps(x) != FormatOps(y) {
		t.Fatalf("seed 42 gave two different op sequences")
	}
}

// TestModelOpLogRoundTrip saves and loads an op log with odd names and times.
func TestModelOpLogRoundTrip(t *testing.T) {
	ops := []Op{
		{Kind: OpWrite, Path: genFileNames[5], Off: 4095, Len: 4097, Seed: 1<<64 - 1},
		{Kind: OpSymlink, Path: "d0/" + genFileNames[4], Target: "x\x01\nä"},
		{Kind: OpUtimens, Path: "f0", Times: [2][2]int64{{0, unix.UTIME_OMIT}, {1 << 33, 999999999}}, Flags: unix.AT_SYMLINK_NOFOLLOW},
	}
	p := filepath.Join(t.TempDir(), "ops.json")
	mustDo(t, SaveOps(p, ops))
	got, err := LoadOps(p)
	mustDo(t, err)
	if FormatOps(got) != FormatOps(ops) {
		t.Fatalf("round trip changed the log:\n%s\nwant\n%s", FormatOps(got), FormatOps(ops))
	}
}

// TestModelDetectsPlantedDifference plants one difference in the SUT directory behind the
// checker's back and requires the next tree check to report exactly it.
func TestModelDetectsPlantedDifference(t *testing.T) {
	plants := []struct {
		name   string
		plant  func(dir string) error
		detail string
	}{
		{"content", func(dir string) error { return os.WriteFile(dir+"/planted", []byte("x"), 0o644) }, `"/planted": unexpected`},
		{"xattr", func(dir string) error { return unix.Setxattr(dir, "user.planted", []byte("v"), 0) }, `"user.planted" unexpected`},
		{"mode", func(dir string) error { return os.Chmod(dir, 0o700) }, `"/": mode`},
	}
	for _, p := range plants {
		t.Run(p.name, func(t *testing.T) {
			a, b := t.TempDir(), t.TempDir()
			mustDo(t, os.Chmod(a, 0o755))
			mustDo(t, os.Chmod(b, 0o755))
			cfg := ModelConfig{Seed: 7, Ops: 400, CheckEvery: 50}
			cfg.afterOp = func(i int) {
				if i == 120 {
					mustDo(t, p.plant(a))
				}
			}
			_, div, err := RunModel(a, b, cfg)
			mustDo(t, err)
			if div == nil {
				t.Fatal("the planted difference was not reported")
			}
			if div.Index < 120 || div.Index > 149 {
				t.Errorf("reported after operation %d, want the first check after 120 (149)", div.Index)
			}
			if !strings.Contains(div.Detail, p.detail) {
				t.Errorf("report %q does not mention %q", div.Detail, p.detail)
			}
		})
	}
}

// TestCompareTreesDetects checks each kind of difference CompareTrees promises to find.
func TestCompareTreesDetects(t *testing.T) {
	build := func(t *testing.T, dir string) {
		mustDo(t, os.Chmod(dir, 0o755))
		mustDo(t, os.Mkdir(dir+"/d", 0o755))
		mustDo(t, os.WriteFile(dir+"/d/f", randBytes(1, 10000), 0o644))
		mustDo(t, os.WriteFile(dir+"/g", []byte("gg"), 0o600))
		mustDo(t, os.Link(dir+"/d/f", dir+"/h"))
		mustDo(t, os.Symlink("d/f", dir+"/s"))
		mustDo(t, unix.Setxattr(dir+"/g", "user.k", []byte("v"), 0))
	}
	cases := []struct {
		name   string
		change func(dir string) error
		want   string
	}{
		{"equal", func(string) error { return nil }, ""},
		{"one byte", func(d string) error {
			f, err := os.OpenFile(d+"/d/f", os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte{^randBytes(1, 10000)[9000]}, 9000)
			return err
		}, `content differs: first difference at byte 9000`},
		{"size", func(d string) error { return os.Truncate(d+"/g", 1) }, `"/g": size 1, want 2`},
		{"mode", func(d string) error { return os.Chmod(d+"/g", 0o644) }, `"/g": mode 0100644, want 0100600`},
		{"missing name", func(d string) error { return os.Remove(d + "/s") }, `"/s": missing`},
		{"extra name", func(d string) error { return os.Mkdir(d+"/e", 0o755) }, `"/e": unexpected entry`},
		{"symlink target", func(d string) error {
			if err := os.Remove(d + "/s"); err != nil {
				return err
			}
			return os.Symlink("d/g", d+"/s")
		}, `symlink target "d/g"`},
		{"xattr value", func(d string) error { return unix.Setxattr(d+"/g", "user.k", []byte("w"), 0) }, `"user.k" value`},
		{"xattr missing", func(d string) error { return unix.Removexattr(d+"/g", "user.k") }, `"user.k" missing`},
		{"hard link broken", func(d string) error {
			data, err := os.ReadFile(d + "/h")
			if err != nil {
				return err
			}
			if err := os.Remove(d + "/h"); err != nil {
				return err
			}
			return os.WriteFile(d+"/h", data, 0o644)
		}, `"/h": link count 1, want 2`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := t.TempDir(), t.TempDir()
			build(t, a)
			build(t, b)
			mustDo(t, c.change(a))
			err := CompareTrees(a, b)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("equal trees reported different: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("difference not found (want %q)", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("report %q does not contain %q", err, c.want)
			}
		})
	}
}

// TestShrinkFindsMinimal shrinks a synthetic failure that needs exactly two operations,
// in order, and must come back with just those two.
func TestShrinkFindsMinimal(t *testing.T) {
	var ops []Op
	for i := 0; i < 1000; i++ {
		ops = append(ops, Op{Kind: OpWrite, Path: fmt.Sprint(i)})
	}
	calls := 0
	fails := func(sub []Op) (bool, error) {
		calls++
		seen := false
		for _, op := range sub {
			if op.Path == "137" {
				seen = true
			}
			if op.Path == "862" && seen {
				return true, nil
			}
		}
		return false, nil
	}
	got, err := Shrink(ops, fails, time.Minute)
	mustDo(t, err)
	if len(got) != 2 || got[0].Path != "137" || got[1].Path != "862" {
		t.Fatalf("shrunk to %v, want operations 137 and 862", FormatOps(got))
	}
	t.Logf("%d replays", calls)
}
