package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// Cipher path lengths on a real tree, measured on real mounts: every
// name of the Go source tree is created (as an empty file or a
// directory; contents do not change names) through a cryptfs mount and
// through a gocryptfs mount, and the paths left in each cipher directory
// are measured. Backup tools and cloud clients that refuse long paths see
// these paths.

// pathLenTree is the plaintext tree measured: $CRYPTFS_PATHLEN_TREE, or
// the Go installation the tests run with.
func pathLenTree(t *testing.T) string {
	t.Helper()
	root := os.Getenv("CRYPTFS_PATHLEN_TREE")
	if root == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			t.Skipf("skipping: no tree to measure: go env GOROOT: %v (set CRYPTFS_PATHLEN_TREE)", err)
		}
		root = strings.TrimSpace(string(out))
	}
	if _, err := os.Stat(filepath.Join(root, "src")); err != nil {
		t.Skipf("skipping: no Go source tree at %s (set CRYPTFS_PATHLEN_TREE): %v", root, err)
	}
	return root
}

// pathStats are the longest and mean path of a tree's entries.
type pathStats struct {
	n, longest int
	longestAt  string
	total      int
}

func (p *pathStats) add(rel string) {
	p.n++
	p.total += len(rel)
	if len(rel) > p.longest {
		p.longest, p.longestAt = len(rel), rel
	}
}

func (p *pathStats) mean() float64 { return float64(p.total) / float64(max(p.n, 1)) }

// plainEntries lists the tree's entries (relative paths) and which are
// directories, parents first.
func plainEntries(t *testing.T, root string) (paths []string, dirs map[string]bool) {
	t.Helper()
	dirs = map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		paths = append(paths, rel)
		dirs[rel] = d.IsDir()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths, dirs
}

// recreate makes every entry under dir: directories as directories,
// everything else as empty files.
func recreate(t *testing.T, dir string, paths []string, dirs map[string]bool) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(dir, p)
		var err error
		if dirs[p] {
			err = os.Mkdir(full, 0o755)
		} else {
			err = os.WriteFile(full, nil, 0o644)
		}
		if err != nil {
			t.Fatalf("creating %s: %v", p, err)
		}
	}
}

// cipherPaths measures the paths under a cipher directory, leaving out
// the files that hold no user entry (skip says which).
func cipherPaths(t *testing.T, dir string, skip func(name string) bool) (pathStats, []int) {
	t.Helper()
	var st pathStats
	var lens []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		if skip(d.Name()) {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		st.add(rel)
		lens = append(lens, len(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, lens
}

// TestGoTreeCipherPathLengthsMounted: the longest cipher path of the Go
// tree under cryptfs is at most twice gocryptfs's (issue 15), both
// measured on cipher directories filled through real mounts; and
// crypt.CipherPathLen predicts every cryptfs path length exactly.
func TestGoTreeCipherPathLengthsMounted(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	if testing.Short() {
		t.Skip("skipping: creates the Go tree's 16,700 names in two mounts (about 25 s)")
	}
	root := pathLenTree(t)
	paths, dirs := plainEntries(t, root)
	var plain pathStats
	var predicted []int
	for _, p := range paths {
		plain.add(p)
		n, err := crypt.CipherPathLen(p)
		if err != nil {
			t.Fatal(err)
		}
		predicted = append(predicted, n)
	}

	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	recreate(t, m.Dir, paths, dirs)
	cryptfstest.Unmount(t, m)
	ours, lens := cipherPaths(t, m.Cipher, func(name string) bool {
		return crypt.IsReserved(name, false) || name == "cryptfs.conf" || name == "cryptfs.conf.bak"
	})
	if ours.n != len(paths) {
		t.Fatalf("%d entries in the cipher tree, %d in %s", ours.n, len(paths), root)
	}
	slices.Sort(lens)
	slices.Sort(predicted)
	if !slices.Equal(lens, predicted) {
		t.Errorf("the cipher path lengths differ from crypt.CipherPathLen's")
	}

	t.Logf("%s: %d entries", root, len(paths))
	t.Logf("plaintext:   longest %4d, mean %6.1f  (%s)", plain.longest, plain.mean(), plain.longestAt)
	t.Logf("cryptfs:     longest %4d, mean %6.1f", ours.longest, ours.mean())

	g, err := gocryptfsPaths(t, paths, dirs)
	if err != nil {
		t.Skipf("skipping the comparison with gocryptfs: %v", err)
	}
	t.Logf("gocryptfs:   longest %4d, mean %6.1f", g.longest, g.mean())
	if g.n != len(paths) {
		t.Errorf("%d entries in gocryptfs's cipher tree, want %d", g.n, len(paths))
	}
	if ours.longest > 2*g.longest {
		t.Errorf("cryptfs's longest cipher path (%d) is more than twice gocryptfs's (%d)", ours.longest, g.longest)
	}
}

// gocryptfsPaths creates the entries through a gocryptfs mount (the
// Debian package; cheap scrypt parameters) and measures its cipher
// directory. It returns an error when gocryptfs is missing.
func gocryptfsPaths(t *testing.T, paths []string, dirs map[string]bool) (pathStats, error) {
	t.Helper()
	bin, err := exec.LookPath("gocryptfs")
	if err != nil {
		return pathStats{}, err
	}
	work := t.TempDir()
	cipher, mnt, pw := filepath.Join(work, "cipher"), filepath.Join(work, "mnt"), filepath.Join(work, "pw")
	mustDo(t, os.Mkdir(cipher, 0o700))
	mustDo(t, os.Mkdir(mnt, 0o700))
	mustDo(t, os.WriteFile(pw, []byte("pw\n"), 0o600))
	runCmd(t, "", bin, "-q", "-init", "-passfile", pw, "-scryptn", "10", cipher)
	runCmd(t, "", bin, "-q", "-passfile", pw, cipher, mnt)
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
				t.Errorf("fusermount3 -u %s: %v\n%s", mnt, err, out)
				cryptfstest.Detach(mnt)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)
	recreate(t, mnt, paths, dirs)
	unmount()
	st, _ := cipherPaths(t, cipher, func(name string) bool {
		return name == "gocryptfs.diriv" || name == "gocryptfs.conf" ||
			strings.HasPrefix(name, "gocryptfs.longname.") && strings.HasSuffix(name, ".name")
	})
	return st, nil
}
