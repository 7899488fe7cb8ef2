package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Comparing trees: every entry is described by a digest string (type,
// permissions, size and content of regular files, symlink target, user
// attributes, and what digestOptions adds), so two trees compare as two
// maps, and a test can add what it cares about to the strings.

// digestTimes says whose modification times a digest records.
type digestTimes int

const (
	noTimes   digestTimes = iota
	fileTimes             // regular files'
	allTimes              // every entry's: directories and symlinks too
)

// digestOptions says what treeDigests records beyond the basics.
type digestOptions struct {
	times digestTimes
	// links records the link count of each non-directory and its hard-link
	// group (the first name, in order, of the inode among the tree's
	// names), so that names sharing a file in one tree must share one in
	// the other.
	links bool
	skip  func(rel string) bool // entries to leave out (nil: none)
}

// treeDigests maps every entry below dir (relative path) to its digest.
func treeDigests(t *testing.T, dir string, o digestOptions) map[string]string {
	t.Helper()
	stats := map[string]unix.Stat_t{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || (o.skip != nil && o.skip(rel)) {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		stats[rel] = st
		return nil
	})
	mustDo(t, err)
	group := map[uint64]string{} // inode -> its first name
	if o.links {
		names := slices.Sorted(func(yield func(string) bool) {
			for rel := range stats {
				if !yield(rel) {
					return
				}
			}
		})
		for _, rel := range names {
			if st := stats[rel]; st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 && group[st.Ino] == "" {
				group[st.Ino] = rel
			}
		}
	}
	out := map[string]string{}
	for rel, st := range stats {
		d := entryDigest(t, filepath.Join(dir, rel), &st, o.times)
		if o.links && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			d += fmt.Sprintf(" nlink=%d", st.Nlink)
			if g := group[st.Ino]; g != "" {
				d += fmt.Sprintf(" hardlink-group=%q", g)
			}
		}
		out[rel] = d
	}
	return out
}

// entryDigest describes the entry at p (whose lstat is st): its type,
// permissions, size, content's SHA-256 and, as times says, mtime; its
// symlink target; its user attributes.
func entryDigest(t *testing.T, p string, st *unix.Stat_t, times digestTimes) string {
	t.Helper()
	var b strings.Builder
	typ := st.Mode & unix.S_IFMT
	fmt.Fprintf(&b, "type=%o perm=%o", typ, st.Mode&0o7777)
	switch typ {
	case unix.S_IFREG:
		f, err := os.Open(p)
		mustDo(t, err)
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		mustDo(t, err)
		fmt.Fprintf(&b, " size=%d sha256=%s", st.Size, hex.EncodeToString(h.Sum(nil)[:8]))
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		mustDo(t, err)
		fmt.Fprintf(&b, " target=%q", target)
	}
	if times == allTimes || (times == fileTimes && typ == unix.S_IFREG) {
		fmt.Fprintf(&b, " mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
	}
	if typ == unix.S_IFREG || typ == unix.S_IFDIR {
		for _, kv := range userXattrs(t, p) {
			fmt.Fprintf(&b, " xattr %s", kv)
		}
	}
	return b.String()
}

// userXattrs lists p's user attributes as sorted name=hex(value) pairs.
func userXattrs(t *testing.T, p string) []string {
	t.Helper()
	xs, err := readUserXattrs(p)
	mustDo(t, err)
	return xs
}

// compareDigests fails the test for every entry whose digest differs.
func compareDigests(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: nothing to compare", what)
	}
	bad := 0
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s missing", what, p)
			bad++
		} else if g != w {
			t.Errorf("%s: %s is\n\t%s\nwant\t%s", what, p, g, w)
			bad++
		}
		if bad > 10 {
			t.Fatalf("%s: too many differences", what)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s", what, p)
		}
	}
}

// TestTreeDigests: the digests tell apart what compareTrees promises to
// compare (a broken hard link, a directory's mtime, an attribute), and
// only with the options that ask for it.
func TestTreeDigests(t *testing.T) {
	build := func(linked bool) string {
		dir := t.TempDir()
		mustDo(t, os.WriteFile(filepath.Join(dir, "a"), []byte("same"), 0o644))
		if linked {
			mustDo(t, os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")))
		} else {
			mustDo(t, os.WriteFile(filepath.Join(dir, "b"), []byte("same"), 0o644))
		}
		mustDo(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
		for _, p := range []string{"a", "d", "."} {
			mustDo(t, os.Chtimes(filepath.Join(dir, p), time.Unix(1e9, 0), time.Unix(1e9, 0)))
		}
		return dir
	}
	linked, copied := build(true), build(false)
	all := digestOptions{times: allTimes, links: true}
	if a, b := treeDigests(t, linked, all), treeDigests(t, copied, all); a["b"] == b["b"] {
		t.Errorf("a hard link and a copy digest the same: %s", a["b"])
	}
	if a, b := treeDigests(t, linked, digestOptions{}), treeDigests(t, copied, digestOptions{}); !maps.Equal(a, b) {
		t.Errorf("without links, a hard link and a copy differ: %v, %v", a, b)
	}
	before := treeDigests(t, linked, all)
	mustDo(t, os.Chtimes(filepath.Join(linked, "d"), time.Unix(2e9, 0), time.Unix(2e9, 0)))
	if after := treeDigests(t, linked, all); after["d"] == before["d"] {
		t.Errorf("a directory's new mtime is not seen: %s", after["d"])
	}
	if a, b := treeDigests(t, linked, digestOptions{times: fileTimes}), treeDigests(t, copied, digestOptions{times: fileTimes}); a["d"] != b["d"] {
		t.Errorf("fileTimes records a directory's mtime: %s, %s", a["d"], b["d"])
	}
	if err := unix.Setxattr(filepath.Join(copied, "a"), "user.x", []byte("1"), 0); err != nil {
		t.Skipf("skipping the attribute case: %v", err)
	}
	if after := treeDigests(t, copied, digestOptions{}); !strings.Contains(after["a"], "xattr user.x=") {
		t.Errorf("a user attribute is not in the digest: %s", after["a"])
	}
}
