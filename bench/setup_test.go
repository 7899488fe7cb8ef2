package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestKeepEntry(t *testing.T) {
	dirs := []string{"fs", "mm"}
	tests := []struct {
		name string
		want bool
	}{
		{"linux/", true}, // the top directory
		{"linux", true},
		{"linux/fs/", true},
		{"linux/fs/ext4/inode.c", true},
		{"linux/mm/slab.c", true},
		{"linux/fsverity/x.c", false}, // a prefix of a name is not the directory
		{"linux/kernel/fork.c", false},
		{"linux/Makefile", false},
	}
	for _, tt := range tests {
		if got := keepEntry(tt.name, dirs); got != tt.want {
			t.Errorf("keepEntry(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// writeTar writes a tar of the given entries (a trailing slash makes a
// directory, "->" a symlink) to path.
func writeTar(t *testing.T, path string, entries ...string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		var h *tar.Header
		switch {
		case strings.HasSuffix(e, "/"):
			h = &tar.Header{Name: e, Typeflag: tar.TypeDir, Mode: 0o755}
		case strings.Contains(e, "->"):
			name, target, _ := strings.Cut(e, "->")
			h = &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
		default:
			h = &tar.Header{Name: e, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e))}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSubsetAndScanTar(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.tar")
	writeTar(t, full, "linux/", "linux/Makefile", "linux/fs/", "linux/fs/a.c", "linux/fs/sub/", "linux/fs/sub/b.c",
		"linux/fs/link->a.c", "linux/kernel/", "linux/kernel/c.c", "linux/mm/", "linux/mm/d.c")

	quick := filepath.Join(dir, "quick.tar")
	if err := subsetTar(full, quick, []string{"fs", "mm"}); err != nil {
		t.Fatal(err)
	}
	tr, err := scanTar(quick)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Top != "linux" || tr.Entries != 8 || tr.Files != 3 {
		t.Errorf("quick tree: top %q, %d entries, %d files; want linux, 8, 3", tr.Top, tr.Entries, tr.Files)
	}
	if want := int64(len("linux/fs/a.c") + len("linux/fs/sub/b.c") + len("linux/mm/d.c")); tr.Bytes != want {
		t.Errorf("quick tree: %d bytes, want %d", tr.Bytes, want)
	}
	all, err := readList(tr.AllList)
	if err != nil {
		t.Fatal(err)
	}
	wantAll := []string{"linux", "linux/fs", "linux/fs/a.c", "linux/fs/sub", "linux/fs/sub/b.c", "linux/fs/link", "linux/mm", "linux/mm/d.c"}
	if !slices.Equal(all, wantAll) {
		t.Errorf("all list %q, want %q", all, wantAll)
	}
	files, err := readList(tr.FileList)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"linux/fs/a.c", "linux/fs/sub/b.c", "linux/mm/d.c"}; !slices.Equal(files, want) {
		t.Errorf("file list %q, want %q", files, want)
	}

	two := filepath.Join(dir, "two.tar")
	writeTar(t, two, "a/", "a/x", "b/")
	if _, err := scanTar(two); err == nil {
		t.Errorf("a tar with two top-level entries was accepted")
	}
}

func TestMountsUnderIn(t *testing.T) {
	mountinfo := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 7:0 / /var/tmp/cryptfs-bench.1/lower rw - ext4 /dev/loop0 rw
41 40 0:39 / /var/tmp/cryptfs-bench.1/lower/gocryptfs/mnt rw - fuse.gocryptfs x rw
42 40 0:40 / /var/tmp/cryptfs-bench.1/lower/cryptfs-off/mnt rw - fuse.cryptfs x rw
43 22 0:41 / /var/tmp/cryptfs-bench.10/lower rw - ext4 /dev/loop1 rw
44 40 0:42 / /var/tmp/cryptfs-bench.1/lower/with\040space rw - fuse.cryptfs x rw
`
	got := mountsUnderIn(mountinfo, "/var/tmp/cryptfs-bench.1")
	want := []string{
		"/var/tmp/cryptfs-bench.1/lower/cryptfs-off/mnt",
		"/var/tmp/cryptfs-bench.1/lower/gocryptfs/mnt",
		"/var/tmp/cryptfs-bench.1/lower/with space",
		"/var/tmp/cryptfs-bench.1/lower",
	}
	// Deepest first; equal depths latest first.
	if !slices.Equal(got, want) {
		t.Errorf("mountsUnderIn = %q, want %q", got, want)
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/a/b`:           "/a/b",
		`/a\040b`:        "/a b",
		`/tab\011x\134y`: "/tab\tx\\y",
		`/trailing\04`:   `/trailing\04`,
		`/not\999octal`:  `/not\999octal`,
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}
