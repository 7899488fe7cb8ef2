package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bench is one benchmark run.
type bench struct {
	p       params
	self    string // this binary, for the helpers
	work    string // scratch directory on the lower file system
	tree    treeInfo
	profile bool   // profile the cryptfs daemons in an extra repetition
	profDir string // where profiles go
	// profiling is set while the profiled repetition runs: warm
	// workloads then run once instead of WarmRuns times.
	profiling bool
	lg        *log.Logger
}

// repResult is one measured (or profiled) repetition.
type repResult struct {
	Wall     time.Duration   `json:"wall_ns"`  // median of Times
	Times    []time.Duration `json:"times_ns"` // each timed run
	Bytes    int64           `json:"bytes"`
	Ops      int64           `json:"ops"`
	AppCPU   time.Duration   `json:"workload_cpu_ns"`    // the workload's own CPU per run
	CPU      time.Duration   `json:"daemon_cpu_ns"`      // daemon CPU per run
	PeakKB   int64           `json:"daemon_peak_rss_kb"` // daemon VmHWM during the repetition
	Switches int64           `json:"daemon_switches"`    // daemon threads put on a CPU, per run
	Sleeps   int64           `json:"daemon_sleeps"`      // daemon threads that slept (voluntary switches), per run
	Upcalls  upcalls         `json:"upcalls,omitempty"`  // per run
	UpErr    string          `json:"upcalls_error,omitempty"`
	Load     float64         `json:"load1"` // 1-minute load average when it started
	Profiled bool            `json:"profiled,omitempty"`
}

// cell is one workload on one system: its repetitions and their summary.
type cell struct {
	Reps    []repResult     `json:"reps"`
	Error   string          `json:"error,omitempty"`
	Profile *profileSummary `json:"profile,omitempty"`

	Wall       time.Duration `json:"wall_ns"`         // median over the repetitions
	Throughput float64       `json:"throughput"`      // in the workload's unit
	Ratio      float64       `json:"ratio_to_native"` // Wall / native Wall (0 when unknown)
	AppCPU     time.Duration `json:"workload_cpu_ns"` // median over the repetitions
	CPU        time.Duration `json:"daemon_cpu_ns"`   // median over the repetitions
	PeakKB     int64         `json:"daemon_peak_rss_kb"`
	Switches   int64         `json:"daemon_switches"` // of the median repetition (by wall time)
	// CPUPerReq and SwitchesPerReq are the daemon's CPU time and thread
	// wakeups per request that reached it, in the median repetition (0
	// when no request count is known).
	CPUPerReq      time.Duration `json:"daemon_cpu_per_request_ns,omitempty"`
	SwitchesPerReq float64       `json:"daemon_switches_per_request,omitempty"`
	// SleepsPerReq counts only the times a thread slept (voluntary
	// context switches): yields and preemptions left out.
	SleepsPerReq float64 `json:"daemon_sleeps_per_request,omitempty"`
	Upcalls      upcalls `json:"upcalls,omitempty"` // of the median repetition
	// CPURatio is (workload + daemon CPU) / native workload CPU: a cost
	// ratio the machine's load does not inflate (0 when unknown).
	CPURatio float64 `json:"cpu_ratio_to_native"`
}

// runCell runs workload w on system s: the measured repetitions and, when
// profiling a cryptfs system, one more under perf that is not counted.
func (b *bench) runCell(ctx context.Context, w workload, s system) cell {
	var c cell
	reps := b.p.reps(w.ID)
	total := reps
	if b.profile && strings.HasPrefix(s.ID(), "cryptfs") {
		total++
	}
	for rep := range total {
		profiled := rep == reps
		r, prof, err := b.runRep(ctx, w, s, rep, profiled)
		if err != nil {
			c.Error = err.Error()
			return c
		}
		if profiled {
			c.Profile = prof
			continue
		}
		c.Reps = append(c.Reps, r)
	}
	if w.Finish != nil {
		if err := w.Finish(ctx, b, s); err != nil {
			c.Error = fmt.Sprintf("after %s: %v", w.ID, err)
		}
	}
	c.summarize(w)
	return c
}

// summarize fills the summary fields from the repetitions.
func (c *cell) summarize(w workload) {
	if len(c.Reps) == 0 {
		return
	}
	walls := make([]time.Duration, len(c.Reps))
	cpus := make([]time.Duration, len(c.Reps))
	apps := make([]time.Duration, len(c.Reps))
	for i, r := range c.Reps {
		walls[i], cpus[i], apps[i] = r.Wall, r.CPU, r.AppCPU
		c.PeakKB = max(c.PeakKB, r.PeakKB)
	}
	c.Wall, c.CPU, c.AppCPU = median(walls), median(cpus), median(apps)
	// The upcalls of the repetition closest to the median.
	best := 0
	for i, r := range c.Reps {
		if absDur(r.Wall-c.Wall) < absDur(c.Reps[best].Wall-c.Wall) {
			best = i
		}
	}
	c.Upcalls = c.Reps[best].Upcalls
	r := c.Reps[best]
	c.Switches = r.Switches
	if n := r.Upcalls.total(); n > 0 {
		c.CPUPerReq = r.CPU / time.Duration(n)
		c.SwitchesPerReq = float64(r.Switches) / float64(n)
		c.SleepsPerReq = float64(r.Sleeps) / float64(n)
	}
	if c.Wall > 0 {
		if w.Unit == "MiB/s" {
			c.Throughput = float64(r.Bytes) / (1 << 20) / c.Wall.Seconds()
		} else {
			c.Throughput = float64(r.Ops) / c.Wall.Seconds()
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// runRep runs one repetition: Prepare, the remount the workload asks for,
// then the timed Run between two samples of the daemon.
func (b *bench) runRep(ctx context.Context, w workload, s system, rep int, profiled bool) (repResult, *profileSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, b.p.RepTimeout)
	defer cancel()
	// A workload stuck on a dead or hung daemon would never return:
	// when the time is up, cut the connection so it fails instead.
	stopWatch := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			b.lg.Printf("%s on %s: timed out after %s, aborting the connection", w.ID, s.ID(), b.p.RepTimeout)
		}
		s.Abort()
	})
	defer stopWatch()

	label := fmt.Sprintf("%s on %s, rep %d", w.ID, s.ID(), rep+1)
	if profiled {
		label = fmt.Sprintf("%s on %s, profiled", w.ID, s.ID())
	}
	if w.Prepare != nil {
		if err := w.Prepare(ctx, b, s, rep); err != nil {
			return repResult{}, nil, fmt.Errorf("%s: prepare: %w", label, err)
		}
	}
	unix.Sync() // nothing of the previous step is written back meanwhile
	if w.Cold || w.Fresh {
		if err := s.Remount(ctx, w.Cold); err != nil {
			return repResult{}, nil, fmt.Errorf("%s: remount: %w", label, err)
		}
	}

	r := repResult{Load: loadAverage(), Profiled: profiled}
	pid := s.PID()
	var before procSample
	if pid > 0 {
		if err := resetPeakRSS(pid); err != nil {
			return r, nil, err
		}
		var err error
		if before, err = readProc(pid); err != nil {
			return r, nil, err
		}
	}
	up0, uerr := s.Upcalls(ctx)
	var rec *perfRecorder
	var perfData string
	if profiled {
		perfData = filepath.Join(b.work, "perf.data")
		var err error
		if rec, err = startPerf(ctx, perfData); err != nil {
			return r, nil, fmt.Errorf("%s: %w", label, err)
		}
	}

	b.profiling = profiled
	m, err := w.Run(ctx, b, s, rep)
	b.profiling = false

	var perr error
	if rec != nil {
		perr = rec.stop()
	}
	if err != nil {
		return r, nil, fmt.Errorf("%s: %w", label, err)
	}
	if len(m.Times) == 0 {
		return r, nil, fmt.Errorf("%s: no timing", label)
	}
	r.Times, r.Wall, r.Bytes, r.Ops, r.AppCPU = m.Times, median(m.Times), m.Bytes, m.Ops, m.AppCPU
	if pid > 0 {
		after, err := readProc(pid)
		if err != nil {
			return r, nil, err
		}
		r.CPU = (after.CPU - before.CPU) / time.Duration(len(m.Times))
		r.Switches = (after.Switches - before.Switches) / int64(len(m.Times))
		r.Sleeps = (after.Sleeps - before.Sleeps) / int64(len(m.Times))
		r.PeakKB = after.PeakKB
	}
	if uerr == nil {
		up1, err := s.Upcalls(ctx)
		uerr = err
		if err == nil && up0 != nil {
			r.Upcalls = up1.sub(up0).div(len(m.Times))
		}
	}
	if uerr != nil {
		r.UpErr = uerr.Error()
	}
	b.lg.Printf("%-44s %9s  cpu %8s + daemon %8s  peak %6.1f MB  upcalls %d  (load %.1f)", label,
		r.Wall.Round(time.Millisecond), r.AppCPU.Round(time.Millisecond), r.CPU.Round(time.Millisecond),
		float64(r.PeakKB)*1024/1e6, r.Upcalls.total(), r.Load)

	if !profiled {
		return r, nil, nil
	}
	if perr != nil {
		b.lg.Printf("%s: no profile: %v", label, perr)
		return r, nil, nil
	}
	prof, err := b.convertProfile(ctx, perfData, pid, s.ID()+"-"+w.ID)
	if err != nil {
		b.lg.Printf("%s: no profile: %v", label, err)
		return r, nil, nil
	}
	return r, prof, nil
}

// convertProfile turns perf data into NAME.pb.gz in the profile directory
// and returns its summary.
func (b *bench) convertProfile(ctx context.Context, perfData string, pid int, name string) (*profileSummary, error) {
	defer os.Remove(perfData)
	p, err := perfProfile(ctx, perfData, pid)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.profDir, 0o755); err != nil {
		return nil, err
	}
	file := filepath.Join(b.profDir, name+".pb.gz")
	if err := writeProfile(p, file); err != nil {
		return nil, err
	}
	s := summarize(p, 12)
	s.File = file
	return &s, nil
}
