package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// SECURITY.md's side-by-side says which tamper cases gocryptfs shares with
// cryptfs and where cryptfs is stricter. This test runs those cases against
// a real gocryptfs mount (the Debian package), so that the table is a
// measurement: a block rolled back and an entry moved with a copy of its
// directory's IV are accepted there as here (TestSecurityRollback,
// TestSecurityDirIVCopied), while xattr values swapped between two
// attribute names of a file are accepted by gocryptfs and refused by
// cryptfs (TestReliabilityTamperNames, "xattr values swapped between
// names").

// gocryptfsTree is a gocryptfs cipher directory with its password file.
type gocryptfsTree struct {
	bin, cipher, mnt, pw string
	mounted              bool
}

func newGocryptfsTree(t *testing.T) *gocryptfsTree {
	t.Helper()
	bin, err := exec.LookPath("gocryptfs")
	if err != nil {
		t.Skipf("skipping the gocryptfs side of SECURITY.md's comparison: %v (apt-get install gocryptfs)", err)
	}
	work := t.TempDir()
	g := &gocryptfsTree{bin: bin, cipher: filepath.Join(work, "cipher"), mnt: filepath.Join(work, "mnt"), pw: filepath.Join(work, "pw")}
	mustDo(t, os.Mkdir(g.cipher, 0o700))
	mustDo(t, os.Mkdir(g.mnt, 0o700))
	mustDo(t, os.WriteFile(g.pw, []byte("pw\n"), 0o600))
	runCmd(t, "", bin, "-q", "-init", "-passfile", g.pw, "-scryptn", "10", g.cipher)
	t.Cleanup(func() { g.unmount(t) })
	return g
}

func (g *gocryptfsTree) mount(t *testing.T) {
	t.Helper()
	runCmd(t, "", g.bin, "-q", "-passfile", g.pw, g.cipher, g.mnt)
	g.mounted = true
}

func (g *gocryptfsTree) unmount(t *testing.T) {
	t.Helper()
	if !g.mounted {
		return
	}
	g.mounted = false
	if out, err := exec.Command("fusermount3", "-u", g.mnt).CombinedOutput(); err != nil {
		t.Errorf("fusermount3 -u %s: %v\n%s", g.mnt, err, out)
		cryptfstest.Detach(g.mnt)
	}
}

// lowerEntry returns the only lower entry of dir (a cipher directory) of
// the given type (unix.S_IFREG or unix.S_IFDIR), skipping gocryptfs's own
// files.
func lowerEntry(t *testing.T, dir string, typ uint32) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	mustDo(t, err)
	var found []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "gocryptfs.") {
			continue
		}
		var st unix.Stat_t
		mustDo(t, unix.Lstat(filepath.Join(dir, e.Name()), &st))
		if st.Mode&unix.S_IFMT == typ {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	if len(found) != 1 {
		t.Fatalf("lower entries of type %o in %s: %q, want one", typ, dir, found)
	}
	return found[0]
}

// gocryptfsBlock is the stored size of a full gocryptfs content block
// (16-byte IV, 4096 bytes, 16-byte tag) and gocryptfsHeader its file
// header (docs: gocryptfs's file-format.md).
const (
	gocryptfsHeader = 18
	gocryptfsBlock  = 16 + 4096 + 16
)

func TestSecuritySideBySideGocryptfs(t *testing.T) {
	g := newGocryptfsTree(t)
	old := randBytes(31, 3*4096)
	g.mount(t)
	mustDo(t, os.WriteFile(filepath.Join(g.mnt, "a"), old, 0o644))
	mustDo(t, os.Mkdir(filepath.Join(g.mnt, "d"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(g.mnt, "d", "e"), []byte("e's content"), 0o644))
	mustDo(t, os.WriteFile(filepath.Join(g.mnt, "x"), nil, 0o644))
	mustDo(t, unix.Setxattr(filepath.Join(g.mnt, "x"), "user.one", []byte("value of one"), 0))
	mustDo(t, unix.Setxattr(filepath.Join(g.mnt, "x"), "user.two", []byte("value of two"), 0))
	g.unmount(t)

	// Find the lower files: a and x are the root's files (x is empty).
	var lowerA, lowerX string
	ents, err := os.ReadDir(g.cipher)
	mustDo(t, err)
	for _, e := range ents {
		p := filepath.Join(g.cipher, e.Name())
		if strings.HasPrefix(e.Name(), "gocryptfs.") || e.IsDir() {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Size() == 0 {
			lowerX = p
		} else {
			lowerA = p
		}
	}
	lowerD := lowerEntry(t, g.cipher, unix.S_IFDIR)
	if lowerA == "" || lowerX == "" {
		t.Fatalf("lower files not found in %s", g.cipher)
	}

	t.Run("one block rolled back (accepted, as in cryptfs)", func(t *testing.T) {
		off := int64(gocryptfsHeader + gocryptfsBlock)
		oldBlock := lowerBytes(t, lowerA, off, gocryptfsBlock)
		g.mount(t)
		newer := randBytes(32, 4096)
		f, err := os.OpenFile(filepath.Join(g.mnt, "a"), os.O_WRONLY, 0)
		mustDo(t, err)
		_, err = f.WriteAt(newer, 4096)
		mustDo(t, err)
		mustDo(t, f.Close())
		g.unmount(t)
		if bytes.Equal(lowerBytes(t, lowerA, off, gocryptfsBlock), oldBlock) {
			t.Fatal("the rewrite did not change stored block 1")
		}
		patch(t, lowerA, off, oldBlock)
		g.mount(t)
		got, err := os.ReadFile(filepath.Join(g.mnt, "a"))
		g.unmount(t)
		if err != nil {
			t.Fatalf("gocryptfs refused the rolled-back block: %v (SECURITY.md says it accepts it)", err)
		}
		checkBytes(t, got, old, "a with block 1 rolled back, through gocryptfs")
	})

	t.Run("entry moved with a copy of its directory's IV (accepted, as in cryptfs)", func(t *testing.T) {
		rootIV, err := os.ReadFile(filepath.Join(g.cipher, "gocryptfs.diriv"))
		mustDo(t, err)
		ivFile := filepath.Join(lowerD, "gocryptfs.diriv")
		mustDo(t, os.Chmod(ivFile, 0o600))
		mustDo(t, os.WriteFile(ivFile, rootIV, 0o400))
		moved := filepath.Join(lowerD, filepath.Base(lowerA))
		mustDo(t, os.Rename(lowerA, moved))
		t.Cleanup(func() { os.Rename(moved, lowerA) })
		g.mount(t)
		names, err := readNames(filepath.Join(g.mnt, "d"))
		var data []byte
		if err == nil {
			data, err = os.ReadFile(filepath.Join(g.mnt, "d", "a"))
		}
		g.unmount(t)
		if err != nil {
			t.Fatalf("gocryptfs: %v (SECURITY.md says it accepts the moved entry)", err)
		}
		if !strings.Contains(strings.Join(names, ","), "a") || len(data) != len(old) {
			t.Errorf("gocryptfs lists %q in d and reads %d bytes of d/a; want a, %d bytes", names, len(data), len(old))
		}
	})

	t.Run("xattr values swapped between names (accepted by gocryptfs, EIO in cryptfs)", func(t *testing.T) {
		buf := make([]byte, 4096)
		n, err := unix.Listxattr(lowerX, buf)
		mustDo(t, err)
		names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
		if len(names) != 2 {
			t.Fatalf("lower xattrs of x: %q", names)
		}
		v0, v1 := make([]byte, 256), make([]byte, 256)
		n0, err := unix.Getxattr(lowerX, names[0], v0)
		mustDo(t, err)
		n1, err := unix.Getxattr(lowerX, names[1], v1)
		mustDo(t, err)
		mustDo(t, unix.Setxattr(lowerX, names[0], v1[:n1], 0))
		mustDo(t, unix.Setxattr(lowerX, names[1], v0[:n0], 0))
		g.mount(t)
		v := make([]byte, 256)
		n, err = unix.Getxattr(filepath.Join(g.mnt, "x"), "user.one", v)
		g.unmount(t)
		if err != nil {
			t.Fatalf("gocryptfs refused a swapped xattr value: %v (SECURITY.md says it accepts it)", err)
		}
		if string(v[:n]) != "value of two" {
			t.Errorf("gocryptfs user.one after the swap: %q, want \"value of two\"", v[:n])
		}
	})
}
