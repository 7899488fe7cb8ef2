package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/bpf/kernel"
)

// The embedded module sources work outside a checkout: build.sh finds the
// patch series in patches/ and computes the version the Go side expects.
func TestWriteKmodSources(t *testing.T) {
	dir := t.TempDir()
	if err := writeKmodSources(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"build.sh", "dkms.sh", "dkms.conf", "fs-fuse.sha256", "Makefile", "README.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("not written: %v", err)
		}
	}
	patches, _ := filepath.Glob(filepath.Join(dir, "patches", "*.patch"))
	if len(patches) == 0 {
		t.Fatal("no patch written to patches/")
	}
	out, err := exec.Command(filepath.Join(dir, "build.sh"), "--print-version").CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh --print-version from the written sources: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != kernel.ModuleVersion() {
		t.Errorf("written sources give version %q, want %q", got, kernel.ModuleVersion())
	}
}

// kmod status reports on the real host and says what it found.
func TestKmodStatusCLI(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"kmod", "status"}, env{stdout: &stdout, stderr: &stderr})
	if code != 0 {
		t.Fatalf("kmod status: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, field := range []string{"Kernel:", "FUSE:", "Hook:", "ebpf tier:"} {
		if !strings.Contains(stdout.String(), "\n"+field) && !strings.HasPrefix(stdout.String(), field) {
			t.Errorf("kmod status output lacks %q:\n%s", field, stdout.String())
		}
	}
	stdout.Reset()
	if code := run([]string{"kmod", "status", "--json"}, env{stdout: &stdout, stderr: &stderr}); code != 0 {
		t.Fatalf("kmod status --json: exit %d", code)
	}
	if !strings.Contains(stdout.String(), `"want": "`+kernel.ModuleVersion()+`"`) {
		t.Errorf("kmod status --json lacks the wanted version:\n%s", stdout.String())
	}
}
