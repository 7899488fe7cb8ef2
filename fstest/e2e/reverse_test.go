package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/reversefs"
)

// Reverse mode (docs/format.md, section 13) with the real binary and real
// tools: a view of a plaintext directory is copied (cp -a, rsync, restic),
// the copy is mounted in forward mode and compared with the plaintext.

// reverseTree fills dir with what a view must carry: file sizes around
// block boundaries, an empty file, a large sparse file, nested and empty
// directories, long names (a file, and a directory holding a file),
// symlinks (relative, absolute, dangling), user attributes on a file and
// a directory, a fifo, a hard link and a private file.
func reverseTree(t *testing.T, dir string) {
	t.Helper()
	put := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mustDo(t, os.WriteFile(p, data, mode))
	}
	put("empty", nil, 0o644)
	put("hello.txt", []byte("hello, reverse mode\n"), 0o644)
	put("private", randBytes(1, 5000), 0o600)
	for i, n := range []int{4095, 4096, 4097, 3*4096 + 1} {
		put(fmt.Sprintf("docs/size-%d", n), randBytes(uint64(10+i), n), 0o644)
	}
	put("docs/deep/er/still/file", randBytes(20, 100), 0o640)
	put(strings.Repeat("L", 200), []byte("a file with a long name"), 0o644)
	put(strings.Repeat("D", 255)+"/inside", []byte("in a directory with a long name"), 0o644)
	put("naïve café/ünïcödé.txt", []byte("utf-8 names"), 0o644)
	mustDo(t, os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755))
	// A large sparse file: 24 MiB, data in three places, holes between.
	f, err := os.Create(filepath.Join(dir, "sparse.img"))
	mustDo(t, err)
	for _, off := range []int64{0, 5 << 20, 24<<20 - 777} {
		_, err := f.WriteAt(randBytes(uint64(off), 777), off)
		mustDo(t, err)
	}
	mustDo(t, f.Close())
	mustDo(t, os.Symlink("hello.txt", filepath.Join(dir, "rel-link")))
	mustDo(t, os.Symlink("/etc/hostname", filepath.Join(dir, "docs/abs-link")))
	mustDo(t, os.Symlink("nowhere/at/all", filepath.Join(dir, "dangling")))
	mustDo(t, unix.Setxattr(filepath.Join(dir, "hello.txt"), "user.comment", []byte("an attribute"), 0))
	mustDo(t, unix.Setxattr(filepath.Join(dir, "hello.txt"), "user.empty", nil, 0))
	mustDo(t, unix.Setxattr(filepath.Join(dir, "docs"), "user.dir", []byte("on a directory"), 0))
	mustDo(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	mustDo(t, os.Link(filepath.Join(dir, "private"), filepath.Join(dir, "docs/hardlink")))
}

// initReverse runs `cryptfs init --reverse` on plain.
func initReverse(t *testing.T, plain string, flags ...string) {
	t.Helper()
	if _, err := cryptfstest.NewCLI(t).Init(context.Background(), plain, append([]string{"--reverse"}, flags...)...); err != nil {
		t.Fatalf("cryptfs init --reverse: %v", err)
	}
}

// mountReverse mounts the view of plain (a foreground daemon of its own)
// at a new directory, or at dir if given.
func mountReverse(t *testing.T, plain string, dir ...string) *cryptfstest.Mount {
	t.Helper()
	o := cryptfstest.MountOptions{Cipher: plain, Args: []string{"--reverse"}}
	if len(dir) > 0 {
		o.Dir = dir[0]
	}
	return cryptfstest.NewMount(t, o)
}

// mountForward mounts a copy of a view in forward mode.
func mountForward(t *testing.T, cipher string) *cryptfstest.Mount {
	t.Helper()
	return cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
}

// skipReverseConfig skips the reverse config at a plaintext root.
func skipReverseConfig(rel string) bool { return rel == reversefs.ConfigName }

// viewDigests hashes every file of a view (and records inode numbers,
// sizes and times), for comparing two mounts.
func viewDigests(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := treeDigests(t, dir, digestOptions{times: fileTimes})
	for rel := range out {
		var st unix.Stat_t
		mustDo(t, unix.Lstat(filepath.Join(dir, rel), &st))
		out[rel] += fmt.Sprintf(" ino=%d ctime=%d.%09d", st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
	}
	return out
}

// TestReverseCopyMountsForward: cp -a of a view is a cipher tree that
// forward mode mounts, giving back the plaintext byte for byte (files,
// directories, symlinks, long names, empty and sparse files, user
// attributes, a fifo, modes and mtimes); fsck finds the copy clean; and
// a tampered block of the copy fails as in any cipher tree.
func TestReverseCopyMountsForward(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	for _, mode := range []string{"diriv", "deterministic-names"} {
		t.Run(mode, func(t *testing.T) {
			plain := filepath.Join(t.TempDir(), "plain")
			reverseTree(t, plain)
			var flags []string
			if mode == "deterministic-names" {
				flags = append(flags, "--deterministic-names")
			}
			initReverse(t, plain, flags...)
			view := mountReverse(t, plain)

			conf := readFile(t, filepath.Join(plain, reversefs.ConfigName))
			checkBytes(t, readFile(t, filepath.Join(view.Dir, "cryptfs.conf")), conf, "the view's cryptfs.conf")
			_, err := os.Lstat(filepath.Join(view.Dir, crypt.DirIVFile))
			if (mode == "diriv") != (err == nil) {
				t.Errorf("root IV file in a %s view: %v", mode, err)
			}
			var sparse unix.Stat_t
			mustDo(t, unix.Stat(filepath.Join(plain, "sparse.img"), &sparse))

			cp := filepath.Join(t.TempDir(), "copy")
			if out, err := exec.Command("cp", "-a", view.Dir, cp).CombinedOutput(); err != nil {
				t.Fatalf("cp -a: %v\n%s", err, out)
			}
			cryptfstest.Unmount(t, view)

			fwd := mountForward(t, cp)
			compareDigests(t, "forward mount of the copy",
				treeDigests(t, fwd.Dir, digestOptions{times: fileTimes}), treeDigests(t, plain, digestOptions{times: fileTimes, skip: skipReverseConfig}))
			// The hard link is two files in the view: same bytes, two inodes.
			var a, b unix.Stat_t
			mustDo(t, unix.Stat(filepath.Join(fwd.Dir, "private"), &a))
			mustDo(t, unix.Stat(filepath.Join(fwd.Dir, "docs/hardlink"), &b))
			if a.Ino == b.Ino {
				t.Error("the view kept a hard link; docs/format.md 13.4 says it cannot")
			}
			var got unix.Stat_t
			mustDo(t, unix.Stat(filepath.Join(fwd.Dir, "sparse.img"), &got))
			if got.Size != sparse.Size {
				t.Errorf("sparse file: %d bytes, want %d", got.Size, sparse.Size)
			}
			cryptfstest.Unmount(t, fwd)
			if out := fsck(t, cp, 0); !strings.Contains(out, "clean") {
				t.Errorf("fsck of the copy:\n%s", out)
			}

			// Tampering with the copy behaves as in forward mode: EIO for
			// the block, fsck exit 20.
			tamperCopy(t, cp, "docs/size-12289", 1)
			fwd = mountForward(t, cp)
			g, err := os.Open(filepath.Join(fwd.Dir, "docs/size-12289"))
			mustDo(t, err)
			buf := make([]byte, 4096)
			if _, err := g.ReadAt(buf, 0); err != nil {
				t.Errorf("block 0 of the tampered file: %v", err)
			}
			if _, err := g.ReadAt(buf, 4096); !errors.Is(err, syscall.EIO) {
				t.Errorf("the tampered block: %v, want EIO", err)
			}
			g.Close()
			cryptfstest.Unmount(t, fwd)
			fsck(t, cp, 20)
		})
	}
}

// tamperCopy flips one bit inside block number block of the cipher file
// of plaintext path rel in the cipher tree cipher.
func tamperCopy(t *testing.T, cipher, rel string, block uint64) {
	t.Helper()
	p := lowerPathOf(t, cipher, rel)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		mustDo(t, os.Chmod(p, 0o600))
		f, err = os.OpenFile(p, os.O_RDWR, 0)
	}
	mustDo(t, err)
	defer f.Close()
	b := make([]byte, 1)
	off := int64(crypt.BlockOffset(block) + 100)
	_, err = f.ReadAt(b, off)
	mustDo(t, err)
	b[0] ^= 1
	_, err = f.WriteAt(b, off)
	mustDo(t, err)
}

// TestReverseViewStable: two mounts of the same plaintext show the same
// view: the same names, the same bytes in every file (SHA-256), the same
// symlink targets and attribute values, inode numbers, sizes and times.
func TestReverseViewStable(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	plain := filepath.Join(t.TempDir(), "plain")
	reverseTree(t, plain)
	initReverse(t, plain)
	m := mountReverse(t, plain)
	first := viewDigests(t, m.Dir)
	cryptfstest.Unmount(t, m)
	m = mountReverse(t, plain)
	second := viewDigests(t, m.Dir)
	compareDigests(t, "second mount", second, first)
	if len(first) < 25 {
		t.Fatalf("only %d entries in the view", len(first))
	}
}

// TestReverseOneFileChanged: changing 10 bytes in one block of one
// plaintext file changes, within the kernel's 1 s cache bound and without
// a remount, that one file of the view and only that block of it.
func TestReverseOneFileChanged(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	plain := filepath.Join(t.TempDir(), "plain")
	reverseTree(t, plain)
	big := filepath.Join(plain, "docs/big")
	mustDo(t, os.WriteFile(big, randBytes(99, 16*4096+123), 0o644))
	initReverse(t, plain)
	m := mountReverse(t, plain)
	before := treeDigests(t, m.Dir, digestOptions{})
	lower := lowerPathOf(t, m.Dir, "docs/big")
	old := readFile(t, lower)

	f, err := os.OpenFile(big, os.O_WRONLY, 0)
	mustDo(t, err)
	_, err = f.WriteAt([]byte("0123456789"), 7*4096+2000)
	mustDo(t, err)
	mustDo(t, f.Close())
	time.Sleep(1500 * time.Millisecond) // the view's cache validity is 1 s

	after := treeDigests(t, m.Dir, digestOptions{})
	rel, _ := filepath.Rel(m.Dir, lower)
	for p, d := range before {
		if changed := after[p] != d; changed != (p == rel) {
			t.Errorf("%s changed: %v", p, changed)
		}
	}
	now := readFile(t, lower)
	if len(now) != len(old) {
		t.Fatalf("cipher size %d, was %d", len(now), len(old))
	}
	for b := uint64(0); b <= 16; b++ {
		lo := crypt.BlockOffset(b)
		hi := min(lo+crypt.CipherBlockSize, uint64(len(old)))
		if changed := !bytes.Equal(old[lo:hi], now[lo:hi]); changed != (b == 7) {
			t.Errorf("stored block %d changed: %v", b, changed)
		}
	}
}

// rsyncStats runs rsync -aX --stats (extra flags added) and returns its
// "Number of regular files transferred".
func rsyncStats(t *testing.T, src, dst string, flags ...string) int {
	t.Helper()
	args := append(append([]string{"-aX", "--stats"}, flags...), src+"/", dst+"/")
	out, err := exec.Command("rsync", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rsync %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	m := regexp.MustCompile(`Number of regular files transferred: ([0-9,]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no transfer count in rsync's output:\n%s", out)
	}
	n, err := strconv.Atoi(strings.ReplaceAll(string(m[1]), ",", ""))
	mustDo(t, err)
	return n
}

// countRegular counts the regular files below dir.
func countRegular(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	mustDo(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	}))
	return n
}

// TestReverseRsyncIncremental: a view backed up twice with rsync
// transfers, the second time, only the files that changed between the runs
// (here two changed, one new with a long name and so its sidecar too),
// and nothing on a third run; the backup mounts in forward mode and
// gives back the plaintext, the deleted file gone.
func TestReverseRsyncIncremental(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("skipping: rsync is not installed (apt-get install rsync)")
	}
	plain := filepath.Join(t.TempDir(), "plain")
	reverseTree(t, plain)
	initReverse(t, plain)
	backup := filepath.Join(t.TempDir(), "backup")
	m := mountReverse(t, plain)
	if n, all := rsyncStats(t, m.Dir, backup), countRegular(t, m.Dir); n != all {
		t.Fatalf("first run transferred %d files, the view has %d", n, all)
	}
	cryptfstest.Unmount(t, m)

	// Between the runs: one file changed in place (same size), one grown,
	// one created (a long name: its sidecar is a second file), one removed.
	f, err := os.OpenFile(filepath.Join(plain, "docs/size-4097"), os.O_WRONLY, 0)
	mustDo(t, err)
	_, err = f.WriteAt([]byte("changed"), 4096)
	mustDo(t, err)
	mustDo(t, f.Close())
	f, err = os.OpenFile(filepath.Join(plain, "hello.txt"), os.O_WRONLY|os.O_APPEND, 0)
	mustDo(t, err)
	_, err = f.WriteString("one more line\n")
	mustDo(t, err)
	mustDo(t, f.Close())
	mustDo(t, os.WriteFile(filepath.Join(plain, "docs", strings.Repeat("n", 170)), []byte("new"), 0o644))
	mustDo(t, os.Remove(filepath.Join(plain, "empty")))

	m = mountReverse(t, plain)
	if n := rsyncStats(t, m.Dir, backup, "--delete"); n != 4 {
		t.Errorf("second run transferred %d files, want 4 (2 changed, 1 new and its sidecar)", n)
	}
	if n := rsyncStats(t, m.Dir, backup, "--delete"); n != 0 {
		t.Errorf("third run, nothing changed, transferred %d files", n)
	}
	cryptfstest.Unmount(t, m)

	fwd := mountForward(t, backup)
	compareDigests(t, "forward mount of the rsync backup",
		treeDigests(t, fwd.Dir, digestOptions{times: fileTimes}), treeDigests(t, plain, digestOptions{times: fileTimes, skip: skipReverseConfig}))
}

// resticSummary is the last line of `restic backup --json`.
type resticSummary struct {
	MessageType     string `json:"message_type"`
	FilesNew        int    `json:"files_new"`
	FilesChanged    int    `json:"files_changed"`
	FilesUnmodified int    `json:"files_unmodified"`
}

func restic(t *testing.T, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("restic", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("restic %s: %v\n%s%s", strings.Join(args, " "), err, out, ee.Stderr)
		}
		t.Fatalf("restic %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func resticBackup(t *testing.T, env []string, dir string) resticSummary {
	t.Helper()
	out := restic(t, env, "backup", "--json", "--no-cache", dir)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var sum resticSummary
	for sc.Scan() {
		var s resticSummary
		if json.Unmarshal(sc.Bytes(), &s) == nil && s.MessageType == "summary" {
			sum = s
		}
	}
	if sum.MessageType == "" {
		t.Fatalf("no summary from restic backup:\n%s", out)
	}
	return sum
}

// TestReverseRestic: restic backs up the view twice (the second time
// finding only the changed file changed, everything else unmodified by
// its size, times and inode number), and the restored snapshot mounts in
// forward mode and gives back the plaintext.
func TestReverseRestic(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	if _, err := exec.LookPath("restic"); err != nil {
		t.Skip("skipping: restic is not installed (apt-get install restic)")
	}
	plain := filepath.Join(t.TempDir(), "plain")
	reverseTree(t, plain)
	initReverse(t, plain)
	repo := filepath.Join(t.TempDir(), "repo")
	env := []string{"RESTIC_REPOSITORY=" + repo, "RESTIC_PASSWORD=restic-test", "RESTIC_PROGRESS_FPS=0.1"}
	restic(t, env, "init", "--no-cache")

	// Both backups of the same path: restic compares with the snapshot of
	// the same path.
	view := filepath.Join(t.TempDir(), "view")
	m := mountReverse(t, plain, view)
	first := resticBackup(t, env, m.Dir)
	if all := countRegular(t, m.Dir); first.FilesNew != all {
		t.Errorf("first backup: %d new files, the view has %d", first.FilesNew, all)
	}
	cryptfstest.Unmount(t, m)
	mustDo(t, os.WriteFile(filepath.Join(plain, "docs/size-4096"), randBytes(77, 4096), 0o644))
	m = mountReverse(t, plain, view)
	second := resticBackup(t, env, m.Dir)
	if second.FilesNew != 0 || second.FilesChanged != 1 || second.FilesUnmodified != first.FilesNew-1 {
		t.Errorf("second backup: %+v, want 0 new, 1 changed, %d unmodified", second, first.FilesNew-1)
	}
	cryptfstest.Unmount(t, m)

	out := filepath.Join(t.TempDir(), "restored")
	restic(t, env, "restore", "latest", "--no-cache", "--target", out)
	fwd := mountForward(t, filepath.Join(out, view))
	compareDigests(t, "forward mount of the restic restore",
		treeDigests(t, fwd.Dir, digestOptions{times: fileTimes}), treeDigests(t, plain, digestOptions{times: fileTimes, skip: skipReverseConfig}))
}

// TestReverseReadOnly: every change through the view fails with EROFS.
func TestReverseReadOnly(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	plain := filepath.Join(t.TempDir(), "plain")
	mustDo(t, os.MkdirAll(filepath.Join(plain, "d"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(plain, "f"), []byte("x"), 0o644))
	initReverse(t, plain)
	m := mountReverse(t, plain)
	var file, dir string
	for _, n := range listDir(t, m.Dir) {
		st, err := os.Lstat(filepath.Join(m.Dir, n))
		mustDo(t, err)
		switch {
		case st.IsDir():
			dir = filepath.Join(m.Dir, n)
		case st.Mode().IsRegular() && n != "cryptfs.conf" && !strings.HasPrefix(n, ".cryptfs"):
			file = filepath.Join(m.Dir, n)
		}
	}
	if file == "" || dir == "" {
		t.Fatalf("no file or directory in the view: %q", listDir(t, m.Dir))
	}
	iv := filepath.Join(m.Dir, crypt.DirIVFile)
	for name, err := range map[string]error{
		"open for writing":   func() error { f, err := os.OpenFile(file, os.O_WRONLY, 0); f.Close(); return err }(),
		"create":             os.WriteFile(filepath.Join(m.Dir, "new"), nil, 0o644),
		"truncate":           os.Truncate(file, 0),
		"truncate IV file":   os.Truncate(iv, 0),
		"mkdir":              os.Mkdir(filepath.Join(m.Dir, "newdir"), 0o755),
		"remove file":        os.Remove(file),
		"remove IV file":     os.Remove(iv),
		"rmdir":              os.Remove(dir),
		"rename":             os.Rename(file, filepath.Join(m.Dir, "moved")),
		"symlink":            os.Symlink("x", filepath.Join(m.Dir, "ln")),
		"link":               os.Link(file, filepath.Join(m.Dir, "hl")),
		"chmod":              os.Chmod(file, 0o777),
		"chown":              os.Chown(file, 1, 1),
		"utimes":             os.Chtimes(file, time.Now(), time.Now()),
		"setxattr":           unix.Setxattr(file, "user.x", []byte("y"), 0),
		"removexattr":        unix.Removexattr(file, "user.x"),
		"mkfifo":             unix.Mkfifo(filepath.Join(m.Dir, "fifo"), 0o644),
		"write cryptfs.conf": os.WriteFile(filepath.Join(m.Dir, "cryptfs.conf"), nil, 0o400),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	if got := readFile(t, filepath.Join(plain, "f")); string(got) != "x" {
		t.Errorf("the plaintext changed: %q", got)
	}
}

// TestReverseCLI: init --reverse and mount --reverse as a user meets
// them: a plaintext directory that is not empty is fine, a second init is
// refused, a missing directory or config says so, and the forward mode
// does not take a reverse config (nor reverse mode a cipher tree).
func TestReverseCLI(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cli := cryptfstest.NewCLI(t)
	ctx := context.Background()
	plain := filepath.Join(t.TempDir(), "plain")
	mustDo(t, os.MkdirAll(filepath.Join(plain, "sub"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(plain, "f"), []byte("x"), 0o644))
	mnt := filepath.Join(t.TempDir(), "mnt")
	mustDo(t, os.MkdirAll(mnt, 0o755))

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"mount --reverse before init", []string{"mount", "-f", "--insecure-kdf", "--reverse", plain, mnt}, 11},
		{"init --reverse of a missing directory", []string{"init", "--insecure-kdf", "--reverse", filepath.Join(plain, "nope")}, 2},
		{"init --reverse", []string{"init", "--insecure-kdf", "--reverse", plain}, 0},
		{"init --reverse again", []string{"init", "--insecure-kdf", "--reverse", plain}, 14},
		{"forward mount of a reverse-mode directory", []string{"mount", "-f", "--insecure-kdf", plain, mnt}, 11},
		{"reverse view inside the plaintext", []string{"mount", "-f", "--insecure-kdf", "--reverse", plain, filepath.Join(plain, "sub")}, 2},
	} {
		res, err := cli.Run(ctx, cryptfstest.Password+"\n", tc.args...)
		if code := cryptfstest.ExitCode(err); code != tc.code {
			t.Errorf("%s: exit code %d, want %d\n%s", tc.name, code, tc.code, res.Output)
		}
	}
	if st, err := os.Stat(filepath.Join(plain, reversefs.ConfigName)); err != nil || st.Mode().Perm() != 0o400 {
		t.Fatalf("reverse config: %v", err)
	}
	cipher := cryptfstest.Init(t)
	if res, err := cli.Run(ctx, cryptfstest.Password+"\n", "mount", "-f", "--insecure-kdf", "--reverse", cipher, mnt); cryptfstest.ExitCode(err) != 11 {
		t.Errorf("reverse mount of a cipher tree: %v\n%s", err, res.Output)
	}
	// The background mount and cryptfs status know the view.
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: plain, Dir: mnt, Args: []string{"--reverse"}, Background: true})
	st, err := m.Status(ctx)
	mustDo(t, err)
	if !st.ReadOnly || st.CipherDir != plain {
		t.Errorf("status of the view: %+v", st)
	}
	cryptfstest.Unmount(t, m)
}
