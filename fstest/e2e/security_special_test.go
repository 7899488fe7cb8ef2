package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// SECURITY.md, "Hostile cipher trees": a FIFO, device node, socket,
// symlink or directory in place of one of cryptfs's own files (a
// directory IV, a long-name sidecar, the root IV, cryptfs.conf) never
// blocks anything. The daemon refuses to open it (EIO for the requests
// that need it, one log line naming it), keeps answering every other
// request, and unmounts; mount and fsck refuse a config or root IV of the
// wrong kind with a message instead of hanging.

// specialKind makes something other than a regular file at path.
type specialKind struct {
	name string
	make func(t *testing.T, path string)
}

var specialKinds = []specialKind{
	{"fifo", func(t *testing.T, p string) { mustDo(t, unix.Mkfifo(p, 0o644)) }},
	{"chardev", func(t *testing.T, p string) {
		mustDo(t, unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3)))) // /dev/null's numbers
	}},
	{"blockdev", func(t *testing.T, p string) {
		mustDo(t, unix.Mknod(p, unix.S_IFBLK|0o644, int(unix.Mkdev(7, 200))))
	}},
	{"socket", func(t *testing.T, p string) { mustDo(t, unix.Mknod(p, unix.S_IFSOCK|0o644, 0)) }},
	{"symlink", func(t *testing.T, p string) {
		// To a file that would be a valid IV: never followed all the same.
		target := filepath.Join(t.TempDir(), "iv")
		mustDo(t, os.WriteFile(target, make([]byte, crypt.DirIVLen), 0o644))
		mustDo(t, os.Symlink(target, p))
	}},
	{"directory", func(t *testing.T, p string) { mustDo(t, os.Mkdir(p, 0o700)) }},
}

// replaceWith removes the lower file at path and puts kind in its place.
func replaceWith(t *testing.T, path string, kind specialKind) {
	t.Helper()
	mustDo(t, os.Remove(path))
	kind.make(t, path)
}

// inTime runs f in a goroutine and fails the test if it has not returned
// after d: a call blocked on a hung mount stays behind until the harness
// aborts the mount, the test fails instead of hanging.
func inTime(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: no answer after %v (the mount hangs)", what, d)
		return nil
	}
}

// logLines returns the daemon's error and warning lines that mention s,
// waiting up to 5 s for the first (the harness copies the daemon's output
// from a pipe) and 200 ms more for others.
func logLines(m *cryptfstest.Mount, s string) []string {
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(m.Log(), "\n") {
			if (strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"level":"warn"`)) && strings.Contains(l, s) {
				out = append(out, l)
			}
		}
		return out
	}
	for deadline := time.Now().Add(5 * time.Second); len(lines()) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return lines()
}

const specialLongName = "a-name-long-enough-for-a-sidecar-" +
	"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" +
	"0123456789012345678901234567890123456789"

// TestSpecialFilesInPlaceOfInternalFiles: each kind of special file in
// place of a subdirectory's IV and of a long name's sidecar (one mount),
// of the root IV and of cryptfs.conf (refused mounts).
func TestSpecialFilesInPlaceOfInternalFiles(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	for _, kind := range specialKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Run("diriv-and-sidecar", func(t *testing.T) { testSpecialDirIVAndSidecar(t, kind) })
			t.Run("root-iv", func(t *testing.T) { testSpecialRootIV(t, kind) })
			t.Run("config", func(t *testing.T) { testSpecialConfig(t, kind) })
			t.Run("rootmode", func(t *testing.T) { testSpecialRootMode(t, kind) })
		})
	}
}

func testSpecialDirIVAndSidecar(t *testing.T, kind specialKind) {
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "d"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "d", "f"), []byte("in d"), 0o644))
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "other"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "other", "g"), []byte("in other"), 0o644))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, specialLongName), []byte("long"), 0o644))
	cryptfstest.Unmount(t, m)
	lowerD := lowerPathOf(t, cipher, "d")
	lowerLong := lowerPathOf(t, cipher, specialLongName)
	diriv := filepath.Join(lowerD, crypt.DirIVFile)
	sidecar := filepath.Join(cipher, crypt.SidecarName(filepath.Base(lowerLong)))
	replaceWith(t, diriv, kind)
	replaceWith(t, sidecar, kind)

	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
	// The directory whose IV is not a file: EIO, one log line naming it.
	err := inTime(t, 10*time.Second, "stat d/f", func() error { _, err := os.Stat(filepath.Join(m.Dir, "d", "f")); return err })
	if !errors.Is(err, unix.EIO) {
		t.Errorf("stat d/f with a %s as d's IV: %v, want EIO", kind.name, err)
	}
	if n := len(logLines(m, diriv)); n != 1 {
		t.Errorf("%d log lines name %s after one failed request, want 1:\n%s", n, diriv, tail(m.Log(), 10))
	}
	// Every other request is answered.
	got, err := os.ReadFile(filepath.Join(m.Dir, "other", "g"))
	if err != nil || string(got) != "in other" {
		t.Errorf("read other/g: %q, %v", got, err)
	}
	// The long name whose sidecar is not a file: not listed (a name that
	// does not decrypt), with a log line; the listing itself works.
	names, err := readNames(m.Dir)
	mustDo(t, err)
	for _, n := range names {
		if n == specialLongName {
			t.Errorf("the long name is listed although its sidecar is a %s", kind.name)
		}
	}
	if len(logLines(m, filepath.Base(lowerLong))) == 0 {
		t.Errorf("no log line names %s:\n%s", lowerLong, tail(m.Log(), 10))
	}
	// A new long name whose sidecar name is taken: the sidecar is
	// replaced (never opened); a directory in its place fails the
	// request with EIO.
	cryptfstest.Unmount(t, m)
	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
	long2 := specialLongName + "-2"
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, long2), nil, 0o644))
	cryptfstest.Unmount(t, m)
	sidecar2 := filepath.Join(cipher, crypt.SidecarName(filepath.Base(lowerPathOf(t, cipher, long2))))
	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=off"}})
	mustDo(t, os.Remove(filepath.Join(m.Dir, long2)))
	if _, err := os.Lstat(sidecar2); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the sidecar of a removed long name is still there: %v", err)
	}
	kind.make(t, sidecar2)
	err = inTime(t, 10*time.Second, "create a long name", func() error {
		return os.WriteFile(filepath.Join(m.Dir, long2), []byte("new"), 0o644)
	})
	if kind.name == "directory" {
		if !errors.Is(err, unix.EIO) {
			t.Errorf("create a long name whose sidecar is a directory: %v, want EIO", err)
		}
		if len(logLines(m, filepath.Base(sidecar2))) != 1 {
			t.Errorf("no single log line names %s:\n%s", sidecar2, tail(m.Log(), 10))
		}
	} else if err != nil {
		t.Errorf("create a long name whose sidecar is a %s: %v", kind.name, err)
	} else if got, err := os.ReadFile(filepath.Join(m.Dir, long2)); err != nil || string(got) != "new" {
		t.Errorf("read back the long name: %q, %v", got, err)
	}
	// fsync (which syncs new directory IVs) and unmount both work.
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "new"), 0o755))
	f, err := os.Open(filepath.Join(m.Dir, "new"))
	mustDo(t, err)
	mustDo(t, inTime(t, 10*time.Second, "fsync", f.Sync))
	f.Close()
	cryptfstest.Unmount(t, m)
	code, rep := fsckReport(t, cipher)
	if code != 20 || rep.Clean {
		t.Errorf("fsck: exit %d, want 20 (the damaged IV reported)", code)
	}
}

func testSpecialRootIV(t *testing.T, kind specialKind) {
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "f"), []byte("x"), 0o644))
	cryptfstest.Unmount(t, m)
	replaceWith(t, filepath.Join(cipher, crypt.DirIVFile), kind)
	wantRootIVRefused(t, cipher, "is damaged")
}

// testSpecialRootMode: the stored mode of the mount root
// (.cryptfs.rootmode, docs/format.md 1.1) of the wrong kind is reported
// and ignored: the mount comes up in time, its root shows the cipher
// root's own mode, and the mount works.
func testSpecialRootMode(t *testing.T, kind specialKind) {
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	mustDo(t, os.Chmod(m.Dir, 0o755))
	cryptfstest.Unmount(t, m)
	replaceWith(t, filepath.Join(cipher, crypt.RootModeFile), kind)
	var st unix.Stat_t
	mustDo(t, unix.Stat(cipher, &st))
	cipherMode := st.Mode & 0o7777
	inTime(t, 60*time.Second, "mount and stat the root", func() error {
		m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
		return unix.Stat(m.Dir, &st)
	})
	if st.Mode&0o7777 != cipherMode {
		t.Errorf("root mode %04o with a %s as %s, want the cipher root's %04o", st.Mode&0o7777, kind.name, crypt.RootModeFile, cipherMode)
	}
	if len(logLines(m, crypt.RootModeFile)) == 0 {
		t.Errorf("no log line names %s (a %s)", crypt.RootModeFile, kind.name)
	}
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "f"), []byte("x"), 0o644))
	cryptfstest.Unmount(t, m)
}

// wantRootIVRefused mounts cipher, whose root IV is missing or damaged,
// and checks that the mount is refused in time with a message that says
// what is wrong and what helps.
func wantRootIVRefused(t *testing.T, cipher, what string) {
	t.Helper()
	var err error
	inTime(t, 60*time.Second, "mount", func() error {
		// In the foreground: a daemon that hangs is the harness's child,
		// killed when the wait for it ends.
		_, err = cryptfstest.TryMount(t, nil, cryptfstest.MountOptions{Cipher: cipher})
		return nil
	})
	if err == nil {
		t.Fatal("mounted a tree whose root IV " + what)
	}
	var ee *cryptfstest.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("mount: %v", err)
	}
	msg := string(ee.Result.Output)
	for _, want := range []string{crypt.DirIVFile, what, "cryptfs fsck", "backup"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal does not say %q: %s", want, msg)
		}
	}
}

func testSpecialConfig(t *testing.T, kind specialKind) {
	cipher := cryptfstest.Init(t)
	replaceWith(t, filepath.Join(cipher, "cryptfs.conf"), kind)
	cli := cryptfstest.NewCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, args := range [][]string{{"info", cipher}, {"fsck", "--insecure-kdf", cipher}} {
		res, err := cli.Run(ctx, cryptfstest.Password+"\n", args...)
		if ctx.Err() != nil {
			t.Fatalf("cryptfs %s: no answer in 20 s with a %s as cryptfs.conf", args[0], kind.name)
		}
		// A symlink is followed (--config may name a link): to a
		// regular file of zeros here, which is corrupt.
		why := kind.name == "symlink" || strings.Contains(string(res.Output), "not a regular file")
		if code := cryptfstest.ExitCode(err); code != 12 || !why {
			t.Errorf("cryptfs %s with a %s as cryptfs.conf: exit %d, %s; want 12 and why", args[0], kind.name, code, res.Output)
		}
	}
	var err error
	inTime(t, 60*time.Second, "mount", func() error {
		_, err = cryptfstest.TryMount(t, cli, cryptfstest.MountOptions{Cipher: cipher})
		return nil
	})
	if code := cryptfstest.ExitCode(err); code != 12 {
		t.Errorf("mount with a %s as cryptfs.conf: exit %d (%v), want 12", kind.name, code, err)
	}
}

// TestRootIVMissing: mount refuses a tree whose root IV is gone or short,
// and says what is wrong and what helps, instead of a bare I/O error.
func TestRootIVMissing(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	for _, c := range []struct {
		name   string
		damage func(path string) error
		what   string
	}{
		{"missing", os.Remove, "is missing"},
		{"short", func(p string) error { return os.Truncate(p, 5) }, "is damaged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cipher := cryptfstest.Init(t)
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
			mustDo(t, os.WriteFile(filepath.Join(m.Dir, "f"), []byte("x"), 0o644))
			cryptfstest.Unmount(t, m)
			path := filepath.Join(cipher, crypt.DirIVFile)
			os.Chmod(path, 0o600)
			mustDo(t, c.damage(path))
			wantRootIVRefused(t, cipher, c.what)
		})
	}
}
