package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// Backups with real tools: the cipher tree is backed up with restic and
// with rsync as a user would (the tree is what gets backed up, never the
// plaintext), then restored: one file with `cryptfs restore` straight
// from the restic copy, the whole tree by mounting the rsync copy and
// with `cryptfs restore`, each compared with the plaintext it came from,
// byte for byte and attribute for attribute.

var backupLong = strings.Repeat("n", 180) + ".txt" // a long name: stored as longname.<hash> plus sidecar

// buildPlainTree writes the plaintext reference tree under dir: files of
// several sizes, a long name, a deep path, an empty file, a sparse file,
// symlinks, a hard link, user xattrs, modes and times.
func buildPlainTree(t *testing.T, dir string) {
	t.Helper()
	files := map[string][]byte{
		"docs/report.odt":         randBytes(1, 300<<10),
		"docs/notes.txt":          []byte("notes\n"),
		"docs/" + backupLong:      []byte("a long name\n"),
		"docs/deep/a/b/c/d/e.txt": randBytes(2, 5000),
		"empty":                   nil,
		"run.sh":                  []byte("#!/bin/sh\necho hi\n"),
		"hard1":                   []byte("two names\n"),
	}
	for p, data := range files {
		full := filepath.Join(dir, p)
		mustDo(t, os.MkdirAll(filepath.Dir(full), 0o755))
		mustDo(t, os.WriteFile(full, data, 0o644))
	}
	mustDo(t, os.Link(filepath.Join(dir, "hard1"), filepath.Join(dir, "docs/hard2")))
	mustDo(t, os.Symlink("notes.txt", filepath.Join(dir, "docs/link")))
	mustDo(t, os.Symlink("../nowhere", filepath.Join(dir, "dangling")))
	// 64 MiB, data only at the start and at 40 MiB.
	sparse, err := os.Create(filepath.Join(dir, "disk.img"))
	mustDo(t, err)
	_, err = sparse.WriteAt(randBytes(3, 10000), 0)
	mustDo(t, err)
	_, err = sparse.WriteAt(randBytes(4, 5000), 40<<20)
	mustDo(t, err)
	mustDo(t, sparse.Truncate(64<<20))
	mustDo(t, sparse.Close())
	mustDo(t, unix.Setxattr(filepath.Join(dir, "docs/report.odt"), "user.comment", []byte("quarterly"), 0))
	mustDo(t, unix.Setxattr(filepath.Join(dir, "docs"), "user.dir", []byte("yes"), 0))
	for p, mode := range map[string]os.FileMode{"run.sh": 0o755, "docs/notes.txt": 0o600, "docs/deep": 0o750, "docs/report.odt": 0o640} {
		mustDo(t, os.Chmod(filepath.Join(dir, p), mode))
	}
	// Times, children before their directories.
	var paths []string
	mustDo(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for i := len(paths) - 1; i >= 0; i-- {
		ts := []unix.Timespec{unix.NsecToTimespec(base.UnixNano()), unix.NsecToTimespec(base.Add(time.Duration(i)*time.Hour + 123456789).UnixNano())}
		mustDo(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// compareTrees checks that the tree at got holds what the tree at want
// holds: the same entries with the same type, mode, size, content,
// modification time, symlink target and user attributes, and the same
// hard links.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	o := digestOptions{times: allTimes, links: true}
	compareDigests(t, got+" against "+want, treeDigests(t, got, o), treeDigests(t, want, o))
}

// backupFixture builds the plaintext reference tree, copies it into a
// new cipher tree through a mount, and returns both (the mount is gone).
func backupFixture(t *testing.T) (plain, cipher string) {
	t.Helper()
	cryptfstest.RequireFUSE(t)
	plain = filepath.Join(t.TempDir(), "plain")
	mustDo(t, os.Mkdir(plain, 0o755))
	buildPlainTree(t, plain)
	cipher = cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	runCmd(t, "", "cp", "-a", plain+"/.", m.Dir+"/")
	compareTrees(t, plain, m.Dir)
	cryptfstest.Unmount(t, m)
	return plain, cipher
}

// runCmd runs a command and fails the test with its output if it fails.
func runCmd(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// needTool skips the test when a backup tool is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("skipping: %s is not installed (apt-get install %s; .ci/run installs it)", name, name)
	}
	return p
}

// cryptfsRestore runs `cryptfs restore` with the test password.
func cryptfsRestore(t *testing.T, cipher, plain, dest string, flags ...string) {
	t.Helper()
	args := append(append([]string{"restore", "--insecure-kdf"}, flags...), cipher, plain, dest)
	if out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", args...); code != 0 {
		t.Fatalf("cryptfs %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
}

// TestBackupRsync: an rsync mirror of the cipher tree mounts and gives
// back the plaintext, and `cryptfs restore` of the mirror gives it back
// too, with sparse files still sparse.
func TestBackupRsync(t *testing.T) {
	rsync := needTool(t, "rsync")
	plain, cipher := backupFixture(t)
	mirror := filepath.Join(t.TempDir(), "mirror")
	// -H hard links, -X the encrypted user attributes, -S holes.
	runCmd(t, "", rsync, "-aHXS", "--numeric-ids", cipher+"/", mirror+"/")

	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: mirror})
	compareTrees(t, plain, m.Dir)
	cryptfstest.Unmount(t, m)

	out := filepath.Join(t.TempDir(), "restored")
	cryptfsRestore(t, mirror, "/", out)
	compareTrees(t, plain, out)
	var st unix.Stat_t
	mustDo(t, unix.Stat(filepath.Join(out, "disk.img"), &st))
	if st.Blocks*512 > 1<<20 {
		t.Errorf("restored disk.img allocates %d bytes of its 64 MiB: not sparse", st.Blocks*512)
	}
	fsck(t, mirror, 0)
}

// TestBackupRestic: a restic snapshot of the cipher tree, restored, gives
// back single files with `cryptfs restore` and `cryptfs cat`; and a
// partial restic restore of just the cipher files a plaintext path needs
// (found with `cryptfs path encrypt`) is enough to restore that file.
func TestBackupRestic(t *testing.T) {
	restic := needTool(t, "restic")
	plain, cipher := backupFixture(t)
	work := t.TempDir()
	env := []string{"RESTIC_REPOSITORY=" + filepath.Join(work, "repo"), "RESTIC_PASSWORD=backup password", "RESTIC_CACHE_DIR=" + filepath.Join(work, "cache")}
	resticRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(restic, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("restic %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	resticRun("init")
	resticRun("backup", "--quiet", cipher)

	// The whole snapshot.
	restored := filepath.Join(work, "full")
	resticRun("restore", "latest", "--target", restored)
	copyOf := filepath.Join(restored, cipher)
	dest := filepath.Join(work, "out")
	mustDo(t, os.Mkdir(dest, 0o755))
	for _, p := range []string{"docs/report.odt", "docs/" + backupLong, "disk.img"} {
		d := filepath.Join(dest, filepath.Base(p))
		cryptfsRestore(t, copyOf, p, d)
		checkSameFile(t, filepath.Join(plain, p), d)
	}
	out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", "cat", "--insecure-kdf", copyOf, "docs/notes.txt")
	if code != 0 || out != "notes\n" {
		t.Errorf("cryptfs cat from the restic copy: exit %d, %q", code, out)
	}

	// Only what one file needs: its cipher path, the IVs of the
	// directories on the way, and the config.
	lower := strings.TrimPrefix(lowerPath(t, cipher, "docs/deep/a/b/c/d/e.txt"), cipher+"/")
	includes := []string{"--include", filepath.Join(cipher, "cryptfs.conf"), "--include", filepath.Join(cipher, lower)}
	for d := filepath.Dir(lower); ; d = filepath.Dir(d) {
		includes = append(includes, "--include", filepath.Join(cipher, d, ".cryptfs.diriv"))
		if d == "." {
			break
		}
	}
	partial := filepath.Join(work, "partial")
	resticRun(append([]string{"restore", "latest", "--target", partial}, includes...)...)
	d := filepath.Join(dest, "e.txt")
	cryptfsRestore(t, filepath.Join(partial, cipher), "docs/deep/a/b/c/d/e.txt", d)
	checkSameFile(t, filepath.Join(plain, "docs/deep/a/b/c/d/e.txt"), d)
}

// checkSameFile compares one restored file with its original: content,
// mode, mtime, user attributes.
func checkSameFile(t *testing.T, want, got string) {
	t.Helper()
	var ws, gs unix.Stat_t
	mustDo(t, unix.Lstat(want, &ws))
	mustDo(t, unix.Lstat(got, &gs))
	wb, gb := readFile(t, want), readFile(t, got)
	switch {
	case !slices.Equal(wb, gb):
		t.Errorf("%s: %s", got, diffBytes(gb, wb))
	case ws.Mode != gs.Mode:
		t.Errorf("%s: mode %o, want %o", got, gs.Mode, ws.Mode)
	case ws.Mtim != gs.Mtim:
		t.Errorf("%s: mtime %v, want %v", got, gs.Mtim, ws.Mtim)
	case !slices.Equal(userXattrs(t, want), userXattrs(t, got)):
		t.Errorf("%s: xattrs %q, want %q", got, userXattrs(t, got), userXattrs(t, want))
	}
}
