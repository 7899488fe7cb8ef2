package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// TestPathOnline: cryptfs path encrypt|decrypt of a mounted tree asks its
// daemon through the control socket, without the password (none is given
// here: the offline way would fail), and answers what the offline way
// answers with the password; an unknown path is an error either way.
func TestPathOnline(t *testing.T) {
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	mustDo(t, os.MkdirAll(filepath.Join(m.Dir, "docs", "2026"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "docs", "2026", "report.odt"), []byte("report"), 0o644))
	plain := "docs/2026/report.odt"

	online, code := cryptfstest.Run(t, "", "path", "encrypt", cipher, plain, "docs")
	if code != 0 {
		t.Fatalf("path encrypt of a mounted tree without a password: exit %d: %s", code, online)
	}
	lines := strings.Fields(online)
	if len(lines) != 2 {
		t.Fatalf("path encrypt of two paths printed %q", online)
	}
	if _, err := os.Lstat(filepath.Join(cipher, lines[0])); err != nil {
		t.Errorf("the cipher path %s of %s: %v", lines[0], plain, err)
	}
	if !strings.HasPrefix(lines[0], lines[1]+"/") {
		t.Errorf("cipher paths %q: the file's does not start with its directory's", lines)
	}
	offline, code := cryptfstest.Run(t, cryptfstest.Password+"\n", "path", "encrypt", "--offline", "--insecure-kdf", cipher, plain, "docs")
	if code != 0 || offline != online {
		t.Errorf("path encrypt --offline: exit %d, %q; online %q", code, offline, online)
	}

	// decrypt: relative to CIPHERDIR or starting with it.
	back, code := cryptfstest.Run(t, "", "path", "decrypt", cipher, lines[0], filepath.Join(cipher, lines[1]))
	if code != 0 || back != plain+"\ndocs\n" {
		t.Errorf("path decrypt of a mounted tree: exit %d, %q; want %q", code, back, plain+"\ndocs\n")
	}
	// A name that does not exist (yet) maps like the offline way maps
	// it; a directory on the way that does not exist is an error.
	on, code1 := cryptfstest.Run(t, "", "path", "encrypt", cipher, "docs/new.txt")
	off, code2 := cryptfstest.Run(t, cryptfstest.Password+"\n", "path", "encrypt", "--offline", "--insecure-kdf", cipher, "docs/new.txt")
	if code1 != 0 || code2 != 0 || on != off {
		t.Errorf("path encrypt of a new name: online exit %d %q, offline exit %d %q", code1, on, code2, off)
	}
	if out, code := cryptfstest.Run(t, "", "path", "encrypt", cipher, "nodir/x"); code == 0 || !strings.Contains(out, "nodir") {
		t.Errorf("path encrypt under a missing directory: exit %d, %q; want a failure naming it", code, out)
	}

	// Unmounted: the offline way, which needs the password.
	cryptfstest.Unmount(t, m)
	if out, code := cryptfstest.Run(t, "", "path", "encrypt", cipher, plain); code == 0 {
		t.Errorf("path encrypt of an unmounted tree without a password: exit 0, %q", out)
	}
	if out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", "path", "encrypt", "--insecure-kdf", cipher, plain); code != 0 || out != lines[0]+"\n" {
		t.Errorf("path encrypt offline: exit %d, %q; want %q", code, out, lines[0])
	}
}
