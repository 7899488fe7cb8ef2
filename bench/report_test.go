package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpcallsSubDiv(t *testing.T) {
	before := upcalls{"LOOKUP": {Upcalls: 10}, "GETATTR": {Upcalls: 5, FastHits: 2}}
	after := upcalls{"LOOKUP": {Upcalls: 10}, "GETATTR": {Upcalls: 25, FastHits: 12}, "READ": {Upcalls: 7}}
	d := after.sub(before)
	if len(d) != 2 || d["GETATTR"] != (opCount{20, 10}) || d["READ"] != (opCount{7, 0}) {
		t.Errorf("sub = %v", d)
	}
	if _, ok := d["LOOKUP"]; ok {
		t.Errorf("sub kept an opcode without requests")
	}
	if d.total() != 27 {
		t.Errorf("total = %d, want 27", d.total())
	}
	// Per run over 4 runs, rounded; opcodes that round to nothing go.
	q := upcalls{"GETATTR": {Upcalls: 20, FastHits: 10}, "READ": {Upcalls: 1}}.div(4)
	if len(q) != 1 || q["GETATTR"] != (opCount{5, 3}) {
		t.Errorf("div = %v", q)
	}
	if upcalls(nil).sub(before) != nil || upcalls(nil).div(3) != nil {
		t.Errorf("nil (native) upcalls did not stay nil")
	}
	// A counter that went backwards (a remount between snapshots) is not
	// a huge number.
	if d := (upcalls{"LOOKUP": {Upcalls: 3}}).sub(upcalls{"LOOKUP": {Upcalls: 9}}); len(d) != 0 {
		t.Errorf("backwards counter gave %v", d)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5}, 5},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2 rounded down
		{[]time.Duration{10, 30}, 20},
	}
	for _, tt := range tests {
		in := append([]time.Duration(nil), tt.in...)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median reordered its argument")
			}
		}
	}
}

func TestCellSummarize(t *testing.T) {
	c := cell{Reps: []repResult{
		{Wall: 3 * time.Second, Bytes: 300 << 20, CPU: 2 * time.Second, PeakKB: 100, Upcalls: upcalls{"WRITE": {Upcalls: 3}}},
		{Wall: 1 * time.Second, Bytes: 300 << 20, CPU: time.Second, PeakKB: 300, Upcalls: upcalls{"WRITE": {Upcalls: 1}}},
		{Wall: 2 * time.Second, Bytes: 300 << 20, CPU: 3 * time.Second, PeakKB: 200, Upcalls: upcalls{"WRITE": {Upcalls: 2}}},
	}}
	c.summarize(workload{Unit: "MiB/s"})
	if c.Wall != 2*time.Second || c.CPU != 2*time.Second || c.PeakKB != 300 {
		t.Errorf("summary wall %v cpu %v peak %d", c.Wall, c.CPU, c.PeakKB)
	}
	if c.Throughput != 150 {
		t.Errorf("throughput %v MiB/s, want 150", c.Throughput)
	}
	if c.Upcalls["WRITE"].Upcalls != 2 {
		t.Errorf("upcalls %v, want those of the median repetition", c.Upcalls)
	}
	o := cell{Reps: []repResult{{Wall: 500 * time.Millisecond, Ops: 1000}}}
	o.summarize(workload{Unit: "files/s"})
	if o.Throughput != 2000 {
		t.Errorf("throughput %v files/s, want 2000", o.Throughput)
	}
}

// sampleResults has native, gocryptfs and two cryptfs tiers, ebpf
// unavailable.
func sampleResults() *results {
	mk := func(wall time.Duration, thr float64, peak int64) *cell {
		return &cell{Wall: wall, Throughput: thr, PeakKB: peak, Reps: []repResult{{Wall: wall}},
			Upcalls: upcalls{"LOOKUP": {Upcalls: 1500}, "GETATTR": {Upcalls: 20}}}
	}
	r := &results{Mode: "full", Started: time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC),
		Finished: time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC),
		Systems: []systemInfo{{ID: "native", Available: true}, {ID: "gocryptfs", Available: true},
			{ID: "cryptfs-off", Available: true}, {ID: "cryptfs-kernel-cache", Available: true},
			{ID: "cryptfs-ebpf", Reason: "no hook"}},
		Tree: treeInfo{Name: "tree", Entries: 100, Files: 90}}
	r.Workloads = []workloadResult{
		{ID: "write", Title: "stream write", Unit: "MiB/s", Cells: map[string]*cell{
			"native": mk(time.Second, 500, 0), "gocryptfs": mk(2*time.Second, 250, 20000),
			"cryptfs-off": mk(4*time.Second, 125, 30000), "cryptfs-kernel-cache": mk(1200*time.Millisecond, 420, 30000)}},
		{ID: "stat-warm", Title: "stat warm", Unit: "entries/s", Cells: map[string]*cell{
			"native": mk(100*time.Millisecond, 0, 0), "gocryptfs": mk(2*time.Second, 0, 20000),
			"cryptfs-off": mk(40*time.Second, 0, 30000), "cryptfs-kernel-cache": mk(160*time.Millisecond, 0, 30000)}},
		{ID: "untar", Title: "untar", Unit: "entries/s", Cells: map[string]*cell{
			"native": mk(10*time.Second, 0, 0), "gocryptfs": mk(100*time.Second, 0, 20000),
			"cryptfs-off": {Error: "boom"}, "cryptfs-kernel-cache": mk(40*time.Second, 0, 160000)}},
	}
	r.fillRatios()
	r.evaluateTargets()
	return r
}

func TestEvaluateTargets(t *testing.T) {
	r := sampleResults()
	got := map[string]targetResult{}
	for _, tg := range r.Targets {
		if tg.System != "cryptfs-kernel-cache" {
			t.Errorf("target evaluated for %s, which did not run", tg.System)
		}
		got[strings.SplitN(tg.Target, ":", 2)[0]] = tg
	}
	tests := []struct {
		key   string
		value float64
		holds bool
	}{
		{"warm stat of every entry", 1.6, false},                   // 160 ms vs 100 ms native
		{"streaming write", 1.68, true},                            // 420 vs 250 MiB/s
		{"untar", 0.4, true},                                       // 40 s vs 100 s
		{"daemon peak RSS untarring the full tree", 163.84, false}, // 160000 kB
	}
	for _, tt := range tests {
		tg, ok := got[tt.key]
		if !ok {
			t.Errorf("no target %q among %v", tt.key, r.Targets)
			continue
		}
		if d := tg.Value - tt.value; d > 0.01 || d < -0.01 || tg.Holds != tt.holds {
			t.Errorf("%s: value %.3f holds %v, want %.3f %v", tt.key, tg.Value, tg.Holds, tt.value, tt.holds)
		}
	}
	// Workloads that did not run give no verdict.
	for _, missing := range []string{"ls -lR", "rm -rf", "cold streaming read"} {
		if _, ok := got[missing]; ok {
			t.Errorf("target %q evaluated without measurements", missing)
		}
	}
}

func TestMarkdown(t *testing.T) {
	md := sampleResults().markdown()
	for _, want := range []string{
		"| stream write | 1.00 s | 2.00 s (2x) | 4.00 s (4x) | 1.20 s (1.2x) | n/a |",
		"Not measured: cryptfs ebpf: no hook. The ebpf tier beside off and kernel-cache in Debian's stock kernel",
		"`bench/results/bench-guest.md` (`make bench-vm`)",
		"| untar | 10.0 s | 100 s (10x) | failed | 40.0 s (4x) | n/a |",
		"**1.5k**: LOOKUP 1.5k, GETATTR 20",
		"| warm stat of every entry: at most 1.5x native time | kernel-cache | 1.60x (160 ms vs 100 ms native) | no |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestUpdateDocs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "performance.md")
	doc := "# Performance\n\nintro\n\n" + docsBegin + "\nold table\n" + docsEnd + "\n\n## Notes\n\nkept\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateDocs(path, "| new | table |\n"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := "# Performance\n\nintro\n\n" + docsBegin + "\n\n| new | table |\n\n" + docsEnd + "\n\n## Notes\n\nkept\n"
	if string(data) != want {
		t.Errorf("updated document:\n%s\nwant:\n%s", data, want)
	}
	if err := os.WriteFile(path, []byte("no markers"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateDocs(path, "x"); err == nil {
		t.Errorf("a document without markers was accepted")
	}
}

func TestWriteChart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := sampleResults().writeChart(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
		t.Errorf("chart is only %dx%d", b.Dx(), b.Dy())
	}
}

func TestRatioTicks(t *testing.T) {
	ticks := ratioTicks{}.Ticks(logRatio(0.5), logRatio(20))
	var labels []string
	for _, tk := range ticks {
		labels = append(labels, tk.Label)
	}
	if got := strings.Join(labels, " "); got != "0.5x 1x 2x 5x 10x 20x" {
		t.Errorf("ticks %q", got)
	}
}

func TestFormatters(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "-", 1500 * time.Microsecond: "1.50 ms", 25 * time.Millisecond: "25.0 ms", 250 * time.Millisecond: "250 ms",
		2500 * time.Millisecond: "2.50 s", 25 * time.Second: "25.0 s", 250 * time.Second: "250 s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[float64]string{950: "950", 1234: "1.2k", 56789: "57k", 2.5e6: "2.5M"} {
		if got := fmtCount(n); got != want {
			t.Errorf("fmtCount(%v) = %q, want %q", n, got, want)
		}
	}
	for v, want := range map[float64]string{0.98: "0.98x", 1.5: "1.5x", 458: "458x", 0.05: "0.05x"} {
		if got := fmtRatio(v); got != want {
			t.Errorf("fmtRatio(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestParseHyperfine(t *testing.T) {
	out := `{"results":[{"command":"ls -lR /x","mean":0.02,"user":0.011,"system":0.004,
		"times":[0.021,0.019,0.02]}]}`
	m, err := parseHyperfine([]byte(out), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Times) != 3 || m.Times[1] != 19*time.Millisecond || median(m.Times) != 20*time.Millisecond {
		t.Errorf("times %v", m.Times)
	}
	if m.AppCPU != 15*time.Millisecond {
		t.Errorf("CPU %v, want 15ms (user + system)", m.AppCPU)
	}
	for _, bad := range []string{`{"results":[]}`, `{"results":[{"times":[0.1]}]}`, `not json`} {
		if _, err := parseHyperfine([]byte(bad), 3); err == nil {
			t.Errorf("parseHyperfine(%s) succeeded", bad)
		}
	}
}

func TestCPURatio(t *testing.T) {
	r := &results{Workloads: []workloadResult{{ID: "x", Cells: map[string]*cell{
		"native":    {Wall: time.Second, AppCPU: 200 * time.Millisecond},
		"gocryptfs": {Wall: 3 * time.Second, AppCPU: 300 * time.Millisecond, CPU: 500 * time.Millisecond},
	}}}}
	r.fillRatios()
	if got := r.Workloads[0].Cells["gocryptfs"].CPURatio; got != 4 {
		t.Errorf("CPU ratio %v, want (300+500)/200 = 4", got)
	}
	if got := r.Workloads[0].Cells["gocryptfs"].Ratio; got != 3 {
		t.Errorf("time ratio %v, want 3", got)
	}
}
