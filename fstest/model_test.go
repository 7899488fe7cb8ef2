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

// The model checker's own tests, on plain directories: it must never see a difference
// between two of them, and it must find every difference planted behind its back.
// FSTEST_STRESS=1 runs them at full size, FSTEST_MODEL_SEED=N with a given seed (as the
// reliability tests in fstest/e2e).

// sized returns ci, or full under FSTEST_STRESS=1.
func sized(ci, full int) int {
	if os.Getenv("FSTEST_STRESS") == "1" {
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

// mustDo fails the test at once on err.
func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
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
