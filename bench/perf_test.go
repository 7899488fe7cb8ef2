package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseFrame(t *testing.T) {
	tests := []struct {
		line     string
		addr     uint64
		sym, dso string
		wantErr  bool
	}{
		{line: "\tffffffff8172138d find_get_block_common ([kernel.kallsyms])", addr: 0xffffffff8172138d,
			sym: "find_get_block_common", dso: "[kernel.kallsyms]"},
		{line: "\t          26ce56 github.com/cryptfs/cryptfs/fs.(*FS).CreateFile (/work/main/bin/cryptfs)", addr: 0x26ce56,
			sym: "github.com/cryptfs/cryptfs/fs.(*FS).CreateFile", dso: "/work/main/bin/cryptfs"},
		{line: "\t               0 [unknown] ([unknown])", addr: 0, sym: "[unknown]", dso: "[unknown]"},
		// C++ symbols have spaces and parentheses of their own.
		{line: "\t1000 foo::bar(int, char) const (/usr/lib/libx.so (deleted))", addr: 0x1000,
			sym: "foo::bar(int, char) const", dso: "/usr/lib/libx.so (deleted)"},
		{line: "\t1000 (dso)", wantErr: true}, // no symbol: perf prints [unknown]
		{line: "\t1000 sym (unbalanced", wantErr: true},
		{line: "\tnothex sym (dso)", wantErr: true},
		{line: "\t1234", wantErr: true},
		{line: "\t1234 sym without dso", wantErr: true},
	}
	for _, tt := range tests {
		addr, sym, dso, err := parseFrame(tt.line)
		if tt.wantErr {
			if err == nil {
				t.Errorf("parseFrame(%q): no error", tt.line)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseFrame(%q): %v", tt.line, err)
			continue
		}
		if addr != tt.addr || sym != tt.sym || dso != tt.dso {
			t.Errorf("parseFrame(%q) = %#x %q %q, want %#x %q %q", tt.line, addr, sym, dso, tt.addr, tt.sym, tt.dso)
		}
	}
}

func TestParsePerfScript(t *testing.T) {
	f, err := os.Open("testdata/perf-script.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := parsePerfScript(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) != 4 {
		t.Fatalf("%d samples, want 4", len(p.Sample))
	}
	// The two create samples share their locations.
	if p.Sample[0].Location[0] != p.Sample[2].Location[0] {
		t.Errorf("equal frames did not share a location")
	}
	if got := p.Sample[2].Value; got[0] != 1 || got[1] != 2002002 {
		t.Errorf("third sample values %v, want [1 2002002]", got)
	}
	if got := p.Sample[1].Location[0].Line[0].Function.Name; got != "runtime.scanObjectsSmall" {
		t.Errorf("leaf of the GC sample is %q", got)
	}
	if len(p.Mapping) != 3 { // kernel, cryptfs, [unknown]
		t.Errorf("%d mappings, want 3", len(p.Mapping))
	}

	s := summarize(p, 3)
	if s.Samples != 4 || s.CPU != time.Duration(1001001*3+2002002) {
		t.Errorf("summary: %d samples, %v CPU", s.Samples, s.CPU)
	}
	if s.KernelPct != 75 {
		t.Errorf("kernel share %.1f%%, want 75%%", s.KernelPct)
	}
	if len(s.Flat) == 0 || s.Flat[0] != (share{"find_get_block_common", 50}) {
		t.Errorf("flat top %v, want find_get_block_common 50%%", s.Flat)
	}
	cat := map[string]float64{}
	for _, c := range s.Categories {
		cat[c.Name] = c.Pct
	}
	for name, want := range map[string]float64{
		"kernel: read requests from /dev/fuse":         25,
		"kernel: other syscalls (lower directory I/O)": 50,
		"Go GC":          25,
		"cryptfs fusefs": 50,
		"jacobsa/fuse":   25,
		"Go allocation":  0,
	} {
		if got, ok := cat[name]; !ok || got != want {
			t.Errorf("category %q = %.1f%% (present %v), want %.1f%%", name, got, ok, want)
		}
	}
	var ours []string
	for _, o := range s.Ours {
		ours = append(ours, o.Name)
	}
	// x/sys is not ours; ties sort by name.
	want := "github.com/cryptfs/cryptfs/internal/fusefs.(*FS).CreateFile,github.com/cryptfs/cryptfs/internal/fusefs.openat,github.com/jacobsa/fuse.(*Connection).ReadOp"
	if strings.Join(ours, ",") != want {
		t.Errorf("ours = %v, want %s", ours, want)
	}
}

func TestParsePerfScriptErrors(t *testing.T) {
	for _, in := range []string{
		"\tffff sym (dso)\n",           // frame before any header
		"6606\n\tffff sym (dso)\n",     // header without period
		"6606 notanumber\n",            // bad period
		"6606 100\n\tzz sym (dso)\n\n", // bad address
	} {
		if _, err := parsePerfScript(strings.NewReader(in)); err == nil {
			t.Errorf("parsePerfScript(%q): no error", in)
		}
	}
	p, err := parsePerfScript(strings.NewReader(""))
	if err != nil || len(p.Sample) != 0 {
		t.Errorf("empty input: %v, %d samples", err, len(p.Sample))
	}
}
