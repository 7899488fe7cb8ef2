package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// `cryptfs home migrate`: an existing home moved into a cipher tree, as
// home_helpers_test.go sets up users and cleans up after them.

// TestHomeMigrateKillResume: a migration killed with SIGKILL in the middle
// of its copy leaves the plaintext home untouched, no mount and no daemon;
// running it again resumes and finishes; the encrypted home then holds
// exactly what the home held (every byte, mode, owner, time, xattr, hard
// link), the plaintext is kept aside until --finish deletes it.
func TestHomeMigrateKillResume(t *testing.T) {
	homeTools(t)
	service, bin := pamService(t)
	u := newTestUser(t)
	fillHome(t, u)
	// Enough data that the copy takes a few seconds.
	if out, err := asUser(u, `set -e; mkdir "$HOME/bulk"; for i in $(seq 1 150); do head -c 2000000 /dev/urandom > "$HOME/bulk/f$i"; done`); err != nil {
		t.Fatalf("filling the home: %v: %s", err, out)
	}
	before := treeSumAs(t, u.Home, 0, 0)
	cipher := "/home/.cryptfs/" + u.Name
	staging := "/run/cryptfs/migrate/" + u.Name

	cmd := exec.Command(bin, "home", "migrate", u.Name)
	cmd.Stdin = strings.NewReader(u.Password + "\n" + u.Password + "\n")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	mustDo(t, cmd.Start())
	// Kill it once a third of the data is in the cipher tree.
	copied := waitFor(2*time.Minute, func() bool { return diskUsageKiB(cipher) > 100_000 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !copied {
		t.Fatalf("the copy never got going:\n%s", out.String())
	}
	if strings.Contains(out.String(), "Verified") {
		t.Fatalf("the migration ran past the copy before it was killed; the test needs more data:\n%s", out.String())
	}
	if !waitFor(30*time.Second, func() bool { m := homeMountedAt(staging); return !m }) {
		t.Errorf("the staging mount %s stays after the migration was killed", staging)
	}
	if !strings.Contains(out.String(), "recovery key") {
		t.Errorf("no recovery key shown when the tree was created:\n%s", out.String())
	}
	if _, err := os.Stat("/etc/cryptfs/home/" + u.Name + ".conf"); err == nil {
		t.Errorf("a killed migration registered the home")
	}
	if got := treeSumAs(t, u.Home, 0, 0); got != before {
		t.Fatalf("the killed migration changed the plaintext home:\n%s", lineDiff(got, before))
	}

	res := migrateHome(t, bin, u)
	if !strings.Contains(res, "Resuming the migration") || !strings.Contains(res, "Verified") {
		t.Errorf("the second run did not resume and verify:\n%s", res)
	}
	if strings.Contains(res, "recovery key") {
		t.Errorf("the recovery key was shown a second time:\n%s", res)
	}
	if got := listNames(t, u.Home); len(got) != 0 {
		t.Errorf("the mountpoint holds %v, want nothing", got)
	}
	kept := u.Home + ".before-cryptfs"
	if got := treeSumAs(t, kept, 0, 0); got != before {
		t.Errorf("the kept plaintext differs from the home:\n%s", lineDiff(got, before))
	}
	login(t, service, u, u.Password)
	if got := treeSumAs(t, u.Home, u.UID, u.GID); withoutRoot(got) != withoutRoot(before) {
		t.Errorf("the encrypted home differs from the home before the migration:\n%s", lineDiff(withoutRoot(got), withoutRoot(before)))
	}
	logout(t, service, u)

	fin := exec.Command(bin, "home", "migrate", "--finish", u.Name)
	if b, err := fin.CombinedOutput(); err != nil {
		t.Fatalf("--finish: %v\n%s", err, b)
	}
	if _, err := os.Lstat(kept); err == nil {
		t.Errorf("--finish left the plaintext at %s", kept)
	}
}

// TestHomeMigrateFromMount: the source is a directory on another mount, a
// stacked encrypted file system as a mounted eCryptfs home would be (here
// a cryptfs mount of another tree): migrate --from copies it, leaves it as
// it was, and moves the home directory (what a locked eCryptfs home
// shows) aside as the kept plaintext.
func TestHomeMigrateFromMount(t *testing.T) {
	homeTools(t)
	service, bin := pamService(t)
	u := newTestUser(t)
	mustDo(t, os.WriteFile(filepath.Join(u.Home, "README.txt"), []byte("stub of a locked home\n"), 0o444))
	src := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	for name, content := range map[string]string{"notes.txt": "from the other mount\n", "dir/inner.txt": "inner\n"} {
		p := filepath.Join(src.Dir, name)
		mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mustDo(t, os.WriteFile(p, []byte(content), 0o640))
	}
	for _, p := range []string{src.Dir, filepath.Join(src.Dir, "dir"), filepath.Join(src.Dir, "dir/inner.txt"), filepath.Join(src.Dir, "notes.txt")} {
		mustDo(t, os.Lchown(p, u.UID, u.GID))
	}
	srcBefore := treeSumAs(t, src.Dir, 0, 0)
	stub := treeSumAs(t, u.Home, 0, 0)

	migrateHome(t, bin, u, "--from", src.Dir)
	// Access times aside: reading through a FUSE mount moves them (the
	// daemon reads the lower files; O_NOATIME does not reach it), and
	// treeSum reads too.
	if got := treeSumAs(t, src.Dir, 0, 0); withoutAtimes(got) != withoutAtimes(srcBefore) {
		t.Errorf("the source changed:\n%s", lineDiff(withoutAtimes(got), withoutAtimes(srcBefore)))
	}
	if got := treeSumAs(t, u.Home+".before-cryptfs", 0, 0); got != stub {
		t.Errorf("the kept home directory differs from the stub:\n%s", lineDiff(got, stub))
	}
	login(t, service, u, u.Password)
	if got := withoutAtimes(withoutRoot(treeSumAs(t, u.Home, u.UID, u.GID))); got != withoutAtimes(withoutRoot(srcBefore)) {
		t.Errorf("the encrypted home differs from the source:\n%s", lineDiff(got, withoutAtimes(withoutRoot(srcBefore))))
	}
	logout(t, service, u)
}

// TestHomeMigrateRefusals: migrate refuses, changing nothing, while the
// user is logged in (naming the processes), when the cipher tree would not
// fit, when the password is not the login password, and when a file has
// an extended attribute cryptfs cannot store (unless told to drop it);
// --abandon then puts the plaintext home back and deletes the copy.
func TestHomeMigrateRefusals(t *testing.T) {
	homeTools(t)
	_, bin := pamService(t)
	u := newTestUser(t)
	fillHome(t, u)
	before := treeSumAs(t, u.Home, 0, 0)
	cipher := "/home/.cryptfs/" + u.Name
	run := func(stdin string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"home", "migrate"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		mustDo(t, err)
		return string(out), 0
	}
	pw := u.Password + "\n" + u.Password + "\n"
	unchanged := func(what string) {
		t.Helper()
		for _, p := range []string{cipher, "/etc/cryptfs/home/" + u.Name + ".conf", "/home/.cryptfs/.migrations/" + u.Name, u.Home + ".before-cryptfs"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s: %s exists", what, p)
			}
		}
		if got := treeSumAs(t, u.Home, 0, 0); got != before {
			t.Errorf("%s: the home changed:\n%s", what, lineDiff(got, before))
		}
	}

	holder := startAsUser(t, u, "/", "exec sleep 300")
	out, code := run(pw, u.Name)
	if code == 0 || !strings.Contains(out, "logged in") || !strings.Contains(out, "pid "+strconv.Itoa(holder.Process.Pid)+" (sleep)") {
		t.Errorf("migrate while a process of the user runs: exit %d, want a refusal naming pid %d:\n%s", code, holder.Process.Pid, out)
	}
	holder.Process.Kill()
	holder.Wait()
	unchanged("logged in")

	out, code = run("not-the-login-password\nnot-the-login-password\n", u.Name)
	if code != 10 || !strings.Contains(out, "not "+u.Name+"'s login password") {
		t.Errorf("migrate with another password: exit %d, want 10:\n%s", code, out)
	}
	unchanged("wrong password")

	small := t.TempDir()
	mustDo(t, unix.Mount("tmpfs", small, "tmpfs", 0, "size=2m"))
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	out, code = run(pw, "--cipher", filepath.Join(small, "cipher"), u.Name)
	if code == 0 || !strings.Contains(out, "not enough free space") {
		t.Errorf("migrate onto a 2 MiB file system: exit %d, want a refusal for space:\n%s", code, out)
	}
	if _, err := os.Lstat(filepath.Join(small, "cipher")); err == nil {
		t.Errorf("the refused migration created its cipher directory")
	}
	unchanged("no space")

	tagged := filepath.Join(u.Home, "Documents/letters/one.txt")
	mustDo(t, unix.Lsetxattr(tagged, "trusted.cryptfs-test", []byte("x"), 0))
	before = treeSumAs(t, u.Home, 0, 0)
	out, code = run(pw, u.Name)
	if code == 0 || !strings.Contains(out, tagged+": trusted.cryptfs-test") {
		t.Errorf("migrate with a trusted.* attribute: exit %d, want a refusal naming it:\n%s", code, out)
	}
	unchanged("unsupported xattr")

	if out, code = run(pw, "--drop-unsupported-xattrs", u.Name); code != 0 {
		t.Fatalf("migrate --drop-unsupported-xattrs: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "Dropped 1 extended attributes") {
		t.Errorf("the dropped attribute is not reported:\n%s", out)
	}
	if out, code = run("", "--abandon", u.Name); code != 0 {
		t.Fatalf("--abandon: exit %d\n%s", code, out)
	}
	unchanged("abandoned")
	if v, err := unix.Lgetxattr(tagged, "trusted.cryptfs-test", make([]byte, 8)); err != nil || v != 1 {
		t.Errorf("the plaintext home lost its trusted.* attribute: %v", err)
	}
}

// withoutAtimes drops the access times from a treeSum.
func withoutAtimes(sum string) string {
	return regexp.MustCompile(` atime=[0-9.]+`).ReplaceAllString(sum, "")
}

// diskUsageKiB returns the space the files under dir take, in KiB.
func diskUsageKiB(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil {
			n += info.Sys().(*syscall.Stat_t).Blocks / 2
		}
		return nil
	})
	return n
}

// homeMountedAt reports whether anything is mounted at dir.
func homeMountedAt(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	return strings.Contains(string(data), " "+dir+" ")
}
