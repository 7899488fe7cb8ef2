package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as the helper binary too, as the
// benchmark binary does (`cryptfs-bench helper ...`).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "helper" {
		os.Exit(runHelper(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// callHelper runs a helper in-process and decodes its output.
func callHelper(t *testing.T, args ...string) (helperResult, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runHelper(args, &stdout, &stderr)
	var r helperResult
	if code == 0 {
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("helper %v output %q: %v", args, stdout.String(), err)
		}
	}
	return r, stderr.String(), code
}

func TestHelperWriteRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "stream")
	const size = 3<<20 + 12345 // not a multiple of the block size
	w, errOut, code := callHelper(t, "write", "-file", file, "-size", "3158073")
	if code != 0 {
		t.Fatalf("write: exit %d: %s", code, errOut)
	}
	if w.Bytes != size || len(w.Runs) != 1 || w.Runs[0] <= 0 {
		t.Errorf("write result %+v", w)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != size {
		t.Fatalf("file has %d bytes, want %d", len(data), size)
	}
	// Pseudo-random, so incompressible, and no two megabytes alike.
	if bytes.Equal(data[:1<<20], data[1<<20:2<<20]) {
		t.Errorf("the first two megabytes are equal")
	}
	if bytes.Count(data[:1<<20], []byte{0}) > 1<<20/128 {
		t.Errorf("the data is not random: too many zero bytes")
	}

	r, errOut, code := callHelper(t, "read", "-file", file)
	if code != 0 {
		t.Fatalf("read: exit %d: %s", code, errOut)
	}
	if r.Bytes != size || r.Ops != 4 {
		t.Errorf("read result %+v, want %d bytes in 4 reads", r, size)
	}
}

func TestHelperStat(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/b", "a/c"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("missing-target", filepath.Join(dir, "a/link")); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "list")
	write := func(paths ...string) {
		if err := os.WriteFile(list, []byte(strings.Join(paths, "\x00")+"\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("a", "a/b", "a/c", "a/link") // a dangling symlink is lstat'ed, not followed
	r, errOut, code := callHelper(t, "stat", "-list", list, "-root", dir, "-runs", "3")
	if code != 0 {
		t.Fatalf("stat: exit %d: %s", code, errOut)
	}
	if r.Ops != 4 || len(r.Runs) != 3 {
		t.Errorf("stat result %+v, want 4 entries and 3 runs", r)
	}

	write("a", "a/missing")
	if _, errOut, code := callHelper(t, "stat", "-list", list, "-root", dir); code == 0 || !strings.Contains(errOut, "a/missing") {
		t.Errorf("stat of a missing entry: exit %d, stderr %q", code, errOut)
	}
	if err := os.WriteFile(list, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, code := callHelper(t, "stat", "-list", list, "-root", dir); code == 0 {
		t.Errorf("stat of an empty list succeeded")
	}
}

func TestHelperMkfiles(t *testing.T) {
	dir := t.TempDir()
	r, errOut, code := callHelper(t, "mkfiles", "-dir", dir, "-n", "25", "-size", "100")
	if code != 0 {
		t.Fatalf("mkfiles: exit %d: %s", code, errOut)
	}
	if r.Ops != 25 || r.Bytes != 2500 {
		t.Errorf("mkfiles result %+v", r)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 25 {
		t.Fatalf("%d files, want 25", len(ents))
	}
	data, err := os.ReadFile(filepath.Join(dir, ents[7].Name()))
	if err != nil || len(data) != 100 {
		t.Errorf("file %s: %d bytes, %v", ents[7].Name(), len(data), err)
	}
	// O_EXCL: a second run into the same directory fails.
	if _, _, code := callHelper(t, "mkfiles", "-dir", dir, "-n", "1"); code == 0 {
		t.Errorf("mkfiles over existing files succeeded")
	}
}

func TestHelperUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"write"}, {"write", "-file", "x"}, {"read"}, {"mkfiles", "-n", "0", "-dir", "x"}} {
		if _, _, code := callHelper(t, args...); code == 0 {
			t.Errorf("helper %v succeeded", args)
		}
	}
}
