package ciphertree

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

func openDir(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestMakeDir: the directory appears with a complete IV and nothing else
// is left in its parent; an existing name is refused and leaves nothing;
// without an IV the directory is empty.
func TestMakeDir(t *testing.T) {
	parent := t.TempDir()
	pfd := openDir(t, parent)
	if err := MakeDir(pfd, "d", 0o750, true); err != nil {
		t.Fatal(err)
	}
	if got := names(t, parent); len(got) != 1 || got[0] != "d" {
		t.Errorf("parent holds %q, want just d", got)
	}
	iv, err := os.ReadFile(filepath.Join(parent, "d", crypt.DirIVFile))
	if err != nil || len(iv) != crypt.DirIVLen {
		t.Errorf("IV: %d bytes, %v; want %d", len(iv), err, crypt.DirIVLen)
	}
	if st, err := os.Stat(filepath.Join(parent, "d")); err != nil || st.Mode().Perm() != 0o750&^umask() {
		t.Errorf("mode %v, %v; want %o", st.Mode(), err, 0o750&^umask())
	}
	if err := MakeDir(pfd, "d", 0o755, true); !errors.Is(err, unix.EEXIST) {
		t.Errorf("MakeDir over an existing directory: %v, want EEXIST", err)
	}
	if err := MakeDir(pfd, "plain", 0o755, false); err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(parent, "plain")); len(got) != 0 {
		t.Errorf("directory without IV holds %q", got)
	}
	if got := names(t, parent); len(got) != 2 {
		t.Errorf("parent holds %q, want d and plain only", got)
	}
}

// TestRemoveInternalTakesLeftoverTempDir: a temporary directory that a
// crash left inside MakeDir does not keep its parent from being removed.
func TestRemoveInternalTakesLeftoverTempDir(t *testing.T) {
	parent := t.TempDir()
	d := filepath.Join(parent, "d")
	tmp := filepath.Join(d, crypt.ReservedPrefix+".tmp.mkdir.0123456789abcdef")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, crypt.DirIVFile), nil, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := RemoveInternal(openDir(t, d)); err != nil {
		t.Fatal(err)
	}
	if got := names(t, d); len(got) != 0 {
		t.Errorf("left %q", got)
	}
	if err := os.Remove(d); err != nil {
		t.Error(err)
	}
	for _, n := range names(t, parent) {
		if strings.HasPrefix(n, crypt.ReservedPrefix) {
			t.Errorf("left %s", n)
		}
	}
}

func umask() os.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return os.FileMode(m)
}
