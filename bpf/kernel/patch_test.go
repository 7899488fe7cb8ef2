package kernel

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const (
	// sourceTarball is what Debian's linux-source-6.1 package installs.
	sourceTarball = "/usr/src/linux-source-6.1.tar.xz"
	sourceTop     = "linux-source-6.1"
	uapiHeader    = "include/uapi/linux/fuse_fastpath.h"
	sharedHeader  = "../include/fuse_fastpath.h"
)

// patches returns the patch series in order.
func patches(t *testing.T) []string {
	t.Helper()
	ps, err := filepath.Glob("*.patch")
	if err != nil {
		t.Fatalf("glob patches: %v", err)
	}
	if len(ps) == 0 {
		t.Fatal("no *.patch in bpf/kernel")
	}
	sort.Strings(ps)
	return ps
}

// diffFile describes one file section of a patch.
type diffFile struct {
	path    string
	created bool
	// content is the whole file for a created file (one hunk, all "+").
	content []byte
	// badHunk is set when a created file's hunk is not a plain add.
	badHunk bool
}

// parsePatch returns the file sections of a git format-patch file.
func parsePatch(t *testing.T, name string) []*diffFile {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	var files []*diffFile
	var cur *diffFile
	inHunk := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "diff --git a/"):
			f := strings.Fields(line)
			cur = &diffFile{path: strings.TrimPrefix(f[len(f)-1], "b/")}
			files = append(files, cur)
			inHunk = false
		case cur == nil:
		case !inHunk && strings.HasPrefix(line, "new file mode"):
			cur.created = true
		case strings.HasPrefix(line, "@@ "):
			inHunk = true
			if cur.created && !strings.HasPrefix(line, "@@ -0,0 +1") {
				cur.badHunk = true
			}
		case inHunk && cur.created && strings.HasPrefix(line, "+"):
			cur.content = append(cur.content, line[1:]+"\n"...)
		case inHunk && cur.created && line == `\ No newline at end of file`:
			cur.content = bytes.TrimSuffix(cur.content, []byte("\n"))
		case inHunk && line == "-- ":
			inHunk = false // format-patch signature
		case inHunk && cur.created && line != "":
			cur.badHunk = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scan %s: %v", name, err)
	}
	return files
}

func TestPatchCarriesTheUAPIHeaderVerbatim(t *testing.T) {
	want, err := os.ReadFile(sharedHeader)
	if err != nil {
		t.Fatalf("read the shared header: %v", err)
	}
	found := 0
	for _, p := range patches(t) {
		for _, f := range parsePatch(t, p) {
			if f.path != uapiHeader {
				continue
			}
			found++
			if !f.created || f.badHunk {
				t.Errorf("%s: %s must be added as a new file in one hunk", p, uapiHeader)
				continue
			}
			if !bytes.Equal(f.content, want) {
				t.Errorf("%s: %s differs from bpf/include/fuse_fastpath.h; regenerate the patch (bpf/kernel/README.md)", p, uapiHeader)
			}
		}
	}
	if found != 1 {
		t.Errorf("the series adds %s %d times, want once", uapiHeader, found)
	}
}

func TestPatchHasSignedOffCommitMessage(t *testing.T) {
	for _, p := range patches(t) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		msg, _, ok := bytes.Cut(data, []byte("\n---\n"))
		if !ok {
			t.Errorf("%s: no '---' separator; not a git format-patch file", p)
			continue
		}
		if !bytes.Contains(msg, []byte("\nSigned-off-by: ")) {
			t.Errorf("%s: commit message without Signed-off-by", p)
		}
		if !bytes.Contains(msg, []byte("\nSubject: [PATCH")) {
			t.Errorf("%s: no Subject line", p)
		}
	}
}

// extractTree unpacks from the linux-source-6.1 tarball what applying the
// series and running checkpatch need: the files the patches modify,
// scripts/, and the top-level files checkpatch uses to recognise a tree.
func extractTree(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(sourceTarball); err != nil {
		t.Skipf("%s not installed (apt-get install linux-source-6.1): %v", sourceTarball, err)
	}
	for _, tool := range []string{"tar", "xz", "patch", "perl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	members := map[string]bool{"scripts": true}
	for _, f := range []string{"COPYING", "CREDITS", "Kbuild", "MAINTAINERS", "Makefile", "README"} {
		members[f] = true
	}
	for _, p := range patches(t) {
		for _, f := range parsePatch(t, p) {
			if !f.created {
				members[f.path] = true
			}
		}
	}
	dir := t.TempDir()
	args := []string{"-xJf", sourceTarball, "-C", dir, "--strip-components=1"}
	for m := range members {
		args = append(args, sourceTop+"/"+m)
	}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("extract %s: %v\n%s", sourceTarball, err, out)
	}
	// checkpatch checks that these exist before it trusts the tree.
	for _, d := range []string{"Documentation", "arch", "include", "drivers", "fs", "init", "ipc", "kernel", "lib"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPatchAppliesAndPassesCheckpatch(t *testing.T) {
	if testing.Short() {
		t.Skip("unpacks the kernel source tarball (about 15 s); skipped with -short")
	}
	tree := extractTree(t)
	for _, p := range patches(t) {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("apply/"+p, func(t *testing.T) {
			cmd := exec.Command("patch", "-p1", "--fuzz=0", "--no-backup-if-mismatch", "-f", "-i", abs)
			cmd.Dir = tree
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("patch does not apply to %s: %v\n%s", sourceTarball, err, out)
			}
			if bytes.Contains(out, []byte("offset")) || bytes.Contains(out, []byte("fuzz")) {
				t.Errorf("patch applies only with offsets or fuzz; regenerate it:\n%s", out)
			}
		})
		t.Run("checkpatch/"+p, func(t *testing.T) {
			cmd := exec.Command("perl", "scripts/checkpatch.pl", "--strict", "--quiet", abs)
			cmd.Dir = tree
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) != 0 {
				t.Errorf("checkpatch.pl --strict complains (%v):\n%s", err, out)
			}
		})
	}
	hdr, err := os.ReadFile(filepath.Join(tree, uapiHeader))
	if err != nil {
		t.Fatalf("the patched tree has no %s: %v", uapiHeader, err)
	}
	want, err := os.ReadFile(sharedHeader)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hdr, want) {
		t.Errorf("the patched tree's %s differs from bpf/include/fuse_fastpath.h", uapiHeader)
	}
}
