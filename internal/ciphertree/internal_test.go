package ciphertree

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// specialKinds puts something other than a regular file at path: each
// kind a hostile cipher tree can hold in place of one of cryptfs's own
// files. Device nodes need root and are skipped without it.
var specialKinds = []struct {
	name string
	make func(t *testing.T, path string)
}{
	{"fifo", func(t *testing.T, path string) { must(t, unix.Mkfifo(path, 0o644)) }},
	{"chardev", func(t *testing.T, path string) {
		needRoot(t)
		must(t, unix.Mknod(path, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3)))) // /dev/null's numbers
	}},
	{"blockdev", func(t *testing.T, path string) {
		needRoot(t)
		must(t, unix.Mknod(path, unix.S_IFBLK|0o644, int(unix.Mkdev(7, 200))))
	}},
	{"socket", func(t *testing.T, path string) {
		// mknod makes the inode a bound socket has (bind's path limit
		// of 108 bytes is too short for these paths).
		must(t, unix.Mknod(path, unix.S_IFSOCK|0o644, 0))
	}},
	{"symlink", func(t *testing.T, path string) {
		// To a file that would be a valid IV or sidecar: a link is
		// refused all the same, never followed.
		target := filepath.Join(t.TempDir(), "target")
		must(t, os.WriteFile(target, make([]byte, crypt.DirIVLen), 0o600))
		must(t, os.Symlink(target, path))
	}},
	{"directory", func(t *testing.T, path string) { must(t, os.Mkdir(path, 0o700)) }},
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: device nodes need root")
	}
}

// within runs f and fails the test if it has not returned after 10 s (a
// blocking open): the goroutine is left behind, the test fails instead of
// hanging.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s blocked for 10 s", what)
		return nil
	}
}

// TestInternalFilesNeverBlock: a FIFO, device node, socket, symlink or
// directory in place of a directory IV or a long-name sidecar is refused
// at once with ErrNotRegular by every reader (ReadDirIV, SyncDirIV,
// ReadSidecar, DecodeName) and replaced (or refused, for a directory) by
// the writers, never opened: no reader blocks on a FIFO, no driver sees an
// open.
func TestInternalFilesNeverBlock(t *testing.T) {
	s := testSuite(t)
	long := make([]byte, 200)
	for i := range long {
		long[i] = 'x'
	}
	var iv crypt.DirIV
	ln, err := EncodeName(s, iv, string(long))
	must(t, err)
	if !ln.Long {
		t.Fatal("a 200-byte name should be long")
	}
	for _, k := range specialKinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			dfd := openDir(t, dir)
			k.make(t, filepath.Join(dir, crypt.DirIVFile))
			k.make(t, filepath.Join(dir, crypt.SidecarName(ln.Lower)))
			if err := within(t, "ReadDirIV", func() error { _, err := ReadDirIV(dfd); return err }); !errors.Is(err, ErrNotRegular) {
				t.Errorf("ReadDirIV: %v, want ErrNotRegular", err)
			}
			if err := within(t, "SyncDirIV", func() error { return SyncDirIV(dfd) }); !errors.Is(err, ErrNotRegular) {
				t.Errorf("SyncDirIV: %v, want ErrNotRegular", err)
			}
			if err := within(t, "ReadSidecar", func() error { _, err := ReadSidecar(dfd, ln.Lower); return err }); !errors.Is(err, ErrNotRegular) {
				t.Errorf("ReadSidecar: %v, want ErrNotRegular", err)
			}
			if err := within(t, "DecodeName", func() error { _, err := DecodeName(s, dfd, iv, ln.Lower); return err }); !errors.Is(err, ErrNotRegular) {
				t.Errorf("DecodeName of a long name: %v, want ErrNotRegular", err)
			}
			err := within(t, "WriteSidecar", func() error { return WriteSidecar(dfd, ln.Lower, ln.Encoded) })
			if k.name == "directory" {
				if !errors.Is(err, ErrNotRegular) {
					t.Errorf("WriteSidecar over a directory: %v, want ErrNotRegular", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("WriteSidecar over a %s: %v", k.name, err)
			}
			if got, err := ReadSidecar(dfd, ln.Lower); err != nil || got != ln.Encoded {
				t.Errorf("sidecar after WriteSidecar: %q, %v", got, err)
			}
		})
	}
}

// TestRootMode: the root mode file round-trips, is absent until written,
// and only the canonical form (four octal digits, a newline) is read.
func TestRootMode(t *testing.T) {
	dir := t.TempDir()
	dfd := openDir(t, dir)
	if _, ok, err := ReadRootMode(dfd); ok || err != nil {
		t.Fatalf("no file: ok %v, %v", ok, err)
	}
	must(t, WriteRootMode(dfd, 0o41755)) // only the 07777 bits are kept
	if m, ok, err := ReadRootMode(dfd); !ok || err != nil || m != 0o1755 {
		t.Errorf("read back %o, %v, %v; want 1755", m, ok, err)
	}
	if got := names(t, dir); len(got) != 1 || got[0] != crypt.RootModeFile {
		t.Errorf("the directory holds %q, want only %s", got, crypt.RootModeFile)
	}
	for _, bad := range []string{"755\n", "0755", "0758\n", "07550\n", "0755\r", " 755\n", ""} {
		if _, err := parseRootMode([]byte(bad)); !errors.Is(err, ErrBadRootMode) {
			t.Errorf("parse %q: %v, want ErrBadRootMode", bad, err)
		}
	}
	for _, k := range specialKinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			dfd := openDir(t, dir)
			k.make(t, filepath.Join(dir, crypt.RootModeFile))
			if _, _, err := ReadRootMode(dfd); !errors.Is(err, ErrNotRegular) {
				t.Errorf("ReadRootMode of a %s: %v, want ErrNotRegular", k.name, err)
			}
		})
	}
}
