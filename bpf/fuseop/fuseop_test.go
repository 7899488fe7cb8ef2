package fuseop

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		op   Opcode
		want string
	}{
		{Lookup, "LOOKUP"},
		{Getattr, "GETATTR"},
		{Getxattr, "GETXATTR"},
		{BatchForget, "BATCH_FORGET"},
		{CopyFileRange, "COPY_FILE_RANGE"},
		{Statx, "STATX"},
		{CuseInit, "CUSE_INIT"},
		{0, "OP_0"},
		{7, "OP_7"},
		{19, "OP_19"},
		{53, "OP_53"},
	}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("Opcode(%d).String() = %q, want %q", uint32(tt.op), got, tt.want)
		}
		if got, want := tt.op.Known(), tt.want[:3] != "OP_"; got != want {
			t.Errorf("Opcode(%d).Known() = %v, want %v", uint32(tt.op), got, want)
		}
	}
}

// TestMatchesKernelHeader checks the table against the installed uapi
// header: every FUSE_* / CUSE_* opcode there must carry the same number and
// name here.
func TestMatchesKernelHeader(t *testing.T) {
	const header = "/usr/include/linux/fuse.h"
	f, err := os.Open(header)
	if err != nil {
		t.Skipf("kernel uapi header not installed (linux-libc-dev): %v", err)
	}
	defer f.Close()

	enumStart := regexp.MustCompile(`^enum fuse_opcode \{`)
	entry := regexp.MustCompile(`^\s*(FUSE|CUSE)_([A-Z0-9_]+)\s*=\s*(\d+),`)
	inEnum, seen := false, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case enumStart.MatchString(line):
			inEnum = true
		case inEnum && line == "};":
			inEnum = false
		case inEnum:
			m := entry.FindStringSubmatch(line)
			if m == nil || m[2] == "INIT_BSWAP_RESERVED" {
				continue
			}
			n, err := strconv.ParseUint(m[3], 10, 32)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			want := m[2]
			if m[1] == "CUSE" {
				want = "CUSE_" + want
			}
			if got := Opcode(n).String(); got != want {
				t.Errorf("opcode %d: got %q, header says %q", n, got, want)
			}
			seen++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", header, err)
	}
	if seen < 40 {
		t.Fatalf("parsed only %d opcodes from %s; parser out of date?", seen, header)
	}
}
