package crypt

import (
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestCipherPathLen(t *testing.T) {
	tests := []struct {
		plain string
		want  int
	}{
		{"a", 43},
		{"report.odt", 43},
		{"sixteen-bytes..." + "/a", 64 + 1 + 43},
		{"src/cmd/go", 3*43 + 2},
		{strings.Repeat("x", 159), 235},
		{strings.Repeat("x", 160), 52},
		{strings.Repeat("x", 255) + "/" + strings.Repeat("y", 20), 52 + 1 + 64},
	}
	for _, tc := range tests {
		if got, err := CipherPathLen(tc.plain); err != nil || got != tc.want {
			t.Errorf("CipherPathLen(%.20q) = %d, %v; want %d", tc.plain, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a/./b", "a/../b", strings.Repeat("x", 256)} {
		if _, err := CipherPathLen(bad); err == nil {
			t.Errorf("CipherPathLen(%q) succeeded", bad)
		}
	}
}

// gocryptfsNameLen models gocryptfs 2.x's lower name length for a
// plaintext name of n bytes (its Documentation/file-format.md: AES-EME over
// the name PKCS#7-padded to 16 bytes, base64url without padding; longer
// than 255 characters: "gocryptfs.longname." + 43 characters). It is a
// reference for TestGoTreeCipherPathLengths; the real gocryptfs numbers
// come from mounting it (docs/format.md, section 6.4).
func gocryptfsNameLen(n int) int {
	if l := b64Len((n/16 + 1) * 16); l <= MaxLowerName {
		return l
	}
	return len("gocryptfs.longname.") + 43
}

// pathStats is the longest and mean cipher path of a tree.
type pathStats struct {
	entries, longest int
	longestPath      string
	total            int
}

func (p *pathStats) add(rel string, n int) {
	p.entries++
	p.total += n
	if n > p.longest {
		p.longest, p.longestPath = n, rel
	}
}

func (p *pathStats) mean() float64 { return float64(p.total) / float64(max(p.entries, 1)) }

// TestGoTreeCipherPathLengths measures the cipher paths of the Go source
// tree (go env GOROOT, or CRYPTFS_PATHLEN_TREE) in two ways that must agree: from
// CipherPathLen, and by encrypting every component under a fresh random
// directory IV per directory and applying LowerName. It prints the longest
// and mean lengths next to the plaintext's and gocryptfs's (modelled), and
// checks the bound: no cipher path is longer than twice the
// gocryptfs path of the same plaintext path.
func TestGoTreeCipherPathLengths(t *testing.T) {
	root := os.Getenv("CRYPTFS_PATHLEN_TREE")
	if root == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			t.Skipf("no plaintext tree to measure: go env GOROOT: %v (set CRYPTFS_PATHLEN_TREE)", err)
		}
		root = strings.TrimSpace(string(out))
	}
	if _, err := os.Stat(filepath.Join(root, "src")); err != nil {
		t.Skipf("no plaintext tree to measure at %s (set CRYPTFS_PATHLEN_TREE): %v", root, err)
	}
	if testing.Short() {
		t.Skip("walks the whole Go tree")
	}
	s := newTestSuite(t, Options{})
	ivs := map[string]DirIV{}
	cipherDir := map[string]string{".": ""}
	var ours, gocryptfs, plain pathStats
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		parent := path.Dir(rel)
		iv, ok := ivs[parent]
		if !ok {
			if iv, err = NewDirIV(); err != nil {
				return err
			}
			ivs[parent] = iv
		}
		enc, err := s.EncryptName(iv, d.Name())
		if err != nil {
			return err
		}
		lower, _ := LowerName(enc)
		cipherPath := path.Join(cipherDir[parent], lower)
		if d.IsDir() {
			cipherDir[rel] = cipherPath
		}
		n, err := CipherPathLen(rel)
		if err != nil {
			return err
		}
		if n != len(cipherPath) {
			t.Fatalf("%s: CipherPathLen = %d, encrypted path has %d characters", rel, n, len(cipherPath))
		}
		g := 0
		for i, comp := range strings.Split(rel, "/") {
			g += gocryptfsNameLen(len(comp)) + min(i, 1)
		}
		if n > 2*g {
			t.Errorf("%s: cipher path of %d characters, more than twice gocryptfs's %d", rel, n, g)
		}
		ours.add(rel, n)
		gocryptfs.add(rel, g)
		plain.add(rel, len(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d entries", root, ours.entries)
	t.Logf("plaintext:            longest %4d, mean %6.1f (%s)", plain.longest, plain.mean(), plain.longestPath)
	t.Logf("cryptfs v2:           longest %4d, mean %6.1f (%s)", ours.longest, ours.mean(), ours.longestPath)
	t.Logf("gocryptfs (modelled): longest %4d, mean %6.1f (%s)", gocryptfs.longest, gocryptfs.mean(), gocryptfs.longestPath)
	if ours.longest > 2*gocryptfs.longest {
		t.Errorf("longest cipher path %d is more than twice gocryptfs's %d", ours.longest, gocryptfs.longest)
	}
}
