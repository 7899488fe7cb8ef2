package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// results is everything one run measured: the raw JSON and the source of
// the Markdown table and the chart.
type results struct {
	Mode      string           `json:"mode"`
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Host      hostInfo         `json:"host"`
	Params    params           `json:"params"`
	Tree      treeInfo         `json:"tree"`
	Systems   []systemInfo     `json:"systems"`
	Workloads []workloadResult `json:"workloads"`
	Targets   []targetResult   `json:"targets"`
}

// hostInfo describes the machine and the software measured.
type hostInfo struct {
	Kernel       string  `json:"kernel"`
	CPUs         int     `json:"cpus"`
	MemGiB       float64 `json:"mem_gib"`
	CPUModel     string  `json:"cpu_model"`
	LoadStart    float64 `json:"load1_start"`
	LoadEnd      float64 `json:"load1_end"`
	Cryptfs      string  `json:"cryptfs"` // git describe of the tree the binary came from
	Gocryptfs    string  `json:"gocryptfs"`
	LowerFS      string  `json:"lower_fs"`
	ProfiledWith string  `json:"profiled_with,omitempty"`
}

// systemInfo says whether a system ran.
type systemInfo struct {
	ID        string `json:"id"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"` // why not
}

// workloadResult is one workload on every system.
type workloadResult struct {
	ID    string           `json:"id"`
	Title string           `json:"title"`
	Unit  string           `json:"unit"`
	Cells map[string]*cell `json:"systems"`
}

// targetResult is one of the targets, evaluated on this run.
type targetResult struct {
	Target string  `json:"target"`
	System string  `json:"system"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Holds  bool    `json:"holds"`
	Detail string  `json:"detail"`
}

// systemLabel is how tables name a system.
func systemLabel(id string) string {
	if t, ok := strings.CutPrefix(id, "cryptfs-"); ok {
		return "cryptfs " + t
	}
	return id
}

// fillRatios sets each cell's ratios to native: of wall time, and of CPU
// time (workload plus daemon).
func (r *results) fillRatios() {
	for _, w := range r.Workloads {
		nat := w.Cells["native"]
		if nat == nil {
			continue
		}
		for _, c := range w.Cells {
			if nat.Wall > 0 && c.Wall > 0 {
				c.Ratio = float64(c.Wall) / float64(nat.Wall)
			}
			if nat.AppCPU > 0 && c.Wall > 0 {
				c.CPURatio = float64(c.AppCPU+c.CPU) / float64(nat.AppCPU)
			}
		}
	}
}

// workload returns the result of workload id, nil if it did not run.
func (r *results) workload(id string) *workloadResult {
	for i := range r.Workloads {
		if r.Workloads[i].ID == id {
			return &r.Workloads[i]
		}
	}
	return nil
}

// cellOf returns the cell of workload id on system sys if it has a figure.
func (r *results) cellOf(id, sys string) *cell {
	w := r.workload(id)
	if w == nil {
		return nil
	}
	c := w.Cells[sys]
	if c == nil || c.Wall == 0 {
		return nil
	}
	return c
}

// rssLimitKB is the peak-RSS target: 150 MB (decimal) after untarring the
// full tree.
const rssLimitKB = 150e6 / 1024

// evaluateTargets checks the targets for the cryptfs tiers that
// ran with a cache (kernel-cache, ebpf).
func (r *results) evaluateTargets() {
	r.Targets = nil
	for _, sys := range []string{"cryptfs-kernel-cache", "cryptfs-kernel-cache-poll", "cryptfs-kernel-cache-uring", "cryptfs-ebpf"} {
		add := func(t targetResult) { t.System = sys; r.Targets = append(r.Targets, t) }
		vsNative := func(id, name string, limit float64) {
			c, n := r.cellOf(id, sys), r.cellOf(id, "native")
			if c == nil || n == nil {
				return
			}
			v := float64(c.Wall) / float64(n.Wall)
			add(targetResult{Target: name, Value: v, Limit: limit, Holds: v <= limit,
				Detail: fmt.Sprintf("%s vs %s native", fmtDur(c.Wall), fmtDur(n.Wall))})
		}
		timeVsGo := func(id, name string, limit float64) {
			c, g := r.cellOf(id, sys), r.cellOf(id, "gocryptfs")
			if c == nil || g == nil {
				return
			}
			v := float64(c.Wall) / float64(g.Wall)
			add(targetResult{Target: name, Value: v, Limit: limit, Holds: v <= limit,
				Detail: fmt.Sprintf("%s vs %s gocryptfs", fmtDur(c.Wall), fmtDur(g.Wall))})
		}
		thrVsGo := func(id, name string, limit float64) {
			c, g := r.cellOf(id, sys), r.cellOf(id, "gocryptfs")
			if c == nil || g == nil || g.Throughput == 0 {
				return
			}
			v := c.Throughput / g.Throughput
			add(targetResult{Target: name, Value: v, Limit: limit, Holds: v >= limit,
				Detail: fmt.Sprintf("%.0f vs %.0f MiB/s gocryptfs", c.Throughput, g.Throughput)})
		}
		if strings.HasPrefix(sys, "cryptfs-kernel-cache") {
			vsNative("stat-warm", "warm stat of every entry: at most 1.5x native time", 1.5)
		}
		timeVsGo("ls-lR", "ls -lR: at most 0.3x gocryptfs time", 0.3)
		timeVsGo("untar", "untar: at most 0.5x gocryptfs time", 0.5)
		timeVsGo("rm-rf", "rm -rf: at most 0.5x gocryptfs time", 0.5)
		thrVsGo("write", "streaming write: at least 1.5x gocryptfs throughput", 1.5)
		thrVsGo("read-cold", "cold streaming read: at least 1.2x gocryptfs throughput", 1.2)
		if c := r.cellOf("untar", sys); c != nil {
			name := "daemon peak RSS untarring the full tree: under 150 MB"
			if r.Mode != "full" {
				name = "daemon peak RSS untarring the tree (quick tree; the target is for the full tree): under 150 MB"
			}
			add(targetResult{Target: name, Value: float64(c.PeakKB) * 1024 / 1e6, Limit: 150,
				Holds: float64(c.PeakKB) < rssLimitKB, Detail: fmt.Sprintf("%.1f MB", float64(c.PeakKB)*1024/1e6)})
		}
	}
}

// fmtDur formats a duration with three significant digits.
func fmtDur(d time.Duration) string {
	s := d.Seconds()
	switch {
	case d == 0:
		return "-"
	case s >= 100:
		return fmt.Sprintf("%.0f s", s)
	case s >= 10:
		return fmt.Sprintf("%.1f s", s)
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 0.1:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s >= 0.01:
		return fmt.Sprintf("%.1f ms", s*1000)
	default:
		return fmt.Sprintf("%.2f ms", s*1000)
	}
}

// fmtCount formats a count compactly: 950, 12.3k, 1.2M.
func fmtCount(n float64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", n/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.0fk", n/1e3)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", n/1e3)
	default:
		return fmt.Sprintf("%.0f", n)
	}
}

// fmtRatio formats a ratio to native.
func fmtRatio(v float64) string {
	switch {
	case v >= 10:
		return fmt.Sprintf("%.0fx", v)
	case v >= 0.1:
		return fmt.Sprintf("%.2gx", v)
	default:
		return fmt.Sprintf("%.1gx", v)
	}
}

// markdown renders the results as the Markdown report.
func (r *results) markdown() string {
	var b strings.Builder
	ids := make([]string, len(r.Systems))
	for i, s := range r.Systems {
		ids[i] = s.ID
	}
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	header := func(first string, systems []string) {
		p("| %s |", first)
		for _, id := range systems {
			p(" %s |", systemLabel(id))
		}
		p("\n|---|")
		for range systems {
			p("---:|")
		}
		p("\n")
	}
	unavailable := map[string]string{}
	for _, s := range r.Systems {
		if !s.Available {
			unavailable[s.ID] = s.Reason
		}
	}
	cellText := func(w workloadResult, id string, f func(*cell) string) string {
		if _, ok := unavailable[id]; ok {
			return "n/a"
		}
		c := w.Cells[id]
		if c == nil {
			return "-"
		}
		if c.Error != "" {
			return "failed"
		}
		return f(c)
	}

	p("Run: `make %s` (%s mode), %s to %s UTC.\n\n", map[bool]string{true: "bench", false: "bench-quick"}[r.Mode == "full"],
		r.Mode, r.Started.UTC().Format("2006-01-02 15:04"), r.Finished.UTC().Format("15:04"))
	h := r.Host
	p("Machine: Linux %s, %d CPUs (%s), %.0f GiB RAM; lower file system %s. Shared machine: 1-minute load average %.1f at the start, %.1f at the end (per-repetition loads in the JSON).\n\n",
		h.Kernel, h.CPUs, h.CPUModel, h.MemGiB, h.LowerFS, h.LoadStart, h.LoadEnd)
	p("Software: cryptfs %s; %s (default settings: `gocryptfs -init`, then mounted with its defaults).\n\n", h.Cryptfs, h.Gocryptfs)
	p("Tree: %s: %d entries, %d files, %.0f MiB (tar %.0f MiB).\n\n", r.Tree.Name, r.Tree.Entries, r.Tree.Files,
		float64(r.Tree.Bytes)/(1<<20), float64(r.Tree.TarBytes)/(1<<20))
	for _, s := range r.Systems {
		if !s.Available {
			p("Not measured: %s: %s", systemLabel(s.ID), s.Reason)
			if s.ID == "cryptfs-ebpf" {
				// The tier needs the cryptfs FUSE module: make bench-vm
				// measures it in the stock-kernel guest.
				p(". The ebpf tier beside off and kernel-cache in Debian's stock kernel with the cryptfs module, in a qemu guest (request counts, same-guest time ratios): `bench/results/bench-guest.md` (`make bench-vm`)")
			}
			p("\n\n")
		}
	}

	p("### Time (median of the repetitions) and ratio to native\n\n")
	header("workload", ids)
	for _, w := range r.Workloads {
		p("| %s |", w.Title)
		for _, id := range ids {
			p(" %s |", cellText(w, id, func(c *cell) string {
				if id == "native" || c.Ratio == 0 {
					return fmtDur(c.Wall)
				}
				return fmt.Sprintf("%s (%s)", fmtDur(c.Wall), fmtRatio(c.Ratio))
			}))
		}
		p("\n")
	}

	p("\n### Throughput\n\n")
	header("workload", ids)
	for _, w := range r.Workloads {
		p("| %s, %s |", w.Title, w.Unit)
		for _, id := range ids {
			p(" %s |", cellText(w, id, func(c *cell) string { return fmtCount(c.Throughput) }))
		}
		p("\n")
	}

	fuseIDs := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "native" {
			fuseIDs = append(fuseIDs, id)
		}
	}
	p("\n### CPU time per run: workload + daemon, and ratio of the total to native\n\n")
	p("CPU time is what the machine's load does not inflate (wall time on a busy machine includes waiting for a CPU). ")
	p("The workload's CPU includes its system calls, so the kernel's FUSE and page-cache work on its side; the daemon's is all its threads.\n\n")
	header("workload", ids)
	for _, w := range r.Workloads {
		p("| %s |", w.Title)
		for _, id := range ids {
			p(" %s |", cellText(w, id, func(c *cell) string {
				if id == "native" {
					return fmtDur(c.AppCPU)
				}
				s := fmt.Sprintf("%s + %s", fmtDur(c.AppCPU), fmtDur(c.CPU))
				if c.CPURatio > 0 {
					s += fmt.Sprintf(" (%s)", fmtRatio(c.CPURatio))
				}
				return s
			}))
		}
		p("\n")
	}

	p("\n### Daemon CPU time and wakeups per request\n\n")
	p("The daemon's CPU time (all threads) and the times its threads were put on a CPU (schedstat), divided by the requests that reached it. ")
	p("A wakeup is a thread that slept (waiting for a request, a lock or the disk) and runs again: a request that costs one wakes a sleeping reader; one served on the CPU of its caller by a thread that polls or was already running costs less.\n\n")
	header("workload", fuseIDs)
	for _, w := range r.Workloads {
		p("| %s |", w.Title)
		for _, id := range fuseIDs {
			p(" %s |", cellText(w, id, func(c *cell) string {
				if c.CPUPerReq == 0 {
					return "-"
				}
				return fmt.Sprintf("%s, %.2f", fmtDur(c.CPUPerReq), c.SwitchesPerReq)
			}))
		}
		p("\n")
	}

	r.transportTable(p)

	p("\n### Daemon peak RSS (VmHWM during the workload)\n\n")
	header("workload", fuseIDs)
	for _, w := range r.Workloads {
		p("| %s |", w.Title)
		for _, id := range fuseIDs {
			p(" %s |", cellText(w, id, func(c *cell) string {
				return fmt.Sprintf("%.0f MB", float64(c.PeakKB)*1024/1e6)
			}))
		}
		p("\n")
	}

	p("\n### Upcalls per run (requests that reached the daemon; the largest opcodes)\n\n")
	header("workload", fuseIDs)
	for _, w := range r.Workloads {
		p("| %s |", w.Title)
		for _, id := range fuseIDs {
			p(" %s |", cellText(w, id, func(c *cell) string { return upcallText(c) }))
		}
		p("\n")
	}

	if len(r.Targets) > 0 {
		p("\n### Targets (issue 5), all ratios from this run\n\n")
		p("| target | tier | measured | holds |\n|---|---|---|:---:|\n")
		for _, t := range r.Targets {
			mark := "no"
			if t.Holds {
				mark = "yes"
			}
			val := fmt.Sprintf("%.2fx (%s)", t.Value, t.Detail)
			if strings.Contains(t.Target, "RSS") {
				val = t.Detail
			}
			p("| %s | %s | %s | %s |\n", t.Target, strings.TrimPrefix(t.System, "cryptfs-"), val, mark)
		}
	}
	p("\nRatios are time ratios (for throughput workloads: native throughput / throughput), so 2x means twice as slow as native. ")
	p("Upcalls are counted by the fuse_request_send tracepoint (cryptfs stats for cryptfs, the same collector for gocryptfs); FORGET has no tracepoint and is not counted.\n")
	return b.String()
}

// upcallText formats the largest opcodes of a cell.
func upcallText(c *cell) string {
	if c.Upcalls == nil {
		for _, r := range c.Reps {
			if r.UpErr != "" {
				return "n/a"
			}
		}
		return "-"
	}
	type kv struct {
		op string
		n  uint64
	}
	var all []kv
	var hits uint64
	for op, o := range c.Upcalls {
		if o.Upcalls > 0 {
			all = append(all, kv{op, o.Upcalls})
		}
		hits += o.FastHits
	}
	if len(all) == 0 && hits == 0 {
		return "0"
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].op < all[j].op
	})
	var parts []string
	for i, e := range all {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s", e.op, fmtCount(float64(e.n))))
	}
	s := fmt.Sprintf("**%s**", fmtCount(float64(c.Upcalls.total())))
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	if hits > 0 {
		s += fmt.Sprintf("; %s in-kernel", fmtCount(float64(hits)))
	}
	return s
}

// profilesMarkdown renders the profile summaries.
func (r *results) profilesMarkdown(resultsDir string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Where the cryptfs daemon's time goes (%s run, %s UTC)\n\n", r.Mode, r.Started.UTC().Format("2006-01-02 15:04"))
	p("Each profile is one extra, unmeasured repetition of the workload (warm workloads: one run) under `perf record -a -g -F %d` (every CPU, kernel and user stacks), of which the daemon's samples are converted to pprof. ", perfFreq)
	p("Open one with `go tool pprof -top FILE` or `go tool pprof -http=: FILE`. ")
	p("Categories are cumulative (a sample counts in every category one of its frames matches), so they overlap; percentages are of the daemon's samples.\n\n")
	for _, w := range r.Workloads {
		for _, s := range r.Systems {
			c := w.Cells[s.ID]
			if c == nil || c.Profile == nil {
				continue
			}
			pr := c.Profile
			rel, _ := filepath.Rel(resultsDir, pr.File)
			p("## %s on %s\n\n", w.Title, systemLabel(s.ID))
			if pr.Samples == 0 {
				p("No samples: the daemon did not run during the workload (the kernel answered everything).\n\n")
				continue
			}
			p("%d samples, %s of daemon CPU sampled (%s per measured run), %.0f%% in the kernel. Profile: `%s`.\n\n",
				pr.Samples, fmtDur(pr.CPU), fmtDur(c.CPU), pr.KernelPct, rel)
			p("| category (cumulative) | %% |\n|---|---:|\n")
			for _, sh := range pr.Categories {
				if sh.Pct >= 0.5 {
					p("| %s | %.1f |\n", sh.Name, sh.Pct)
				}
			}
			p("\n| top leaf functions | %% |\n|---|---:|\n")
			for _, sh := range pr.Flat {
				p("| `%s` | %.1f |\n", sh.Name, sh.Pct)
			}
			p("\n| cryptfs, jacobsa/fuse, x/crypto functions (cumulative) | %% |\n|---|---:|\n")
			for _, sh := range pr.Ours {
				p("| `%s` | %.1f |\n", sh.Name, sh.Pct)
			}
			p("\n")
		}
	}
	return b.String()
}

// writeJSON writes the raw results.
func (r *results) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Markers delimiting the generated part of docs/performance.md.
const (
	docsBegin = "<!-- BEGIN cryptfs-bench results: generated by make bench, do not edit by hand -->"
	docsEnd   = "<!-- END cryptfs-bench results -->"
)

// checkDocs fails unless the document at path has the markers updateDocs
// needs (checked before a run of tens of minutes, not after).
func checkDocs(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(data, []byte(docsBegin)), bytes.Index(data, []byte(docsEnd))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q section to replace", path, docsBegin, docsEnd)
	}
	return nil
}

// updateDocs replaces the text between the markers in the document at
// path with md.
func updateDocs(path, md string) error {
	if err := checkDocs(path); err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(data, []byte(docsBegin)), bytes.Index(data, []byte(docsEnd))
	var out bytes.Buffer
	out.Write(data[:i+len(docsBegin)])
	out.WriteString("\n\n" + strings.TrimSpace(md) + "\n\n")
	out.Write(data[j:])
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// logRatio is the chart's bar height for a ratio: bars grow up for slower
// than native and down for faster, on a log scale.
func logRatio(v float64) float64 { return math.Log10(v) }

// transportTable compares the kernel-cache tier over each transport with
// plain /dev/fuse (cryptfs-kernel-cache, no polling) in the same run:
// time ratio, and daemon CPU and wakeups per request of each.
func (r *results) transportTable(p func(string, ...any)) {
	const base = "cryptfs-kernel-cache"
	var others []string
	for _, s := range r.Systems {
		if s.Available && s.ID != base && strings.HasPrefix(s.ID, base+"-") {
			others = append(others, s.ID)
		}
	}
	if len(others) == 0 {
		return
	}
	p("\n### Transports: kernel-cache over each, against plain /dev/fuse\n\n")
	p("Each column: time / the time of plain /dev/fuse (cryptfs kernel-cache) in this run (below 1: faster), then daemon CPU per request, wakeups per request and, of those, sleeps per request (voluntary context switches: a thread that waited; a polling thread that yields or is preempted runs again without one), against plain /dev/fuse's.\n\n")
	p("| workload | kernel-cache: CPU/req, wakeups/req (sleeps/req) |")
	for _, id := range others {
		p(" %s |", systemLabel(id))
	}
	p("\n|---|---:|")
	for range others {
		p("---:|")
	}
	p("\n")
	for _, w := range r.Workloads {
		b := w.Cells[base]
		if b == nil || b.Wall == 0 {
			continue
		}
		p("| %s | %s, %.2f (%.2f) |", w.Title, fmtDur(b.CPUPerReq), b.SwitchesPerReq, b.SleepsPerReq)
		for _, id := range others {
			c := w.Cells[id]
			if c == nil || c.Wall == 0 {
				p(" - |")
				continue
			}
			p(" %.2f; %s, %.2f (%.2f) |", float64(c.Wall)/float64(b.Wall), fmtDur(c.CPUPerReq), c.SwitchesPerReq, c.SleepsPerReq)
		}
		p("\n")
	}
}
