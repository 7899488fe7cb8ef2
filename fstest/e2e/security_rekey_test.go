package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

var recoveryKeyRE = regexp.MustCompile(`[0-9A-Z]{8}(-[0-9A-Z]{8}){7}`)

// TestRekey: cryptfs rekey makes a new tree under a new master key that
// holds the same files: the old password and the old recovery key (the old
// master key) do not open it, the new ones do, and the mount shows the
// same names, contents, links, attributes and modes (SECURITY.md: the
// remedy for a leaked password or key).
func TestRekey(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	ctx := context.Background()
	cli := cryptfstest.NewCLI(t)
	old, fresh := filepath.Join(t.TempDir(), "old"), filepath.Join(t.TempDir(), "new")
	res, err := cli.Init(ctx, old)
	mustDo(t, err)
	oldKey := recoveryKeyRE.FindString(string(res.Stdout))
	if oldKey == "" {
		t.Fatalf("no recovery key in the init output: %s", res.Stdout)
	}
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: old})
	mustDo(t, os.MkdirAll(filepath.Join(m.Dir, "d", "e"), 0o750))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "d", "e", "f"), []byte("content of f"), 0o640))
	mustDo(t, os.Link(filepath.Join(m.Dir, "d", "e", "f"), filepath.Join(m.Dir, "link")))
	mustDo(t, os.Symlink("d/e/f", filepath.Join(m.Dir, "sym")))
	mustDo(t, unix.Setxattr(filepath.Join(m.Dir, "d"), "user.x", []byte("xattr value"), 0))
	mustDo(t, unix.Chmod(m.Dir, 0o751))
	cryptfstest.Unmount(t, m)

	res, err = cli.Run(ctx, cryptfstest.Password+"\nnew password\n", "rekey", "--insecure-kdf", old, fresh)
	if err != nil {
		t.Fatalf("rekey: %v", err)
	}
	newKey := recoveryKeyRE.FindString(string(res.Stdout))
	if newKey == "" || newKey == oldKey || !strings.Contains(string(res.Stdout), "Verified") {
		t.Fatalf("rekey output (want a new recovery key and Verified):\n%s", res.Output)
	}
	// Only the new password and the new key open the new tree.
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
	}{
		{cryptfstest.Password + "\n", []string{"fsck", "--insecure-kdf", fresh}, 10},
		{oldKey + "\n", []string{"fsck", "--insecure-kdf", "--recovery-key", fresh}, 10},
		{"new password\n", []string{"fsck", "--insecure-kdf", fresh}, 0},
		{newKey + "\n", []string{"fsck", "--insecure-kdf", "--recovery-key", fresh}, 0},
	} {
		_, err := cli.Run(ctx, c.stdin, c.args...)
		if code := cryptfstest.ExitCode(err); code != c.code {
			t.Errorf("cryptfs %s with %.12q...: exit %d, want %d", strings.Join(c.args, " "), c.stdin, code, c.code)
		}
	}
	newCLI := cryptfstest.NewCLI(t)
	newCLI.Password = "new password"
	m2, err := cryptfstest.TryMount(t, newCLI, cryptfstest.MountOptions{Cipher: fresh})
	mustDo(t, err)
	if got, err := os.ReadFile(filepath.Join(m2.Dir, "link")); err != nil || string(got) != "content of f" {
		t.Errorf("link: %q, %v", got, err)
	}
	var a, b unix.Stat_t
	mustDo(t, unix.Stat(filepath.Join(m2.Dir, "d", "e", "f"), &a))
	mustDo(t, unix.Stat(filepath.Join(m2.Dir, "link"), &b))
	if a.Ino != b.Ino || a.Nlink != 2 || a.Mode&0o7777 != 0o640 {
		t.Errorf("f: inode %d (link %d), %d links, mode %o; want one inode, 2 links, 640", a.Ino, b.Ino, a.Nlink, a.Mode&0o7777)
	}
	if tgt, err := os.Readlink(filepath.Join(m2.Dir, "sym")); err != nil || tgt != "d/e/f" {
		t.Errorf("sym -> %q, %v", tgt, err)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(m2.Dir, "d"), "user.x", buf); err != nil || string(buf[:n]) != "xattr value" {
		t.Errorf("user.x: %q, %v", buf[:n], err)
	}
	mustDo(t, unix.Stat(m2.Dir, &a))
	if a.Mode&0o7777 != 0o751 {
		t.Errorf("root mode %o, want 751", a.Mode&0o7777)
	}
	cryptfstest.Unmount(t, m2)
}
