package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
)

// The daemon has no profiling endpoint: the benchmark samples it from the
// outside with perf (kernel and user stacks; Go keeps frame pointers, so
// -g unwinds Go code) and converts the samples to a pprof profile, which
// `go tool pprof` reads like any Go CPU profile. perf samples every CPU
// (-a) and the conversion keeps the daemon's samples: per-process
// recording (-p) hooks every context switch of the daemon's threads and
// made a FUSE daemon, which switches on every request, twice as slow; -a
// costs a fraction of that.

// perfFreq is the sampling frequency in Hz.
const perfFreq = 999

// perfRecorder is a running system-wide `perf record`.
type perfRecorder struct {
	cmd  *exec.Cmd
	data string
	done chan error
}

// startPerf samples every CPU into the perf data file data until stop.
func startPerf(ctx context.Context, data string) (*perfRecorder, error) {
	cmd := exec.CommandContext(ctx, "perf", "record", "-q", "-a", "-g", "-F", strconv.Itoa(perfFreq), "-o", data)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start perf record: %w", err)
	}
	r := &perfRecorder{cmd: cmd, data: data, done: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		r.done <- err
	}()
	// perf needs a moment to read the process's maps and open its
	// counters; samples before that would be lost.
	select {
	case err := <-r.done:
		return nil, fmt.Errorf("perf record exited early: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	return r, nil
}

// stop ends the recording (SIGINT, as perf expects) and waits for perf to
// write its data file.
func (r *perfRecorder) stop() error {
	r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-r.done:
		// Versions differ in the exit status after SIGINT; what counts
		// is the data file.
		if st, serr := os.Stat(r.data); serr == nil && st.Size() > 0 {
			return nil
		}
		return fmt.Errorf("perf record wrote no data (exit: %v)", err)
	case <-time.After(60 * time.Second):
		r.cmd.Process.Kill()
		return fmt.Errorf("perf record did not stop within 60s")
	}
}

// perfProfile converts the samples of process pid in a perf data file to
// a pprof profile.
func perfProfile(ctx context.Context, data string, pid int) (*profile.Profile, error) {
	cmd := exec.CommandContext(ctx, "perf", "script", "-i", data, "--pid", strconv.Itoa(pid), "-F", "tid,period,ip,sym,dso")
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf script: %w", err)
	}
	p, perr := parsePerfScript(out)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("perf script: %w", err)
	}
	if perr != nil {
		return nil, fmt.Errorf("perf script output: %w", perr)
	}
	return p, nil
}

// parsePerfScript reads the output of `perf script -F tid,period,ip,sym,dso`:
// per sample a header line " TID PERIOD" and then one line per frame,
// leaf first, "\tADDR SYMBOL (DSO)", ending with an empty line.
func parsePerfScript(r io.Reader) (*profile.Profile, error) {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     int64(time.Second / perfFreq),
	}
	mappings := map[string]*profile.Mapping{}
	type funcKey struct{ name, dso string }
	funcs := map[funcKey]*profile.Function{}
	type locKey struct {
		addr uint64
		dso  string
	}
	locs := map[locKey]*profile.Location{}

	var cur *profile.Sample
	flush := func() {
		if cur != nil && len(cur.Location) > 0 {
			p.Sample = append(p.Sample, cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			flush()
			continue
		}
		if text[0] != '\t' {
			// A sample header: "TID PERIOD" (padded with spaces); frames
			// start with a tab.
			flush()
			f := strings.Fields(text)
			if len(f) < 2 {
				return nil, fmt.Errorf("line %d: malformed sample header %q", line, text)
			}
			period, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: malformed period in %q", line, text)
			}
			cur = &profile.Sample{Value: []int64{1, period}}
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: frame before any sample header", line)
		}
		addr, sym, dso, err := parseFrame(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		m := mappings[dso]
		if m == nil {
			m = &profile.Mapping{ID: uint64(len(p.Mapping) + 1), File: dso, HasFunctions: true}
			mappings[dso] = m
			p.Mapping = append(p.Mapping, m)
		}
		lk := locKey{addr, dso}
		loc := locs[lk]
		if loc == nil {
			fk := funcKey{sym, dso}
			fn := funcs[fk]
			if fn == nil {
				fn = &profile.Function{ID: uint64(len(p.Function) + 1), Name: sym, SystemName: sym, Filename: dso}
				funcs[fk] = fn
				p.Function = append(p.Function, fn)
			}
			loc = &profile.Location{ID: uint64(len(p.Location) + 1), Mapping: m, Address: addr,
				Line: []profile.Line{{Function: fn}}}
			locs[lk] = loc
			p.Location = append(p.Location, loc)
		}
		cur.Location = append(cur.Location, loc)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	if err := p.CheckValid(); err != nil {
		return nil, err
	}
	return p, nil
}

// parseFrame parses "\tADDR SYMBOL (DSO)"; SYMBOL may contain spaces and
// parentheses, DSO balanced parentheses ("/x.so (deleted)"), and SYMBOL is
// "[unknown]" when perf could not name it.
func parseFrame(text string) (addr uint64, sym, dso string, err error) {
	s := strings.TrimSpace(text)
	a, rest, ok := strings.Cut(s, " ")
	if !ok {
		return 0, "", "", fmt.Errorf("malformed frame %q", text)
	}
	addr, err = strconv.ParseUint(a, 16, 64)
	if err != nil {
		return 0, "", "", fmt.Errorf("malformed frame address in %q", text)
	}
	// The DSO is the parenthesised group that ends the line.
	open := -1
	if strings.HasSuffix(rest, ")") {
		depth := 0
		for i := len(rest) - 1; i >= 0; i-- {
			switch rest[i] {
			case ')':
				depth++
			case '(':
				depth--
			}
			if depth == 0 {
				open = i
				break
			}
		}
	}
	if open < 1 || rest[open-1] != ' ' {
		return 0, "", "", fmt.Errorf("frame without (dso) in %q", text)
	}
	sym, dso = strings.TrimSpace(rest[:open]), rest[open+1:len(rest)-1]
	if sym == "" {
		sym = "[unknown]"
	}
	return addr, sym, dso, nil
}

// share is one line of a profile summary: a function or category and the
// percentage of samples it accounts for.
type share struct {
	Name string  `json:"name"`
	Pct  float64 `json:"pct"`
}

// profileSummary is what the report shows of one profile.
type profileSummary struct {
	File    string        `json:"file"` // the .pb.gz, relative to the results directory
	Samples int64         `json:"samples"`
	CPU     time.Duration `json:"cpu_ns"` // sampled CPU time
	// KernelPct is the share of samples whose leaf frame is in the kernel.
	KernelPct float64 `json:"kernel_pct"`
	// Flat: the leaf functions with the most samples.
	Flat []share `json:"flat"`
	// Ours: cumulative share of the functions of cryptfs, jacobsa/fuse and
	// golang.org/x/crypto (what the daemon's own code costs).
	Ours []share `json:"ours_cum"`
	// Categories: cumulative shares of fixed categories (they overlap).
	Categories []share `json:"categories"`
}

// category is a named test on a stack (function names, leaf first).
type category struct {
	name  string
	match func(stack []string) bool
}

func anyFrame(subs ...string) func([]string) bool {
	return func(stack []string) bool {
		for _, f := range stack {
			for _, s := range subs {
				if strings.Contains(f, s) {
					return true
				}
			}
		}
		return false
	}
}

// categories explain where a FUSE daemon's time goes. They overlap: a
// lower-directory write is both "syscalls to the lower directory" and,
// say, "cryptfs fusefs".
var categories = []category{
	{"kernel: read requests from /dev/fuse", anyFrame("fuse_dev_read", "fuse_dev_splice_read")},
	{"kernel: write replies to /dev/fuse", anyFrame("fuse_dev_write", "fuse_dev_splice_write")},
	{"kernel: other syscalls (lower directory I/O)", func(st []string) bool {
		return anyFrame("entry_SYSCALL_64")(st) && !anyFrame("fuse_dev_", "sys_futex", "sys_nanosleep", "sys_epoll", "sys_sched_yield")(st)
	}},
	{"futex sleep/wake (goroutine hand-offs)", anyFrame("runtime.futex")},
	{"Go scheduler", anyFrame("runtime.schedule", "runtime.findRunnable")},
	{"Go GC", anyFrame("runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep", "runtime.bgscavenge")},
	{"Go allocation", anyFrame("runtime.mallocgc")},
	{"AEAD (XChaCha20-Poly1305)", anyFrame("chacha20poly1305", "chacha20.", "poly1305.")},
	{"name hashing (BLAKE2b)", anyFrame("blake2b")},
	{"cryptfs fusefs", anyFrame("github.com/cryptfs/cryptfs/internal/fusefs.")},
	{"cryptfs ciphertree (lower I/O, block engine)", anyFrame("github.com/cryptfs/cryptfs/internal/ciphertree.")},
	{"cryptfs meta/", anyFrame("github.com/cryptfs/cryptfs/meta.")},
	{"cryptfs crypt/", anyFrame("github.com/cryptfs/cryptfs/crypt.")},
	{"jacobsa/fuse", anyFrame("github.com/jacobsa/fuse")},
}

// ourPrefixes select the functions listed cumulatively in "Ours".
var ourPrefixes = []string{"github.com/cryptfs/", "github.com/jacobsa/", "golang.org/x/crypto/"}

// summarize computes the report's view of p, with n lines per list.
func summarize(p *profile.Profile, n int) profileSummary {
	var s profileSummary
	flat := map[string]int64{}
	cum := map[string]int64{}
	cats := make([]int64, len(categories))
	var kernel int64
	for _, smp := range p.Sample {
		s.Samples += smp.Value[0]
		s.CPU += time.Duration(smp.Value[1])
		stack := make([]string, 0, len(smp.Location))
		for _, loc := range smp.Location {
			for _, l := range loc.Line {
				stack = append(stack, l.Function.Name)
			}
		}
		if len(stack) == 0 {
			continue
		}
		flat[stack[0]] += smp.Value[0]
		if loc := smp.Location[0]; loc.Mapping != nil && strings.Contains(loc.Mapping.File, "kernel") {
			kernel += smp.Value[0]
		}
		seen := map[string]bool{}
		for _, f := range stack {
			if seen[f] {
				continue
			}
			seen[f] = true
			for _, pre := range ourPrefixes {
				if strings.HasPrefix(f, pre) {
					cum[f] += smp.Value[0]
					break
				}
			}
		}
		for i, c := range categories {
			if c.match(stack) {
				cats[i] += smp.Value[0]
			}
		}
	}
	if s.Samples == 0 {
		return s
	}
	pct := func(v int64) float64 { return 100 * float64(v) / float64(s.Samples) }
	s.KernelPct = pct(kernel)
	s.Flat = topShares(flat, n, pct)
	s.Ours = topShares(cum, n, pct)
	for i, c := range categories {
		s.Categories = append(s.Categories, share{c.name, pct(cats[i])})
	}
	return s
}

// topShares returns the n largest entries of m, largest first (ties by
// name, so the output is stable).
func topShares(m map[string]int64, n int, pct func(int64) float64) []share {
	type kv struct {
		k string
		v int64
	}
	all := make([]kv, 0, len(m))
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	var out []share
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, share{all[i].k, pct(all[i].v)})
	}
	return out
}

// writeProfile writes p gzip-compressed to path.
func writeProfile(p *profile.Profile, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	if err := p.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	return f.Close()
}
