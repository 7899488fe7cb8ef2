package ciphertree

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/crypt"
)

// newTree returns an empty tree (its root IV written) in a temp dir.
func newTree(t *testing.T, opts crypt.Options) *Tree {
	t.Helper()
	dir := t.TempDir()
	s, err := crypt.New(bytes.Repeat([]byte{9}, crypt.KeyLen), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Wipe)
	if !opts.DeterministicNames {
		if _, err := WriteDirIV(openDir(t, dir)); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := Open(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestTreeRoundTrip builds a tree offline, maps each plaintext path to its
// lower path and back, and reads everything back: short and long names,
// nested directories, a file of several blocks, a symlink, an xattr.
func TestTreeRoundTrip(t *testing.T) {
	long := strings.Repeat("n", 200) // encrypts to more than 255 bytes
	for _, det := range []bool{false, true} {
		tr := newTree(t, crypt.Options{DeterministicNames: det})
		data := bytes.Repeat([]byte("0123456789abcdef"), 3*crypt.BlockSize/16+7)
		steps := []error{
			tr.Mkdir("a", 0o755),
			tr.Mkdir("a/"+long, 0o700),
			tr.WriteFile("a/"+long+"/file", data, 0o600),
			tr.WriteFile("empty", nil, 0o644),
			tr.Symlink("../somewhere/else", "a/link"),
			tr.SetXattr("a/"+long+"/file", "user.colour", []byte("blue")),
		}
		for i, err := range steps {
			if err != nil {
				t.Fatalf("deterministic=%v: step %d: %v", det, i, err)
			}
		}
		for _, p := range []string{"a", "a/" + long, "a/" + long + "/file", "empty", "a/link"} {
			lower, err := tr.LowerPath(p)
			if err != nil {
				t.Fatalf("LowerPath(%q): %v", p, err)
			}
			if _, err := os.Lstat(filepath.Join(tr.Dir(), lower)); err != nil {
				t.Errorf("LowerPath(%q) = %q, which does not exist: %v", p, lower, err)
			}
			if strings.Contains(lower, "file") || strings.Contains(lower, "nnnn") {
				t.Errorf("LowerPath(%q) = %q shows the plaintext", p, lower)
			}
			back, err := tr.PlainPath(lower)
			if err != nil || back != p {
				t.Errorf("PlainPath(%q) = %q, %v; want %q", lower, back, err, p)
			}
		}
		f, err := tr.OpenFile("/a/" + long + "/file")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
		f.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("read back %d bytes, %v; want the %d written", len(got), err, len(data))
		}
		if target, err := tr.Readlink("a/link"); err != nil || target != "../somewhere/else" {
			t.Errorf("Readlink: %q, %v", target, err)
		}
		xs, err := tr.Xattrs("a/" + long + "/file")
		if err != nil || len(xs) != 1 || xs[0].Name != "user.colour" || string(xs[0].Value) != "blue" {
			t.Errorf("Xattrs: %+v, %v", xs, err)
		}
		if err := tr.WriteFile("a/link/x", nil, 0o600); err == nil {
			t.Error("a path through a symlink was followed")
		}
	}
}

// TestTreeNamesAreTheDaemons: the lower name of a path is EncodeName of
// its last component under its parent's IV file, so the tree and the
// daemon agree on every name.
func TestTreeNamesAreTheDaemons(t *testing.T) {
	tr := newTree(t, crypt.Options{})
	if err := tr.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	dlower, _ := tr.LowerPath("d")
	dfd := openDir(t, filepath.Join(tr.Dir(), dlower))
	iv, err := ReadDirIV(dfd)
	if err != nil {
		t.Fatal(err)
	}
	want, err := EncodeName(tr.s, iv, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tr.LowerPath("d/x"); got != dlower+"/"+want.Lower {
		t.Errorf("LowerPath(d/x) = %q, want %q", got, dlower+"/"+want.Lower)
	}
	if _, err := tr.PlainPath(dlower + "/not-a-cipher.name"); !errors.Is(err, crypt.ErrAuth) {
		t.Errorf("PlainPath of a foreign name: %v, want ErrAuth", err)
	}
}
