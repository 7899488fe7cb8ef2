package reqstats

import (
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

func hist(counts map[int]uint64) (h [Buckets]uint64) {
	for b, n := range counts {
		h[b] = n
	}
	return h
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		desc string
		hist [Buckets]uint64
		q    float64
		want time.Duration
	}{
		{"empty", hist(nil), 0.5, 0},
		{"zero quantile", hist(map[int]uint64{10: 3}), 0, 0},
		{"one bucket", hist(map[int]uint64{10: 3}), 0.5, 2048},
		{"median in lower bucket", hist(map[int]uint64{10: 50, 20: 50}), 0.5, 2048},
		{"just past the median", hist(map[int]uint64{10: 50, 20: 50}), 0.51, 1 << 21},
		{"p99 of 100", hist(map[int]uint64{3: 98, 12: 1, 30: 1}), 0.99, 1 << 13},
		{"max", hist(map[int]uint64{3: 98, 12: 1, 30: 1}), 1, 1 << 31},
		{"q above 1 is the max", hist(map[int]uint64{5: 1}), 7, 64},
		{"bucket 0", hist(map[int]uint64{0: 4}), 0.9, 2},
		{"last bucket", hist(map[int]uint64{Buckets - 1: 1}), 0.5, 1 << Buckets},
	}
	for _, tt := range tests {
		o := OpStats{Hist: tt.hist}
		if got := o.Percentile(tt.q); got != tt.want {
			t.Errorf("%s: Percentile(%v) = %v, want %v", tt.desc, tt.q, got, tt.want)
		}
	}
}

func TestBucketBounds(t *testing.T) {
	tests := []struct {
		b      int
		lo, hi time.Duration
	}{
		{0, 0, 2},
		{1, 2, 4},
		{10, 1024, 2048},
		{30, 1 << 30, 1 << 31},
	}
	for _, tt := range tests {
		if lo, hi := BucketBounds(tt.b); lo != tt.lo || hi != tt.hi {
			t.Errorf("BucketBounds(%d) = %v, %v; want %v, %v", tt.b, lo, hi, tt.lo, tt.hi)
		}
	}
}

func TestMean(t *testing.T) {
	if got := (OpStats{}).Mean(); got != 0 {
		t.Errorf("Mean of nothing = %v, want 0", got)
	}
	if got := (OpStats{Done: 4, Total: 10 * time.Microsecond}).Mean(); got != 2500*time.Nanosecond {
		t.Errorf("Mean = %v, want 2.5µs", got)
	}
}

func TestSnapshotSub(t *testing.T) {
	prev := Snapshot{Device: 42, Ops: map[fuseop.Opcode]OpStats{
		fuseop.Lookup:  {Sent: 10, Done: 9, Errors: 2, Total: 90, Hist: hist(map[int]uint64{3: 9})},
		fuseop.Getattr: {Sent: 5, Done: 5, Total: 50, Hist: hist(map[int]uint64{3: 5})},
	}}
	cur := Snapshot{Device: 42, Ops: map[fuseop.Opcode]OpStats{
		fuseop.Lookup:  {Sent: 15, Done: 15, Errors: 2, Total: 150, Hist: hist(map[int]uint64{3: 14, 4: 1})},
		fuseop.Getattr: {Sent: 5, Done: 5, Total: 50, Hist: hist(map[int]uint64{3: 5})},
		fuseop.Read:    {Sent: 1},
	}}
	d := cur.Sub(prev)
	want := map[fuseop.Opcode]OpStats{
		fuseop.Lookup: {Sent: 5, Done: 6, Total: 60, Hist: hist(map[int]uint64{3: 5, 4: 1})},
		fuseop.Read:   {Sent: 1},
	}
	if d.Device != 42 || len(d.Ops) != len(want) {
		t.Fatalf("Sub = %+v, want device 42 and %d opcodes", d, len(want))
	}
	for op, w := range want {
		if d.Ops[op] != w {
			t.Errorf("Sub[%v] = %+v, want %+v", op, d.Ops[op], w)
		}
	}
	if got := d.Sent(); got != 6 {
		t.Errorf("Sent() = %d, want 6", got)
	}
	if got := d.Opcodes(); len(got) != 2 || got[0] != fuseop.Lookup || got[1] != fuseop.Read {
		t.Errorf("Opcodes() = %v, want [LOOKUP READ]", got)
	}
}
