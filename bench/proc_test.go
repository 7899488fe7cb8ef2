package main

import (
	"os"
	"runtime/debug"
	"testing"
	"time"
)

func TestStatusField(t *testing.T) {
	status := []byte("Name:\tcryptfs\nVmPeak:\t  800000 kB\nVmHWM:\t   14068 kB\nVmRSS:\t   11268 kB\nThreads:\t9\n")
	tests := []struct {
		name    string
		want    int64
		wantErr bool
	}{
		{"VmHWM", 14068, false},
		{"VmRSS", 11268, false},
		{"VmSwap", 0, true},  // absent
		{"Threads", 0, true}, // not a kB field
		{"VmHW", 0, true},    // a prefix is not the field
	}
	for _, tt := range tests {
		got, err := statusField(status, tt.name)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("statusField(%s) = %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in       string
		want     time.Duration
		switches int64
		wantErr  bool
	}{
		{"189244317 15647688 388\n", 189244317, 388, false},
		{"0 0 0", 0, 0, false},
		{"12 34", 0, 0, true},
		{"x 1 2", 0, 0, true},
		{"1 2 x", 0, 0, true},
	}
	for _, tt := range tests {
		got, n, err := parseSchedstat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want || n != tt.switches {
			t.Errorf("parseSchedstat(%q) = %v, %d, %v", tt.in, got, n, err)
		}
	}
}

func TestIsZombie(t *testing.T) {
	tests := []struct {
		stat string
		want bool
	}{
		{"123 (cryptfs) S 1 123 123 0", false},
		{"123 (cryptfs) Z 1 123 123 0", true},
		{"123 (a) Z (b)) R 1", false}, // the name may hold ") Z"; the last ')' counts
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := isZombie([]byte(tt.stat)); got != tt.want {
			t.Errorf("isZombie(%q) = %v", tt.stat, got)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	// Burn a little CPU so the figure cannot be zero.
	deadline := time.Now().Add(20 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU < 10*time.Millisecond {
		t.Errorf("CPU %v, want at least the 20 ms just spent", s.CPU)
	}
	if s.Switches < 1 {
		t.Errorf("%d switches: this thread is running, so it was put on a CPU at least once", s.Switches)
	}
	if s.RSSKB <= 0 || s.PeakKB < s.RSSKB {
		t.Errorf("RSS %d kB, peak %d kB", s.RSSKB, s.PeakKB)
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Errorf("readProc of a pid that cannot exist succeeded")
	}
}

func TestResetPeakRSS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("writing /proc/PID/clear_refs needs root (or owning the process with ptrace rights)")
	}
	// Touch 64 MiB and give it back, so the peak is well above the RSS.
	func() {
		buf := make([]byte, 64<<20)
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
	}()
	debug.FreeOSMemory()
	before, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.PeakKB < before.RSSKB+32<<10 {
		t.Skipf("the Go runtime kept the memory (peak %d kB, RSS %d kB): nothing to reset", before.PeakKB, before.RSSKB)
	}
	if err := resetPeakRSS(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	after, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.PeakKB > after.RSSKB+4<<10 {
		t.Errorf("after reset: peak %d kB, RSS %d kB (before: peak %d kB)", after.PeakKB, after.RSSKB, before.PeakKB)
	}
}

func TestVoluntarySwitches(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"Name:\tx\nvoluntary_ctxt_switches:\t42\nnonvoluntary_ctxt_switches:\t7\n", 42},
		{"Name:\tx\nnonvoluntary_ctxt_switches:\t7\n", 0},
		{"", 0},
	} {
		if got := voluntarySwitches([]byte(tt.in)); got != tt.want {
			t.Errorf("voluntarySwitches(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	// This process has slept at least once by now (the test runner waits).
	if n := threadsSleeps(os.Getpid()); n <= 0 {
		t.Errorf("threadsSleeps(self) = %d, want > 0", n)
	}
}
