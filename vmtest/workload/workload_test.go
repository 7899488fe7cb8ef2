package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The checkers are tested on a plain directory, where the "file system"
// and the published versions can be made to disagree on purpose: a check
// that cannot see a stale value would pass here too.

func TestModeAtLeast(t *testing.T) {
	tests := []struct {
		m      uint32
		c0, c1 uint64
		want   bool
	}{
		{m: 5, c0: 5, c1: 5, want: true},
		{m: 6, c0: 5, c1: 5, want: true}, // a chmod in flight
		{m: 7, c0: 5, c1: 5, want: false},
		{m: 4, c0: 5, c1: 9, want: false}, // older than published
		{m: 9, c0: 5, c1: 9, want: true},
		{m: 1, c0: 511, c1: 513, want: true}, // wrapped: counter 513
		{m: 510, c0: 511, c1: 513, want: false},
	}
	for _, tt := range tests {
		if got := modeAtLeast(tt.m, tt.c0, tt.c1); got != tt.want {
			t.Errorf("modeAtLeast(%o, %d, %d) = %v, want %v", tt.m, tt.c0, tt.c1, got, tt.want)
		}
	}
}

// fixture is a shared directory with writer 0's objects at version 0 and
// the state file, on the local file system.
func fixture(t *testing.T) (dir string, s *state) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, sharedDir)
	if err := setupShared(dir, 1); err != nil {
		if strings.Contains(err.Error(), "setxattr") {
			t.Skipf("the temporary directory has no user xattrs: %v", err)
		}
		t.Fatal(err)
	}
	s, err := openState(filepath.Join(root, "state"), true)
	if err != nil {
		t.Fatal(err)
	}
	return dir, s
}

func kindOf(name string) int {
	for i, n := range checkNames {
		if n == name {
			return i
		}
	}
	panic("no check " + name)
}

func TestCheckDetectsStaleValues(t *testing.T) {
	tests := []struct {
		name string
		kind string
		// mutate makes the file system and the published state agree or
		// disagree.
		mutate func(t *testing.T, dir string, s *state)
		stale  bool
	}{
		{"size current", "size", func(t *testing.T, dir string, s *state) {
			must(t, os.Truncate(filepath.Join(dir, mainName(0)), 100))
			s.store(0, pubSize, 100)
		}, false},
		{"size stale", "size", func(t *testing.T, dir string, s *state) {
			s.store(0, pubSize, 100) // published, but the file still has size 0
		}, true},
		{"mode current", "mode", func(t *testing.T, dir string, s *state) {
			must(t, os.Chmod(filepath.Join(dir, mainName(0)), os.FileMode(modeOf(3))))
			s.store(0, pubMode, 3)
		}, false},
		{"mode stale", "mode", func(t *testing.T, dir string, s *state) {
			must(t, os.Chmod(filepath.Join(dir, mainName(0)), os.FileMode(modeOf(2))))
			s.store(0, pubMode, 3)
		}, true},
		{"xattr current", "xattr", func(t *testing.T, dir string, s *state) {
			must(t, unix.Setxattr(filepath.Join(dir, mainName(0)), xattrVersion, []byte("4"), 0))
			s.store(0, pubXattr, 4)
		}, false},
		{"xattr stale", "xattr", func(t *testing.T, dir string, s *state) {
			must(t, unix.Setxattr(filepath.Join(dir, mainName(0)), xattrVersion, []byte("3"), 0))
			s.store(0, pubXattr, 4)
		}, true},
		{"capability absent", "capability", func(t *testing.T, dir string, s *state) {}, false},
		{"rename current", "rename", func(t *testing.T, dir string, s *state) {
			must(t, os.Rename(filepath.Join(dir, renameName(0, 0)), filepath.Join(dir, renameName(0, 1))))
			s.store(0, pubRenaming, 1)
			s.store(0, pubRename, 1)
		}, false},
		{"rename: old name still there", "rename", func(t *testing.T, dir string, s *state) {
			must(t, os.WriteFile(filepath.Join(dir, renameName(0, 1)), nil, 0o644))
			s.store(0, pubRenaming, 1)
			s.store(0, pubRename, 1)
		}, true},
		{"rename: new name missing", "rename", func(t *testing.T, dir string, s *state) {
			must(t, os.Remove(filepath.Join(dir, renameName(0, 0))))
		}, true},
		{"rename: new name gone by a rename in flight", "rename", func(t *testing.T, dir string, s *state) {
			must(t, os.Rename(filepath.Join(dir, renameName(0, 0)), filepath.Join(dir, renameName(0, 1))))
			s.store(0, pubRenaming, 1)
		}, false},
		{"created and present", "unlink", func(t *testing.T, dir string, s *state) {
			must(t, os.WriteFile(filepath.Join(dir, unlinkName(0, 1)), nil, 0o644))
			s.store(0, pubCreated, 1)
		}, false},
		{"created but missing", "unlink", func(t *testing.T, dir string, s *state) {
			s.store(0, pubCreated, 1)
		}, true},
		{"created, unlink in flight", "unlink", func(t *testing.T, dir string, s *state) {
			s.store(0, pubCreated, 1)
			s.store(0, pubUnlinking, 1)
		}, false},
		{"unlinked but present", "unlink", func(t *testing.T, dir string, s *state) {
			must(t, os.WriteFile(filepath.Join(dir, unlinkName(0, 1)), nil, 0o644))
			s.store(0, pubCreated, 1)
			s.store(0, pubUnlinking, 1)
			s.store(0, pubUnlinked, 1)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, s := fixture(t)
			tt.mutate(t, dir, s)
			msg := check(dir, s, 0, kindOf(tt.kind))
			if (msg != "") != tt.stale {
				t.Errorf("check %s = %q, want stale=%v", tt.kind, msg, tt.stale)
			}
		})
	}
}

func TestFinalState(t *testing.T) {
	dir, s := fixture(t)
	if err := finalState(dir, s, 1); err != nil {
		t.Fatalf("version 0: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, unlinkName(0, 1)), nil, 0o644))
	if err := finalState(dir, s, 1); err == nil {
		t.Error("an unpublished file in the directory was not noticed")
	}
	s.store(0, pubCreated, 1)
	if err := finalState(dir, s, 1); err != nil {
		t.Errorf("after publishing the creation: %v", err)
	}
	s.store(0, pubSize, 1)
	if err := finalState(dir, s, 1); err == nil {
		t.Error("a size behind the published one was not noticed")
	}
}

// TestTreePass runs the metadata workload on a plain directory: two passes
// agree, and a change to the tree is caught.
func TestTreePass(t *testing.T) {
	dir := t.TempDir()
	tr := newTree(3, 20)
	if err := tr.build(dir); err != nil {
		if strings.Contains(err.Error(), "setxattr") {
			t.Skipf("the temporary directory has no user xattrs: %v", err)
		}
		t.Fatal(err)
	}
	a, err := tr.pass(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.pass(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := firstDiffs(a, b, 3); d != "" {
		t.Fatalf("two passes over an unchanged tree differ:\n%s", d)
	}
	if want := len(tr.dirs) + len(tr.files); strings.Count(a, "\n") < 3*want {
		t.Errorf("a pass produced %d lines for %d paths", strings.Count(a, "\n"), want)
	}
	for _, mutate := range []func(string) error{
		func(p string) error { return os.Chmod(p, 0o611) },
		func(p string) error { return unix.Setxattr(p, xattrTag, []byte("other"), 0) },
		func(p string) error { return os.Truncate(p, 1) },
	} {
		p := filepath.Join(dir, tr.files[0])
		if err := mutate(p); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.pass(dir); err == nil {
			t.Error("a pass over a changed tree did not fail")
		}
		if err := os.Remove(p); err != nil { // rebuild the file as it was
			t.Fatal(err)
		}
		if err := (tree{files: tr.files[:1], want: tr.want}).build(dir); err != nil {
			t.Fatal(err)
		}
	}
}

func TestJudge(t *testing.T) {
	res := func(tier string, requests, hits uint64) tierResult {
		return tierResult{tier: tier, passes: []map[string]counts{{"LOOKUP": {Daemon: requests, Hits: hits}}}}
	}
	c := metaConfig{minCut: 90}
	tests := []struct {
		name    string
		results []tierResult
		ok      bool
	}{
		{"cut 95%", []tierResult{res("off", 1000, 0), res("ebpf", 50, 900)}, true},
		{"cut exactly 90%", []tierResult{res("off", 1000, 0), res("ebpf", 100, 900)}, true},
		{"cut 89.9%", []tierResult{res("off", 1000, 0), res("ebpf", 101, 900)}, false},
		{"no hits", []tierResult{res("off", 1000, 0), res("ebpf", 10, 0)}, false},
		{"kernel-cache is not judged", []tierResult{res("off", 1000, 0), res("kernel-cache", 900, 0)}, true},
	}
	for _, tt := range tests {
		if err := judge(c, tt.results); (err == nil) != tt.ok {
			t.Errorf("%s: judge = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUntarArchive: the untar workload's archive extracts with the
// machine's tar into the tree it describes, and describeTree sees every
// entry with its content (the comparison between tiers rests on it).
func TestUntarArchive(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar on this machine")
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "src.tar")
	entries, err := makeArchive(archive, 12, 5)
	if err != nil {
		t.Fatal(err)
	}
	// src/, 2 top-level directories, 12 directories with 5 files and a
	// symlink each.
	if want := 1 + 2 + 12*(1+5+1); entries != want {
		t.Fatalf("%d entries, want %d", entries, want)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(tarBin, "-xf", archive, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, b)
	}
	listing, err := describeTree(filepath.Join(out, "src"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(listing, "\n")
	if len(lines) != entries {
		t.Errorf("describeTree lists %d entries, want %d:\n%s", len(lines), entries, listing)
	}
	for _, want := range []string{
		"top01/dir011/link Lrwxrwxrwx size=9 -> file000.c",
		"top00/dir000/file000.c -rwxr-xr-x mtime=1700000000 size=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	} {
		if !strings.Contains(listing+"\n", want+"\n") {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
	// A changed byte changes the description.
	if err := os.WriteFile(filepath.Join(out, "src/top00/dir001/file002.c"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if again, err := describeTree(filepath.Join(out, "src")); err != nil || again == listing {
		t.Errorf("describeTree did not see a changed file (%v)", err)
	}
}
