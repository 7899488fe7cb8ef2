package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// params are the sizes and repetitions of one mode.
type params struct {
	Mode        string `json:"mode"` // "full" or "quick"
	StreamBytes int64  `json:"stream_bytes"`
	RandIOBytes int64  `json:"rand_io_bytes"` // read or written by each 4 KiB random-I/O run
	SmallFiles  int    `json:"small_files"`
	SmallSize   int    `json:"small_file_bytes"`
	// Reps are the measured repetitions per workload (the median counts);
	// WarmRuns the timed runs of a warm workload after one warm-up.
	Reps       map[string]int `json:"reps"`
	WarmRuns   int            `json:"warm_runs"`
	RepTimeout time.Duration  `json:"rep_timeout_ns"`
}

func fullParams() params {
	return params{Mode: "full", StreamBytes: 512 << 20, RandIOBytes: 64 << 20, SmallFiles: 10000, SmallSize: 1024,
		Reps: map[string]int{"write": 5, "read-cold": 5, "randread": 3, "randwrite": 3, "untar": 1,
			"stat-warm": 1, "ls-lR": 1, "stat-cold": 3, "cat-cold": 1, "rm-rf": 1, "create-10k": 3},
		WarmRuns: 5, RepTimeout: 30 * time.Minute}
}

func quickParams() params {
	return params{Mode: "quick", StreamBytes: 128 << 20, RandIOBytes: 8 << 20, SmallFiles: 10000, SmallSize: 1024,
		Reps:     map[string]int{},
		WarmRuns: 3, RepTimeout: 3 * time.Minute}
}

// reps returns the measured repetitions of workload id (default 1).
func (p params) reps(id string) int {
	if n := p.Reps[id]; n > 0 {
		return n
	}
	return 1
}

// measure is what one timed execution of a workload did.
type measure struct {
	Times []time.Duration // one per timed run (warm workloads run several times)
	Bytes int64           // per run
	Ops   int64           // per run
	// AppCPU is the CPU time (user and system) of the workload's own
	// process(es) per run: with the daemon's CPU, a cost figure the load
	// of the machine does not inflate.
	AppCPU time.Duration
}

// workload is one benchmark operation.
type workload struct {
	ID    string
	Title string
	// Unit of the throughput: "MiB/s" (Bytes per second) or an
	// operation rate such as "files/s" (Ops per second).
	Unit string
	// Before each repetition: Cold unmounts, drops every cache and
	// mounts again; Fresh unmounts and mounts (a new daemon, empty
	// kernel caches of the mount, machine caches kept).
	Cold, Fresh bool
	// Prepare runs before each repetition, untimed, before the remount.
	Prepare func(ctx context.Context, b *bench, s system, rep int) error
	// Run is the timed part.
	Run func(ctx context.Context, b *bench, s system, rep int) (measure, error)
	// Finish runs once after the repetitions, untimed.
	Finish func(ctx context.Context, b *bench, s system) error
}

// Paths inside a system's root.
const streamFile = "stream.bin"

// smallDir is where repetition rep of create-10k creates its files (they
// stay until the end: nothing is deleted before a creating workload).
func (b *bench) smallDir(s system, rep int) string {
	return filepath.Join(s.Root(), fmt.Sprintf("small-%d", rep))
}

func (b *bench) streamPath(s system) string { return filepath.Join(s.Root(), streamFile) }

// treePath is where the tree is extracted: the measured first repetition
// of untar puts it at the root, where the workloads after it use it; any
// other repetition (the profiled one) into a directory of its own, so no
// repetition has to delete a tree first.
func (b *bench) treePath(s system, rep int) string {
	return filepath.Join(b.treeParent(s, rep), b.tree.Top)
}

func (b *bench) treeParent(s system, rep int) string {
	if rep == 0 {
		return s.Root()
	}
	return filepath.Join(s.Root(), fmt.Sprintf("extra-%d", rep))
}

// warmRuns is how many timed runs a warm workload makes: one when
// profiling (the profile needs the work, not the statistics).
func (b *bench) warmRuns() int {
	if b.profiling {
		return 1
	}
	return b.p.WarmRuns
}

// helper runs `cryptfs-bench helper NAME ARGS` and decodes its result.
func (b *bench) helper(ctx context.Context, name string, args ...string) (measure, error) {
	out, err := runCmd(ctx, "", b.self, append([]string{"helper", name}, args...)...)
	if err != nil {
		return measure{}, err
	}
	var r helperResult
	if err := json.Unmarshal(out, &r); err != nil {
		return measure{}, fmt.Errorf("helper %s output %q: %w", name, out, err)
	}
	var cpu time.Duration
	for _, c := range r.CPU {
		cpu += c
	}
	if len(r.CPU) > 0 {
		cpu /= time.Duration(len(r.CPU))
	}
	return measure{Times: r.Runs, Bytes: r.Bytes, Ops: r.Ops, AppCPU: cpu}, nil
}

// timed runs a command once and measures its wall time and the CPU time
// of it and its children, with standard output discarded (to /dev/null).
func timed(ctx context.Context, dir string, name string, args ...string) (measure, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 10 * time.Second
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return measure{}, err
	}
	defer devnull.Close()
	var stderr tailBuffer
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		return measure{}, fmt.Errorf("%s: %w: %s", cmd, err, tail(stderr.String(), 600))
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return measure{Times: []time.Duration{d}, AppCPU: cpu}, nil
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}
func (t *tailBuffer) String() string { return string(t.b) }

// removeTree removes path with rm -rf (a child process: it may be on a
// FUSE mount).
func removeTree(ctx context.Context, path string) error {
	_, err := runCmd(ctx, "", "rm", "-rf", path)
	return err
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// preread reads a file on the lower file system so it is in the page cache.
func preread(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// untar extracts the tree into s for repetition rep (GNU tar, as root:
// owners and modes kept).
func (b *bench) untar(ctx context.Context, s system, rep int) (measure, error) {
	if err := os.MkdirAll(b.treeParent(s, rep), 0o755); err != nil {
		return measure{}, err
	}
	return timed(ctx, "", "tar", "-xf", b.tree.Tar, "-C", b.treeParent(s, rep))
}

// fio runs one fio job on the stream file with 4 KiB blocks.
func (b *bench) fio(ctx context.Context, s system, rw string, extra ...string) (measure, error) {
	args := append([]string{"--name=" + rw, "--filename=" + b.streamPath(s), "--rw=" + rw, "--bs=4k",
		"--size=" + strconv.FormatInt(b.p.StreamBytes, 10), "--io_size=" + strconv.FormatInt(b.p.RandIOBytes, 10),
		"--ioengine=psync", "--randrepeat=1", "--norandommap", "--output-format=terse"}, extra...)
	m, err := timed(ctx, "", "fio", args...)
	m.Bytes, m.Ops = b.p.RandIOBytes, b.p.RandIOBytes/4096
	return m, err
}

// workloads returns the workloads in the order they run. Each leaves the
// state the next expects: the stream file from write to randwrite, the
// tree from untar to rm-rf. rm-rf comes last so that no workload creates
// files right after a mass deletion.
func workloads(p params) []workload {
	size := fmt.Sprintf("%d MiB", p.StreamBytes>>20)
	return []workload{
		{
			ID: "write", Title: "stream write " + size + " + fsync", Unit: "MiB/s",
			Prepare: func(ctx context.Context, b *bench, s system, rep int) error {
				return os.RemoveAll(b.streamPath(s))
			},
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				return b.helper(ctx, "write", "-file", b.streamPath(s), "-size", strconv.FormatInt(b.p.StreamBytes, 10))
			},
		},
		{
			ID: "read-cold", Title: "stream read " + size + " (cold)", Unit: "MiB/s", Cold: true,
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				return b.helper(ctx, "read", "-file", b.streamPath(s))
			},
		},
		{
			ID: "randread", Title: fmt.Sprintf("4 KiB random read, %d MiB (cold)", p.RandIOBytes>>20), Unit: "IOPS", Cold: true,
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				return b.fio(ctx, s, "randread")
			},
		},
		{
			ID: "randwrite", Title: fmt.Sprintf("4 KiB random write, %d MiB + fsync (cold)", p.RandIOBytes>>20), Unit: "IOPS", Cold: true,
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				return b.fio(ctx, s, "randwrite", "--end_fsync=1")
			},
			Finish: func(ctx context.Context, b *bench, s system) error {
				return os.Remove(b.streamPath(s))
			},
		},
		{
			ID: "untar", Title: "untar the source tree", Unit: "entries/s", Fresh: true,
			Prepare: func(ctx context.Context, b *bench, s system, rep int) error {
				if exists(b.treePath(s, rep)) {
					if err := removeTree(ctx, b.treePath(s, rep)); err != nil {
						return err
					}
				}
				return preread(b.tree.Tar)
			},
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				m, err := b.untar(ctx, s, rep)
				m.Bytes, m.Ops = b.tree.Bytes, int64(b.tree.Entries)
				return m, err
			},
		},
		{
			ID: "stat-warm", Title: "stat every entry (warm)", Unit: "entries/s",
			Prepare: func(ctx context.Context, b *bench, s system, rep int) error {
				_, err := b.helper(ctx, "stat", "-list", b.tree.AllList, "-root", s.Root())
				return err
			},
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				return b.helper(ctx, "stat", "-list", b.tree.AllList, "-root", s.Root(), "-runs", strconv.Itoa(b.warmRuns()))
			},
		},
		{
			ID: "ls-lR", Title: "ls -lR (warm)", Unit: "entries/s",
			Prepare: func(ctx context.Context, b *bench, s system, rep int) error {
				_, err := timed(ctx, "", "ls", "-lR", b.treePath(s, 0))
				return err
			},
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				m, err := hyperfine(ctx, b, b.warmRuns(), "ls -lR "+b.treePath(s, 0))
				m.Ops = int64(b.tree.Entries)
				return m, err
			},
		},
		{
			ID: "stat-cold", Title: "stat every entry (cold)", Unit: "entries/s", Cold: true,
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				return b.helper(ctx, "stat", "-list", b.tree.AllList, "-root", s.Root())
			},
		},
		{
			ID: "cat-cold", Title: "cat every file (cold)", Unit: "MiB/s", Cold: true,
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				m, err := timed(ctx, s.Root(), "xargs", "-0", "-r", "-a", b.tree.FileList, "cat")
				m.Bytes, m.Ops = b.tree.Bytes, int64(b.tree.Files)
				return m, err
			},
		},
		{
			ID: "create-10k", Title: fmt.Sprintf("create %d files of %d bytes", p.SmallFiles, p.SmallSize), Unit: "files/s",
			Prepare: func(ctx context.Context, b *bench, s system, rep int) error {
				return os.Mkdir(b.smallDir(s, rep), 0o755)
			},
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				return b.helper(ctx, "mkfiles", "-dir", b.smallDir(s, rep),
					"-n", strconv.Itoa(b.p.SmallFiles), "-size", strconv.Itoa(b.p.SmallSize))
			},
		},
		{
			ID: "rm-rf", Title: "rm -rf the tree", Unit: "entries/s",
			Prepare: func(ctx context.Context, b *bench, s system, rep int) error {
				if exists(b.treePath(s, rep)) {
					return nil
				}
				_, err := b.untar(ctx, s, rep)
				return err
			},
			Run: func(ctx context.Context, b *bench, s system, rep int) (measure, error) {
				m, err := timed(ctx, "", "rm", "-rf", b.treePath(s, rep))
				m.Ops = int64(b.tree.Entries)
				return m, err
			},
		},
	}
}

// hyperfine times a command runs times (no shell, no warm-up: the
// workload's Prepare warmed up) and returns each run's wall time and the
// mean CPU time of a run.
func hyperfine(ctx context.Context, b *bench, runs int, command string) (measure, error) {
	out := filepath.Join(b.work, "hyperfine.json")
	if _, err := runCmd(ctx, "", "hyperfine", "-N", "--style", "none", "--runs", strconv.Itoa(runs),
		"--export-json", out, command); err != nil {
		return measure{}, err
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return measure{}, err
	}
	return parseHyperfine(data, runs)
}

// parseHyperfine reads hyperfine's --export-json output for one command.
func parseHyperfine(data []byte, runs int) (measure, error) {
	var res struct {
		Results []struct {
			Times  []float64 `json:"times"`
			User   float64   `json:"user"`
			System float64   `json:"system"`
		} `json:"results"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return measure{}, fmt.Errorf("hyperfine output: %w", err)
	}
	if len(res.Results) != 1 || len(res.Results[0].Times) != runs {
		return measure{}, fmt.Errorf("hyperfine output: want 1 result with %d times, got %.200s", runs, data)
	}
	r := res.Results[0]
	m := measure{AppCPU: time.Duration((r.User + r.System) * float64(time.Second))}
	for _, t := range r.Times {
		m.Times = append(m.Times, time.Duration(t*float64(time.Second)))
	}
	return m, nil
}

// median returns the median of ds (the mean of the middle two for an even
// count), 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
