package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/control"
)

// End-to-end tests of the mount helper (cmd/cryptfs/mounthelper.go) with
// the real mount(8): it runs /sbin/mount.fuse.cryptfs for `mount -t
// fuse.cryptfs` and for /etc/fstab lines of that type, and so for the
// mount units systemd's fstab generator makes.

// helperDir is where mount(8) looks for mount.TYPE helpers first
// (libmount's search path is /sbin:/sbin/fs.d:/sbin/fs, fixed at build
// time); on Debian 12 /sbin is /usr/sbin.
const helperDir = "/sbin"

// installMountHelpers links /sbin/mount.fuse.cryptfs and /sbin/mount.cryptfs
// to the binary under test until the test ends. It skips the test where
// they exist already (an installed cryptfs: not ours to replace) or
// mount(8) is missing.
func installMountHelpers(t *testing.T) {
	t.Helper()
	cryptfstest.RequireFUSE(t)
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("skipping: mount(8) not found (apt-get install mount)")
	}
	bin := cryptfstest.Binary(t)
	names := []string{"mount.fuse.cryptfs", "mount.cryptfs"}
	for _, name := range names {
		if _, err := os.Lstat(filepath.Join(helperDir, name)); err == nil {
			t.Skipf("skipping: %s exists (an installed cryptfs?) and the test does not replace it", filepath.Join(helperDir, name))
		}
	}
	for _, name := range names {
		p := filepath.Join(helperDir, name)
		if err := os.Symlink(bin, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if target, err := os.Readlink(p); err == nil && target == bin {
				if err := os.Remove(p); err != nil {
					t.Errorf("removing %s: %v", p, err)
				}
			}
		})
	}
}

// helperSetup makes a cipher directory with the default KDF (the helper
// has no way to pass the tests' --insecure-kdf, on purpose), its password
// file (mode 0600) and an empty mountpoint, which is cleaned up whatever
// happens.
func helperSetup(t *testing.T) (cipher, passfile, mnt string) {
	t.Helper()
	dir := t.TempDir()
	cipher = filepath.Join(dir, "cipher")
	passfile = filepath.Join(dir, "pass")
	mnt = filepath.Join(dir, "mnt")
	mustDo(t, os.WriteFile(passfile, []byte(cryptfstest.Password+"\n"), 0o600))
	mustDo(t, os.Mkdir(mnt, 0o755))
	cli := cryptfstest.NewCLI(t)
	cli.StrongKDF = true
	if _, err := cli.Init(context.Background(), cipher); err != nil {
		t.Fatal(err)
	}
	cleanupHelperMount(t, mnt)
	return cipher, passfile, mnt
}

// cleanupHelperMount leaves nothing mounted at mnt and no daemon of it
// running when the test ends.
func cleanupHelperMount(t *testing.T, mnt string) {
	t.Cleanup(func() {
		if !cryptfstest.IsMounted(mnt) {
			return
		}
		st, err := cryptfstest.NewCLI(t).Status(context.Background(), mnt)
		if err := cryptfstest.Detach(mnt); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if err == nil {
			waitExit(t, st)
		}
	})
}

// waitExit waits until the daemon st describes has exited, killing it
// after 30 s.
func waitExit(t *testing.T, st control.Status) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for st.Running() {
		if time.Now().After(deadline) {
			syscall.Kill(st.PID, syscall.SIGKILL)
			t.Errorf("daemon %d still running 30 s after its mount went", st.PID)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runMount runs mount(8) (or umount) as root would at boot: standard input
// is /dev/null. It returns the output and the exit code.
func runMount(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out), 0
}

// mountEntry is the mount table's line for a mountpoint.
type mountEntry struct {
	perMount, fstype, source, super []string
}

// mountAt returns the topmost mount at mnt from /proc/self/mountinfo.
func mountAt(t *testing.T, mnt string) (mountEntry, bool) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	mustDo(t, err)
	var e mountEntry
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 || unescapeMount(f[4]) != mnt {
			continue
		}
		e = mountEntry{
			perMount: strings.Split(f[5], ","),
			fstype:   []string{f[sep+1]},
			source:   []string{unescapeMount(f[sep+2])},
			super:    strings.Split(f[sep+3], ","),
		}
		found = true
	}
	return e, found
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// checkHelperMount checks that a cryptfs mount of cipher is at mnt with
// the per-mount options want, that files written there are encrypted in
// cipher and read back, and that the daemon's command line holds no
// secret. It returns the daemon's status.
func checkHelperMount(t *testing.T, cipher, mnt string, want ...string) control.Status {
	t.Helper()
	e, ok := mountAt(t, mnt)
	if !ok {
		t.Fatalf("nothing mounted at %s", mnt)
	}
	if e.fstype[0] != "fuse.cryptfs" || e.source[0] != cipher {
		t.Errorf("mounted %s from %s, want fuse.cryptfs from %s", e.fstype[0], e.source[0], cipher)
	}
	for _, o := range append([]string{"nosuid", "nodev"}, want...) {
		if !slices.Contains(e.perMount, o) {
			t.Errorf("per-mount options %v lack %s", e.perMount, o)
		}
	}
	st, err := cryptfstest.NewCLI(t).Status(context.Background(), mnt)
	if err != nil {
		t.Fatalf("cryptfs status: %v", err)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(st.PID) + "/cmdline")
	mustDo(t, err)
	if bytes.Contains(cmdline, []byte(cryptfstest.Password)) {
		t.Errorf("the daemon's command line holds the password: %q", cmdline)
	}
	return st
}

// unmountHelper runs umount(8) on mnt and checks that the mount and its
// daemon are gone.
func unmountHelper(t *testing.T, mnt string, st control.Status) {
	t.Helper()
	if out, code := runMount(t, "umount", mnt); code != 0 {
		t.Fatalf("umount %s: exit %d\n%s", mnt, code, out)
	}
	if cryptfstest.IsMounted(mnt) {
		t.Fatalf("%s still mounted after umount", mnt)
	}
	waitExit(t, st)
}

// TestMountHelper: `mount -t fuse.cryptfs` and `mount -t cryptfs` mount
// with the options turned into cryptfs mount flags (the tier, allow_other,
// ro) and per-mount flags (noexec, noatime) that hold; umount ends the
// mount and its daemon. Refusals (a wrong password, no password at boot,
// an unknown option) leave nothing mounted, with the helper's exit code.
func TestMountHelper(t *testing.T) {
	installMountHelpers(t)
	cipher, pass, mnt := helperSetup(t)
	log := filepath.Join(t.TempDir(), "daemon.log")

	out, code := runMount(t, "mount", "-t", "fuse.cryptfs", "-o",
		"passfile="+pass+",allow_other,fast_path=kernel-cache,noexec,noatime,log_file="+log+",nofail,x-systemd.device-timeout=10s",
		cipher, mnt)
	if code != 0 {
		t.Fatalf("mount -t fuse.cryptfs: exit %d\n%s", code, out)
	}
	st := checkHelperMount(t, cipher, mnt, "noexec", "noatime")
	if e, _ := mountAt(t, mnt); !slices.Contains(e.super, "allow_other") {
		t.Errorf("super options %v lack allow_other", e.super)
	}
	if st.Tier != "kernel-cache" || st.LogFile != log {
		t.Errorf("status: tier %q log %q, want kernel-cache and %s", st.Tier, st.LogFile, log)
	}
	data := []byte("written through mount -t fuse.cryptfs\n")
	mustDo(t, os.WriteFile(filepath.Join(mnt, "file"), data, 0o755))
	checkBytes(t, readFile(t, filepath.Join(mnt, "file")), data, "read back")
	if _, err := os.Stat(filepath.Join(cipher, "file")); err == nil {
		t.Error("the cipher directory holds a file by its plaintext name")
	}
	// noexec holds: an executable file on the mount does not run.
	prog := filepath.Join(mnt, "true")
	mustDo(t, os.WriteFile(prog, readFile(t, "/bin/true"), 0o755))
	if err := exec.Command(prog).Run(); !errors.Is(err, syscall.EACCES) {
		t.Errorf("running a program on a noexec mount: %v, want EACCES", err)
	}
	unmountHelper(t, mnt, st)

	// Type cryptfs (mount.cryptfs), read-only with -r.
	out, code = runMount(t, "mount", "-t", "cryptfs", "-r", "-o", "passfile="+pass+",log_file="+log, cipher, mnt)
	if code != 0 {
		t.Fatalf("mount -t cryptfs -r: exit %d\n%s", code, out)
	}
	st = checkHelperMount(t, cipher, mnt, "ro")
	checkBytes(t, readFile(t, filepath.Join(mnt, "file")), data, "read back after a remount")
	if err := os.WriteFile(filepath.Join(mnt, "new"), data, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing to a ro mount: %v, want EROFS", err)
	}
	unmountHelper(t, mnt, st)

	wrong := filepath.Join(t.TempDir(), "wrong")
	mustDo(t, os.WriteFile(wrong, []byte("not the password\n"), 0o600))
	for _, tt := range []struct {
		name, opts string
		code       int
		msg        string
	}{
		{"wrong password", "passfile=" + wrong, 10, "wrong password"},
		{"no password at boot", "allow_other", 2, "no password: add passfile=FILE"},
		{"unknown option", "passfile=" + pass + ",uid=1000", 2, `unknown mount option "uid"`},
		{"password in the options", "password=" + cryptfstest.Password, 2, "a password never goes in the mount options"},
	} {
		out, code := runMount(t, "mount", "-t", "fuse.cryptfs", "-o", tt.opts, cipher, mnt)
		if code != tt.code || !strings.Contains(out, tt.msg) {
			t.Errorf("%s: mount exit %d, want %d with %q\n%s", tt.name, code, tt.code, tt.msg, out)
		}
		if cryptfstest.IsMounted(mnt) {
			t.Fatalf("%s: %s is mounted", tt.name, mnt)
		}
	}
}

// TestMountHelperEtcFstab: with a line in /etc/fstab, `mount MOUNTPOINT`
// mounts it through the helper and `umount MOUNTPOINT` ends it. The test
// puts /etc/fstab back byte for byte, whatever happens.
func TestMountHelperEtcFstab(t *testing.T) {
	installMountHelpers(t)
	cipher, pass, mnt := helperSetup(t)
	const fstab = "/etc/fstab"
	orig, err := os.ReadFile(fstab)
	existed := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !existed {
			os.Remove(fstab)
			return
		}
		if err := os.WriteFile(fstab, orig, 0o644); err != nil {
			t.Errorf("restoring %s: %v", fstab, err)
		}
		if now, err := os.ReadFile(fstab); err != nil || !bytes.Equal(now, orig) {
			t.Errorf("%s not restored byte for byte: %v", fstab, err)
		}
	})
	line := fstabEscape(cipher) + " " + fstabEscape(mnt) +
		" fuse.cryptfs passfile=" + fstabEscape(pass) + ",noauto,nofail,_netdev,x-systemd.automount,fast_path=off,log_file=" +
		fstabEscape(filepath.Join(t.TempDir(), "log")) + " 0 0\n"
	content := bytes.Clone(orig)
	if len(content) > 0 && content[len(content)-1] != '\n' {
		content = append(content, '\n')
	}
	content = append(content, "# cryptfs e2e test (TestMountHelperEtcFstab), removed when it ends\n"+line...)
	mustDo(t, os.WriteFile(fstab, content, 0o644))

	if out, code := runMount(t, "mount", mnt); code != 0 {
		t.Fatalf("mount %s (from fstab): exit %d\n%s", mnt, code, out)
	}
	st := checkHelperMount(t, cipher, mnt)
	if st.Tier != "off" {
		t.Errorf("tier %q, want off (fast_path=off in fstab)", st.Tier)
	}
	mustDo(t, os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644))
	unmountHelper(t, mnt, st)
}

// fstabEscape escapes a path for /etc/fstab (\040 for a space...).
func fstabEscape(s string) string {
	return strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`).Replace(s)
}

// TestMountHelperSystemdGenerator: an fstab line goes through systemd's
// fstab generator (run offline on a private fstab, SYSTEMD_FSTAB), and
// the mount systemd would then run for the unit it writes -- `mount WHAT
// WHERE -t TYPE -o OPTIONS` with standard input on /dev/null
// (src/core/mount.c) -- mounts through the helper.
func TestMountHelperSystemdGenerator(t *testing.T) {
	const generator = "/lib/systemd/system-generators/systemd-fstab-generator"
	if _, err := os.Stat(generator); err != nil {
		t.Skipf("skipping: %s not found (apt-get install systemd)", generator)
	}
	installMountHelpers(t)
	cipher, pass, mnt := helperSetup(t)
	dir := t.TempDir()
	tab := filepath.Join(dir, "fstab")
	mustDo(t, os.WriteFile(tab, []byte(fstabEscape(cipher)+" "+fstabEscape(mnt)+
		" fuse.cryptfs passfile="+pass+",allow_other,nofail,x-systemd.requires=local-fs.target,log_file="+filepath.Join(dir, "log")+" 0 0\n"), 0o644))
	out := filepath.Join(dir, "units")
	for _, d := range []string{out, out + ".early", out + ".late"} {
		mustDo(t, os.Mkdir(d, 0o755))
	}
	cmd := exec.Command(generator, out, out+".early", out+".late")
	cmd.Env = append(os.Environ(), "SYSTEMD_FSTAB="+tab, "SYSTEMD_PROC_CMDLINE=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", generator, err, b)
	}
	units, _ := filepath.Glob(filepath.Join(out, "*.mount"))
	if len(units) != 1 {
		t.Fatalf("the generator wrote %v, want one .mount unit", units)
	}
	unit := map[string]string{}
	for _, l := range strings.Split(string(readFile(t, units[0])), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			unit[k] = v
		}
	}
	if unit["What"] != cipher || unit["Where"] != mnt || unit["Type"] != "fuse.cryptfs" {
		t.Fatalf("unit %s: What=%q Where=%q Type=%q", units[0], unit["What"], unit["Where"], unit["Type"])
	}
	if o, code := runMount(t, "mount", unit["What"], unit["Where"], "-t", unit["Type"], "-o", unit["Options"]); code != 0 {
		t.Fatalf("mount as systemd runs it (Options=%s): exit %d\n%s", unit["Options"], code, o)
	}
	st := checkHelperMount(t, cipher, mnt)
	unmountHelper(t, mnt, st)
}
