package main

import (
	"strings"
	"testing"
)

func TestCompareUpcalls(t *testing.T) {
	mk := func(cells map[string]upcalls) *results {
		w := workloadResult{ID: "untar", Cells: map[string]*cell{}}
		for s, u := range cells {
			w.Cells[s] = &cell{Upcalls: u}
		}
		return &results{Workloads: []workloadResult{w}}
	}
	base := map[string]upcalls{
		"native":               nil,
		"cryptfs-kernel-cache": {"LOOKUP": {Upcalls: 10}, "SETATTR": {Upcalls: 5}},
	}
	tests := []struct {
		name      string
		cur       map[string]upcalls
		ignore    []string
		differing int
		diff      string
	}{
		{"identical", base, []string{"SETATTR"}, 0, "same"},
		{"ignored opcode differs", map[string]upcalls{"cryptfs-kernel-cache": {"LOOKUP": {Upcalls: 10}, "SETATTR": {Upcalls: 9}}},
			[]string{"SETATTR"}, 0, "SETATTR 5->9 (ignored)"},
		{"one request more is noise", map[string]upcalls{"cryptfs-kernel-cache": {"LOOKUP": {Upcalls: 11}, "SETATTR": {Upcalls: 5}}},
			[]string{"SETATTR"}, 0, "LOOKUP 10->11 (noise)"},
		{"counted opcode differs", map[string]upcalls{"cryptfs-kernel-cache": {"LOOKUP": {Upcalls: 12}, "SETATTR": {Upcalls: 5}}},
			[]string{"SETATTR"}, 1, "LOOKUP 10->12"},
		{"new opcode", map[string]upcalls{"cryptfs-kernel-cache": {"LOOKUP": {Upcalls: 10}, "SETATTR": {Upcalls: 5}, "FLUSH": {Upcalls: 1}}},
			nil, 1, "FLUSH 0->1"},
		{"system missing in the new run", map[string]upcalls{"native": nil}, nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compareUpcalls(mk(base), mk(tt.cur), tt.ignore)
			if c.differing != tt.differing {
				t.Errorf("differing = %d, want %d (%+v)", c.differing, tt.differing, c.rows)
			}
			if tt.diff == "" {
				if len(c.rows) != 0 {
					t.Errorf("rows = %+v, want none", c.rows)
				}
				return
			}
			if len(c.rows) != 1 || !strings.Contains(c.rows[0].diff, tt.diff) {
				t.Errorf("rows = %+v, want one with %q", c.rows, tt.diff)
			}
		})
	}
}
