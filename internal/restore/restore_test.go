package restore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

var longName = strings.Repeat("L", 180) // a long name: sidecar

// spec is what the test tree holds, by plaintext path.
type spec struct {
	files   map[string][]byte
	dirs    []string
	links   map[string]string // symlink -> target
	xattrs  map[string]map[string]string
	modes   map[string]uint32
	hard    [][2]string // second name -> first
	sparse  string      // a 1 GiB sparse file with "tail" at its end
	fifo    string
	conflct [2]string // a conflict copy's shown name, its content
}

var mtime = time.Date(2026, 12, 5, 12, 0, 0, 123456789, time.UTC)

// newTestTree builds the test tree offline and returns it with its spec.
func newTestTree(t *testing.T) (*ciphertree.Tree, *spec) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cipher")
	must(t, os.Mkdir(dir, 0o700))
	s, err := crypt.New(bytes.Repeat([]byte{5}, crypt.KeyLen), crypt.Options{})
	must(t, err)
	t.Cleanup(s.Wipe)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	_, err = ciphertree.WriteDirIV(fd)
	unix.Close(fd)
	must(t, err)
	tr, err := ciphertree.Open(dir, s)
	must(t, err)
	t.Cleanup(func() { tr.Close() })

	sp := &spec{
		dirs: []string{"docs", "docs/deep", "docs/deep/er", "empty-dir", "docs/" + longName},
		files: map[string][]byte{
			"docs/report.txt":               bytes.Repeat([]byte("report "), 2000), // 4 blocks
			"docs/deep/er/small":            []byte("small"),
			"docs/" + longName + "/in-long": []byte("inside a long-named directory"),
			"empty":                         nil,
			"top":                           []byte("top"),
		},
		links:   map[string]string{"docs/link": "report.txt", "dangling": "../nowhere"},
		xattrs:  map[string]map[string]string{"docs/report.txt": {"user.colour": "blue"}, "docs": {"user.dir": "yes"}},
		modes:   map[string]uint32{"docs/report.txt": 0o640, "docs/deep": 0o750, "top": 0o4755, "docs/deep/er/small": 0o400, "fifo": 0o620},
		hard:    [][2]string{{"docs/hard", "top"}},
		sparse:  "sparse",
		fifo:    "fifo",
		conflct: [2]string{"docs/report.txt.sync-conflict-20261205-120000-ABCDEFG", "their report"},
	}
	for _, d := range sp.dirs {
		must(t, tr.Mkdir(d, 0o755))
	}
	for p, data := range sp.files {
		must(t, tr.WriteFile(p, data, 0o644))
	}
	for l, target := range sp.links {
		must(t, tr.Symlink(target, l))
	}
	for p, xs := range sp.xattrs {
		for n, v := range xs {
			must(t, tr.SetXattr(p, n, []byte(v)))
		}
	}
	lower := func(p string) string {
		l, err := tr.LowerPath(p)
		must(t, err)
		return filepath.Join(dir, l)
	}
	// A name the tree does not make: create a placeholder to learn the
	// lower name, then put the entry there.
	placeholder := func(p string) string {
		must(t, tr.WriteFile(p, nil, 0o600))
		l := lower(p)
		must(t, os.Remove(l))
		return l
	}
	for _, h := range sp.hard {
		must(t, os.Link(lower(h[1]), placeholder(h[0])))
	}
	must(t, unix.Mkfifo(placeholder(sp.fifo), 0o620))
	must(t, tr.WriteFile(sp.sparse, nil, 0o644))
	sfd, err := unix.Open(lower(sp.sparse), unix.O_RDWR, 0)
	must(t, err)
	c, err := ciphertree.OpenContent(s, sfd)
	must(t, err)
	must(t, c.Truncate(1<<30))
	must(t, c.WriteAt([]byte("tail"), 1<<30-4))
	unix.Close(sfd)
	// The other machine's report, as Syncthing keeps it.
	must(t, tr.WriteFile("theirs", []byte(sp.conflct[1]), 0o644))
	must(t, os.Rename(lower("theirs"), lower("docs/report.txt")+".sync-conflict-20261205-120000-ABCDEFG"))

	for p, m := range sp.modes {
		must(t, os.Chmod(lower(p), os.FileMode(m&0o777)|map[bool]os.FileMode{true: os.ModeSetuid}[m&0o4000 != 0]))
	}
	// Times last (children change their directory's mtime).
	var all []string
	all = append(all, sp.dirs...)
	for p := range sp.files {
		all = append(all, p)
	}
	all = append(all, sp.sparse, sp.fifo)
	for _, p := range all {
		must(t, os.Chtimes(lower(p), mtime, mtime.Add(time.Duration(len(p))*time.Second)))
	}
	for l := range sp.links {
		ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano() + 7e9)}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, lower(l), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	return tr, sp
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// check compares the restored tree at root (restored from plaintext path
// from) with the spec.
func check(t *testing.T, sp *spec, root, from string) {
	t.Helper()
	rel := func(p string) (string, bool) {
		if from == "" {
			return filepath.Join(root, p), true
		}
		if p == from {
			return root, true
		}
		r, ok := strings.CutPrefix(p, from+"/")
		return filepath.Join(root, r), ok
	}
	// Times first: reading a restored file changes its access time.
	var times []string
	times = append(times, sp.dirs...)
	for p := range sp.files {
		times = append(times, p)
	}
	for _, p := range times {
		if d, ok := rel(p); ok {
			var st unix.Stat_t
			must(t, unix.Lstat(d, &st))
			want := mtime.Add(time.Duration(len(p)) * time.Second)
			// Reading a lower directory changes its access time;
			// reading a lower file does not (O_NOATIME).
			_, isFile := sp.files[p]
			if st.Mtim.Nano() != want.UnixNano() || isFile && st.Atim.Nano() != mtime.UnixNano() {
				t.Errorf("%s: atime %v mtime %v, want %v %v", p, time.Unix(0, st.Atim.Nano()), time.Unix(0, st.Mtim.Nano()), mtime, want)
			}
		}
	}
	for p, data := range sp.files {
		if d, ok := rel(p); ok {
			got, err := os.ReadFile(d)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: %d bytes, %v; want %d", p, len(got), err, len(data))
			}
		}
	}
	for l, target := range sp.links {
		if d, ok := rel(l); ok {
			if got, err := os.Readlink(d); err != nil || got != target {
				t.Errorf("symlink %s -> %q, %v; want %q", l, got, err, target)
			}
			var st unix.Stat_t
			must(t, unix.Lstat(d, &st))
			if st.Mtim.Nano() != mtime.UnixNano()+7e9 {
				t.Errorf("symlink %s: mtime %v", l, time.Unix(0, st.Mtim.Nano()))
			}
		}
	}
	for p, xs := range sp.xattrs {
		if d, ok := rel(p); ok {
			for n, v := range xs {
				buf := make([]byte, 256)
				k, err := unix.Getxattr(d, n, buf)
				if err != nil || string(buf[:k]) != v {
					t.Errorf("%s: xattr %s = %q, %v; want %q", p, n, buf[:max(k, 0)], err, v)
				}
			}
		}
	}
	for p, m := range sp.modes {
		if d, ok := rel(p); ok {
			var st unix.Stat_t
			must(t, unix.Lstat(d, &st))
			if st.Mode&0o7777 != m {
				t.Errorf("%s: mode %o, want %o", p, st.Mode&0o7777, m)
			}
		}
	}
	for _, h := range sp.hard {
		a, aok := rel(h[0])
		b, bok := rel(h[1])
		if aok && bok {
			var sa, sb unix.Stat_t
			must(t, unix.Lstat(a, &sa))
			must(t, unix.Lstat(b, &sb))
			if sa.Ino != sb.Ino || sa.Nlink != 2 {
				t.Errorf("%s and %s: inodes %d and %d (nlink %d), want one inode with 2 links", h[0], h[1], sa.Ino, sb.Ino, sa.Nlink)
			}
		}
	}
	if d, ok := rel(sp.sparse); ok {
		var st unix.Stat_t
		must(t, unix.Lstat(d, &st))
		if st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
			t.Errorf("sparse file: size %d, %d bytes allocated; want 1 GiB, sparse", st.Size, st.Blocks*512)
		}
		f, err := os.Open(d)
		must(t, err)
		tail := make([]byte, 4)
		_, err = f.ReadAt(tail, 1<<30-4)
		f.Close()
		if err != nil || string(tail) != "tail" {
			t.Errorf("sparse file's tail %q, %v", tail, err)
		}
	}
	if d, ok := rel(sp.fifo); ok {
		var st unix.Stat_t
		must(t, unix.Lstat(d, &st))
		if st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o620 {
			t.Errorf("fifo: mode %o", st.Mode)
		}
	}
	if d, ok := rel(sp.conflct[0]); ok {
		if got, err := os.ReadFile(d); err != nil || string(got) != sp.conflct[1] {
			t.Errorf("conflict copy %s: %q, %v", sp.conflct[0], got, err)
		}
	}
}

// leftovers lists temporary names a restore left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".cryptfs-restore.") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestRestoreTree(t *testing.T) {
	tr, sp := newTestTree(t)
	for _, from := range []string{"", "/", "docs", "docs/deep/er/small", "docs/link", "sparse", "docs/" + longName, sp.conflct[0]} {
		out := t.TempDir()
		dest := filepath.Join(out, "restored")
		var last Progress
		err := Restore(tr, from, dest, Options{Progress: func(p Progress) { last = p }})
		if err != nil {
			t.Fatalf("restore %q: %v", from, err)
		}
		check(t, sp, dest, strings.Trim(from, "/"))
		if l := leftovers(t, out); len(l) > 0 {
			t.Errorf("restore %q left %q", from, l)
		}
		want, err := Totals(tr, from)
		must(t, err)
		if last != want {
			t.Errorf("restore %q: progress ended at %+v, Totals says %+v", from, last, want)
		}
		if from == "" {
			// Everything but the directories: 5 files and a second
			// name of one, 2 symlinks, the sparse file, the fifo, the
			// conflict copy.
			if want.Files != 11 {
				t.Errorf("Totals of the tree: %+v, want 11 entries", want)
			}
		}
	}
}

// TestRestoreRefusesExisting: an existing destination is left alone
// without Force; with Force, files are replaced and directories merged.
func TestRestoreRefusesExisting(t *testing.T) {
	tr, sp := newTestTree(t)
	dest := filepath.Join(t.TempDir(), "docs")
	must(t, os.Mkdir(dest, 0o755))
	must(t, os.WriteFile(filepath.Join(dest, "report.txt"), []byte("old"), 0o644))
	must(t, os.WriteFile(filepath.Join(dest, "mine"), []byte("mine"), 0o644))
	err := Restore(tr, "docs", dest, Options{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("restore over an existing directory: %v, want ErrExists and a hint", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "report.txt")); string(b) != "old" {
		t.Errorf("the refused restore changed report.txt: %q", b)
	}
	must(t, Restore(tr, "docs", dest, Options{Force: true}))
	check(t, sp, dest, "docs")
	if b, _ := os.ReadFile(filepath.Join(dest, "mine")); string(b) != "mine" {
		t.Errorf("merging removed a file of the destination: %q", b)
	}
	if l := leftovers(t, filepath.Dir(dest)); len(l) > 0 {
		t.Errorf("left %q", l)
	}
	// A single file over a file.
	f := filepath.Join(t.TempDir(), "top")
	must(t, os.WriteFile(f, []byte("old"), 0o600))
	if err := Restore(tr, "top", f, Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("restore over an existing file: %v", err)
	}
	must(t, Restore(tr, "top", f, Options{Force: true}))
	if b, _ := os.ReadFile(f); string(b) != "top" {
		t.Errorf("forced restore of a file: %q", b)
	}
}

// TestRestoreTampered: a tampered block stops the restore with an error
// naming the file and the block, and nothing is left under the
// destination's name or as a temporary file; with KeepGoing everything
// else is restored and the failure listed.
func TestRestoreTampered(t *testing.T) {
	tr, sp := newTestTree(t)
	l, err := tr.LowerPath("docs/deep/er/small")
	must(t, err)
	p := filepath.Join(tr.Dir(), l)
	must(t, os.Chmod(p, 0o600))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	var b [1]byte // inverted, so that it changes whatever it was
	_, err = f.ReadAt(b[:], crypt.HeaderLen+25)
	must(t, err)
	_, err = f.WriteAt([]byte{^b[0]}, crypt.HeaderLen+25)
	f.Close()
	must(t, err)

	for _, from := range []string{"", "docs/deep/er/small"} {
		out := t.TempDir()
		dest := filepath.Join(out, "restored")
		err = Restore(tr, from, dest, Options{})
		if !errors.Is(err, crypt.ErrAuth) || !strings.Contains(err.Error(), "docs/deep/er/small") || !strings.Contains(err.Error(), "block 0") {
			t.Errorf("restore %q of a tampered tree: %v; want ErrAuth naming docs/deep/er/small and block 0", from, err)
		}
		if _, err := os.Lstat(dest); err == nil {
			t.Errorf("restore %q: the destination exists after a failure", from)
		}
		if l := leftovers(t, out); len(l) > 0 {
			t.Errorf("restore %q left %q", from, l)
		}
	}

	dest := filepath.Join(t.TempDir(), "restored")
	err = Restore(tr, "", dest, Options{KeepGoing: true})
	var re *Error
	if !errors.As(err, &re) || len(re.Failures) != 1 || re.Failures[0].Path != "docs/deep/er/small" || !errors.Is(err, crypt.ErrAuth) {
		t.Fatalf("keep going: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dest, "docs/deep/er/small")); err == nil {
		t.Error("the tampered file was restored")
	}
	delete(sp.files, "docs/deep/er/small")
	delete(sp.modes, "docs/deep/er/small")
	check(t, sp, dest, "")
}

func TestRestoreMissing(t *testing.T) {
	tr, _ := newTestTree(t)
	err := Restore(tr, "docs/nothing", filepath.Join(t.TempDir(), "x"), Options{})
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "docs/nothing") {
		t.Errorf("restore of a missing path: %v", err)
	}
}

// TestRestoreOwners: as root, owner and group are restored.
func TestRestoreOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: restoring owners needs root")
	}
	tr, _ := newTestTree(t)
	l, err := tr.LowerPath("docs")
	must(t, err)
	must(t, os.Lchown(filepath.Join(tr.Dir(), l), 1234, 5678))
	dest := filepath.Join(t.TempDir(), "r")
	must(t, Restore(tr, "", dest, Options{Owners: true}))
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dest, "docs"), &st))
	if st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("owner %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
}
