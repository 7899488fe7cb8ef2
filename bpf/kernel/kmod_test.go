package kernel

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const buildScript = "kmod/build.sh"

// runBuild runs kmod/build.sh and returns its combined output and exit code.
func runBuild(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{buildScript}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("run %s: %v", buildScript, err)
	return "", 0
}

func TestModuleVersionMatchesBuildScript(t *testing.T) {
	out, code := runBuild(t, "--print-version")
	if code != 0 {
		t.Fatalf("build.sh --print-version: exit %d\n%s", code, out)
	}
	if got := strings.TrimSpace(out); got != ModuleVersion() {
		t.Errorf("build.sh gives version %q, ModuleVersion() %q: the module and the Go side disagree", got, ModuleVersion())
	}
	if !strings.HasPrefix(ModuleVersion(), ModuleVersionPrefix) || len(ModuleVersion()) != len(ModuleVersionPrefix)+12 {
		t.Errorf("ModuleVersion() = %q, want %s + 12 hex digits", ModuleVersion(), ModuleVersionPrefix)
	}
}

// fakeSource writes a linux-source-6.1 tarball holding only what build.sh
// reads, taken from the installed tarball; edit may change files first.
func fakeSource(t *testing.T, edit func(dir string)) string {
	t.Helper()
	if testing.Short() {
		t.Skip("unpacks the kernel source tarball (about 15 s); skipped with -short")
	}
	if _, err := os.Stat(sourceTarball); err != nil {
		t.Skipf("%s not installed (apt-get install linux-source-6.1): %v", sourceTarball, err)
	}
	dir := t.TempDir()
	members := []string{"fs/fuse", "include/uapi/linux/fuse.h", "MAINTAINERS", "Makefile"}
	args := []string{"-xJf", sourceTarball, "-C", dir}
	for _, m := range members {
		args = append(args, sourceTop+"/"+m)
	}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("extract %s: %v\n%s", sourceTarball, err, out)
	}
	if edit != nil {
		edit(filepath.Join(dir, sourceTop))
	}
	tarball := filepath.Join(t.TempDir(), "linux-source-6.1.tar.xz")
	if out, err := exec.Command("tar", "-cJf", tarball, "-C", dir, sourceTop).CombinedOutput(); err != nil {
		t.Fatalf("pack %s: %v\n%s", tarball, err, out)
	}
	return tarball
}

func TestBuildRefusesAnotherFuseTree(t *testing.T) {
	changed := fakeSource(t, func(dir string) {
		f := filepath.Join(dir, "fs/fuse/dev.c")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, append(b, "\n/* a later stable update */\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	out, code := runBuild(t, "--source", changed, "--source-version", "6.1.999-1", "--kver", "6.1.0-999-amd64")
	if code != 2 {
		t.Fatalf("build.sh on a changed fs/fuse: exit %d, want 2 (refused)\n%s", code, out)
	}
	for _, want := range []string{"refusing to build", "not the tree the cryptfs patch was made for", "Changing the patch", "--print-source-hash"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal message lacks %q:\n%s", want, out)
		}
	}
}

func TestBuildRefusesMismatchedHeaders(t *testing.T) {
	pristine := fakeSource(t, nil)
	// The same tree passes the source check and stops at the kernel: no
	// headers for a kernel that does not exist.
	out, code := runBuild(t, "--source", pristine, "--source-version", "6.1.192-3", "--kver", "6.1.0-999-amd64")
	if code != 2 || !strings.Contains(out, "fs/fuse matches the tree the patch was made for") ||
		!strings.Contains(out, "apt-get install linux-headers-6.1.0-999-amd64") {
		t.Fatalf("build.sh without headers: exit %d, want 2 after the source check passed\n%s", code, out)
	}

	headers, kver, version := installedHeaders(t)
	out, code = runBuild(t, "--source", pristine, "--source-version", version+"+other", "--kver", kver, "--headers", headers)
	if code != 2 || !strings.Contains(out, "apt-get install linux-source-6.1="+version) {
		t.Fatalf("build.sh with headers of %s and a source of another version: exit %d, want 2 naming linux-source-6.1=%s\n%s", version, code, version, out)
	}
}

// installedHeaders finds installed Debian 6.1 headers of the same version
// as the installed linux-source-6.1.
func installedHeaders(t *testing.T) (dir, kver, version string) {
	t.Helper()
	src, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "linux-source-6.1").Output()
	if err != nil {
		t.Skipf("linux-source-6.1 is not installed: %v", err)
	}
	builds, _ := filepath.Glob("/lib/modules/6.1.0-*-amd64/build")
	for _, b := range builds {
		k := filepath.Base(filepath.Dir(b))
		v, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "linux-headers-"+k).Output()
		if err == nil && string(v) == string(src) {
			return b, k, string(v)
		}
	}
	t.Skipf("no linux-headers-6.1.0-*-amd64 of linux-source-6.1's version %s installed (apt-get install linux-headers-6.1.0-NN-amd64 of that version)", src)
	return "", "", ""
}

func TestBuildModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fs/fuse (about 30 s); skipped with -short")
	}
	if _, err := os.Stat(sourceTarball); err != nil {
		t.Skipf("%s not installed: %v", sourceTarball, err)
	}
	headers, kver, version := installedHeaders(t)
	out := t.TempDir()
	log, code := runBuild(t, "--kver", kver, "--headers", headers, "--out", out)
	if code != 0 {
		t.Fatalf("build.sh for %s (%s): exit %d\n%s", kver, version, code, log)
	}
	for _, m := range []string{"fuse", "cuse", "virtiofs"} {
		info := modinfoOf(t, filepath.Join(out, m+".ko"))
		if vm := strings.Fields(info["vermagic"]); len(vm) == 0 || vm[0] != kver {
			t.Errorf("%s.ko vermagic %q, want %s", m, info["vermagic"], kver)
		}
	}
	info := modinfoOf(t, filepath.Join(out, "fuse.ko"))
	if info["version"] != ModuleVersion() {
		t.Errorf("fuse.ko version %q, want %q", info["version"], ModuleVersion())
	}
	if info["cryptfs_source"] != "linux-source-6.1 "+version {
		t.Errorf("fuse.ko cryptfs_source %q", info["cryptfs_source"])
	}
	// The hook's code is in; the module is stripped of debug info.
	f, err := elf.Open(filepath.Join(out, "fuse.ko"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range syms {
		found = found || s.Name == "fuse_fastpath_attach"
	}
	if !found {
		t.Error("fuse.ko has no fuse_fastpath_attach: built without the fast path")
	}
	if f.Section(".debug_info") != nil {
		t.Error("fuse.ko keeps its debug info")
	}
}

// modinfoOf reads a module's .modinfo fields.
func modinfoOf(t *testing.T, ko string) map[string]string {
	t.Helper()
	f, err := elf.Open(ko)
	if err != nil {
		t.Fatalf("open %s: %v", ko, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		t.Fatalf("%s has no .modinfo", ko)
	}
	raw, err := sec.Data()
	if err != nil {
		t.Fatal(err)
	}
	info := map[string]string{}
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			if _, dup := info[k]; !dup {
				info[k] = v
			}
		}
	}
	return info
}
