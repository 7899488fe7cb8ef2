package fsck

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

var longName = strings.Repeat("L", 200) // stored as a hashed long name plus sidecar

// testTree builds a small tree through ciphertree and returns it (open)
// and its lower paths by plaintext path.
//
//	/docs/                   directory
//	/docs/report.txt         3 full blocks + 100 bytes
//	/docs/<longName>         a long name, 10 bytes
//	/small                   10 bytes, xattr user.tag
//	/empty                   0 bytes
//	/link -> docs/report.txt
func testTree(t *testing.T) (*ciphertree.Tree, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	s, err := crypt.New(bytes.Repeat([]byte{3}, crypt.KeyLen), crypt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Wipe)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ciphertree.WriteDirIV(dfd)
	unix.Close(dfd)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ciphertree.Open(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	for _, err := range []error{
		tr.Mkdir("docs", 0o755),
		tr.WriteFile("docs/report.txt", bytes.Repeat([]byte("r"), 3*crypt.BlockSize+100), 0o644),
		tr.WriteFile("docs/"+longName, []byte("long name!"), 0o644),
		tr.WriteFile("small", []byte("ten bytes!"), 0o600),
		tr.SetXattr("small", "user.tag", []byte("value")),
		tr.WriteFile("empty", nil, 0o600),
		tr.Symlink("docs/report.txt", "link"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	lower := map[string]string{}
	for _, p := range []string{"docs", "docs/report.txt", "docs/" + longName, "small", "empty", "link"} {
		l, err := tr.LowerPath(p)
		if err != nil {
			t.Fatal(err)
		}
		lower[p] = filepath.Join(dir, l)
	}
	return tr, lower
}

// want is an expected problem: kind, lower path, plaintext path, block.
type want struct {
	kind, lower, plain string
	block              int64 // -1: none
}

func (w want) String() string {
	return fmt.Sprintf("%s %s (%s) block %d", w.kind, w.lower, w.plain, w.block)
}

func got(r *Report) []want {
	var out []want
	for _, p := range r.Problems {
		w := want{p.Kind, p.Lower, p.Plain, -1}
		if p.Block != nil {
			w.block = *p.Block
		}
		out = append(out, w)
	}
	return out
}

func sorted(ws []want) []string {
	var s []string
	for _, w := range ws {
		s = append(s, w.String())
	}
	sort.Strings(s)
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// patch overwrites bytes of a lower file at off.
func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt(b, off)
	must(t, err)
}

// flipAt inverts the byte of a file at off. Writing a constant instead
// would leave the file intact whenever the byte already had that value
// (one run in 256 for ciphertext).
func flipAt(t *testing.T, path string, off int64) {
	t.Helper()
	patch(t, path, off, []byte{read(t, path, off, 1)[0] ^ 0xff})
}

func read(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	must(t, err)
	return b
}

func flip(b []byte) []byte {
	out := append([]byte(nil), b...)
	out[len(out)/2] ^= 0x40
	return out
}

// TestDamage damages a clean tree in one way per case and checks that
// fsck reports exactly that damage: its kind, cipher path, plaintext path
// where the names above it decrypt, and block number.
func TestDamage(t *testing.T) {
	block := func(b uint64) int64 { return int64(crypt.BlockOffset(b)) }
	cases := []struct {
		name   string
		damage func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want
	}{
		{"clean", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			return nil
		}},
		{"tampered block", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			flipAt(t, l["docs/report.txt"], block(1)+100)
			return []want{{"block", l["docs/report.txt"], "/docs/report.txt", 1}}
		}},
		{"swapped blocks", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["docs/report.txt"]
			b0, b1 := read(t, p, block(0), crypt.CipherBlockSize), read(t, p, block(1), crypt.CipherBlockSize)
			patch(t, p, block(0), b1)
			patch(t, p, block(1), b0)
			return []want{{"block", p, "/docs/report.txt", 0}, {"block", p, "/docs/report.txt", 1}}
		}},
		{"block from another file", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			// small and long-named files both have one 10-byte block.
			other := read(t, l["small"], block(0), 10+crypt.BlockOverhead)
			patch(t, l["docs/"+longName], block(0), other)
			return []want{{"block", l["docs/"+longName], "/docs/" + longName, 0}}
		}},
		{"truncated inside the last block", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["docs/report.txt"]
			must(t, os.Truncate(p, block(3)+50))
			return []want{{"block", p, "/docs/report.txt", 3}}
		}},
		{"truncated into a block's overhead", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["docs/report.txt"]
			must(t, os.Truncate(p, block(3)+5))
			return []want{{"size", p, "/docs/report.txt", -1}, {"block", p, "/docs/report.txt", 3}}
		}},
		{"shorter than a header", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			must(t, os.Truncate(l["small"], crypt.HeaderLen-1))
			return []want{{"size", l["small"], "/small", -1}}
		}},
		{"header of another version", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			patch(t, l["docs/report.txt"], 0, []byte{0x7f, 0x7f})
			return []want{{"header", l["docs/report.txt"], "/docs/report.txt", -1}}
		}},
		{"file ID changed", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["docs/report.txt"]
			patch(t, p, 2, flip(read(t, p, 2, crypt.FileIDLen)))
			var w []want
			for b := int64(0); b < 4; b++ {
				w = append(w, want{"block", p, "/docs/report.txt", b})
			}
			return w
		}},
		{"missing diriv", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			iv := filepath.Join(l["docs"], crypt.DirIVFile)
			must(t, os.Remove(iv))
			return []want{{"diriv", iv, "/docs", -1}}
		}},
		{"short diriv", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			iv := filepath.Join(l["docs"], crypt.DirIVFile)
			must(t, os.Chmod(iv, 0o600))
			must(t, os.Truncate(iv, crypt.DirIVLen/2))
			return []want{{"diriv", iv, "/docs", -1}}
		}},
		{"foreign file", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := filepath.Join(tr.Dir(), "notes (conflicted copy).txt")
			must(t, os.WriteFile(p, nil, 0o600))
			return []want{{"name", p, "/", -1}}
		}},
		{"tampered name", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			old := l["small"]
			b := []byte(filepath.Base(old))
			b[10] = map[bool]byte{true: 'B', false: 'A'}[b[10] == 'A']
			p := filepath.Join(filepath.Dir(old), string(b))
			must(t, os.Rename(old, p))
			return []want{{"name", p, "/", -1}}
		}},
		{"tampered sidecar", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["docs/"+longName]
			sc := filepath.Join(filepath.Dir(p), crypt.SidecarName(filepath.Base(p)))
			must(t, os.Chmod(sc, 0o600))
			patch(t, sc, 20, []byte("AAAA"))
			return []want{{"sidecar", p, "/docs", -1}}
		}},
		{"missing sidecar", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["docs/"+longName]
			must(t, os.Remove(filepath.Join(filepath.Dir(p), crypt.SidecarName(filepath.Base(p)))))
			return []want{{"sidecar", p, "/docs", -1}}
		}},
		{"tampered symlink", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["link"]
			target, err := os.Readlink(p)
			must(t, err)
			must(t, os.Remove(p))
			must(t, os.Symlink(string(flip([]byte(target))), p))
			return []want{{"symlink", p, "/link", -1}}
		}},
		{"tampered xattr value", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["small"]
			names := lowerXattrs(t, p)
			v, err := ciphertree.Getxattr(p, names[0])
			must(t, err)
			must(t, unix.Setxattr(p, names[0], flip(v), 0))
			return []want{{"xattr", p, "/small", -1}}
		}},
		{"foreign xattr name", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			p := l["docs/report.txt"]
			must(t, unix.Setxattr(p, "user.backup-tool", []byte("x"), 0))
			return []want{{"xattr", p, "/docs/report.txt", -1}}
		}},
		{"xattr on a directory", func(t *testing.T, tr *ciphertree.Tree, l map[string]string) []want {
			must(t, unix.Setxattr(l["docs"], "user.x", []byte("x"), 0))
			return []want{{"xattr", l["docs"], "/docs", -1}}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, lower := testTree(t)
			w := c.damage(t, tr, lower)
			r, err := Check(tr.Dir(), tr.Suite(), nil)
			if err != nil {
				t.Fatal(err)
			}
			g, e := sorted(got(r)), sorted(w)
			if strings.Join(g, "\n") != strings.Join(e, "\n") {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(e, "\n  "))
			}
			if r.Clean() != (len(w) == 0) {
				t.Errorf("Clean() = %v with %d problems", r.Clean(), len(r.Problems))
			}
			if c.name == "clean" {
				if r.Dirs != 2 || r.Files != 4 || r.Symlinks != 1 || r.Blocks != 6 || r.Xattrs != 1 {
					t.Errorf("figures %+v: want 2 dirs, 4 files, 1 symlink, 6 blocks, 1 xattr", *r)
				}
			}
		})
	}
}

// TestManyBadBlocksCapped: a file whose every block is bad lists the first
// maxBlockProblems and one summary line.
func TestManyBadBlocksCapped(t *testing.T) {
	tr, l := testTree(t)
	const n = maxBlockProblems + 5
	must(t, tr.WriteFile("big", make([]byte, n*crypt.BlockSize), 0o600))
	p, err := tr.LowerPath("big")
	must(t, err)
	p = filepath.Join(tr.Dir(), p)
	patch(t, p, 2, flip(read(t, p, 2, crypt.FileIDLen)))
	r, err := Check(tr.Dir(), tr.Suite(), nil)
	must(t, err)
	if len(r.Problems) != maxBlockProblems+1 {
		t.Fatalf("%d problems, want %d listed blocks and a summary", len(r.Problems), maxBlockProblems+1)
	}
	last := r.Problems[maxBlockProblems]
	if last.Block != nil || !strings.Contains(last.Detail, "5 more bad blocks") {
		t.Errorf("summary %+v", last)
	}
	_ = l
}

// TestHardLinkCheckedOnce: two names of one lower file count as one file.
func TestHardLinkCheckedOnce(t *testing.T) {
	tr, l := testTree(t)
	// A second lower name for small, named as the daemon would name it.
	must(t, tr.WriteFile("placeholder", nil, 0o600))
	p, _ := tr.LowerPath("placeholder")
	p = filepath.Join(tr.Dir(), p)
	must(t, os.Remove(p))
	must(t, os.Link(l["small"], p))
	r, err := Check(tr.Dir(), tr.Suite(), nil)
	must(t, err)
	if !r.Clean() || r.Files != 4 {
		t.Errorf("report %+v: want clean with 4 files", *r)
	}
}

func lowerXattrs(t *testing.T, path string) []string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(path, buf)
	must(t, err)
	var out []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if strings.HasPrefix(s, "user.") {
			out = append(out, s)
		}
	}
	return out
}

// TestConflictCopiesListed: sync tools' conflict copies are listed as
// conflicts, with the tool and both plaintext paths, not as damage; their
// content is checked like any file's; a copy whose name another entry has
// is listed as not shown.
func TestConflictCopiesListed(t *testing.T) {
	tr, l := testTree(t)
	copyAs := func(src, dst string) {
		b, err := os.ReadFile(src)
		must(t, err)
		must(t, os.WriteFile(dst, b, 0o644))
	}
	report, long := l["docs/report.txt"], l["docs/"+longName]
	syncthing := report + ".sync-conflict-20261205-120000-ABCDEFG"
	dropbox := report + " (conflicted copy 2026-12-05)"
	nextcloud := filepath.Join(filepath.Dir(long), "longname (conflicted copy alice 2026-12-05 120000)"+strings.TrimPrefix(filepath.Base(long), "longname"))
	onedrive := l["small"] + "-LAPTOP"
	copyAs(report, syncthing)
	copyAs(report, dropbox)
	copyAs(long, nextcloud)
	// An ordinary entry with the name of the OneDrive copy hides it.
	must(t, tr.WriteFile("small-LAPTOP", []byte("ordinary"), 0o600))
	copyAs(l["small"], onedrive)
	// A copy with a tampered block: a conflict, and damage.
	flipAt(t, dropbox, crypt.HeaderLen+30)

	r, err := Check(tr.Dir(), tr.Suite(), nil)
	must(t, err)
	var gotC []string
	for _, c := range r.Conflicts {
		gotC = append(gotC, fmt.Sprintf("%s %s %s %s %v", c.Tool, c.Lower, c.Plain, c.Original, c.Shown))
	}
	sort.Strings(gotC)
	wantC := []string{
		fmt.Sprintf("syncthing %s /docs/report.txt.sync-conflict-20261205-120000-ABCDEFG /docs/report.txt true", syncthing),
		fmt.Sprintf("dropbox %s /docs/report.txt (conflicted copy 2026-12-05) /docs/report.txt true", dropbox),
		fmt.Sprintf("nextcloud %s /docs/%s (conflicted copy alice 2026-12-05 120000) /docs/%s true", nextcloud, longName, longName),
		fmt.Sprintf("onedrive %s /small-LAPTOP /small false", onedrive),
	}
	sort.Strings(wantC)
	if strings.Join(gotC, "\n") != strings.Join(wantC, "\n") {
		t.Errorf("conflicts:\n  %s\nwant:\n  %s", strings.Join(gotC, "\n  "), strings.Join(wantC, "\n  "))
	}
	g, e := sorted(got(r)), sorted([]want{{"block", dropbox, "/docs/report.txt (conflicted copy 2026-12-05)", 0}})
	if strings.Join(g, "\n") != strings.Join(e, "\n") {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(e, "\n  "))
	}
	if r.Files != 9 {
		t.Errorf("%d files checked, want 9 (4 + small-LAPTOP + 4 copies)", r.Files)
	}
}

// TestSparseFileFast: a 4 TiB sparse file with a few written blocks is
// checked by reading its data only (SEEK_DATA/SEEK_HOLE): the check
// counts a handful of blocks, and still finds a tampered one far into
// the file. Read byte by byte, the file would take hours.
func TestSparseFileFast(t *testing.T) {
	tr, _ := testTree(t)
	const size = 4 << 40
	must(t, tr.WriteFile("huge", nil, 0o600))
	lower, err := tr.LowerPath("huge")
	must(t, err)
	p := filepath.Join(tr.Dir(), lower)
	fd, err := unix.Open(p, unix.O_RDWR, 0)
	must(t, err)
	c, err := ciphertree.OpenContent(tr.Suite(), fd)
	must(t, err)
	if err := c.Truncate(size); err == unix.EFBIG {
		unix.Close(fd)
		t.Skipf("skipping: the file system of %s cannot hold a 4 TiB sparse file", p)
	} else if err != nil {
		t.Fatal(err)
	}
	for _, off := range []uint64{0, 1 << 40, 2<<40 + 5, size - 1} {
		must(t, c.WriteAt([]byte("x"), off))
	}
	unix.Close(fd)
	clean, err := Check(tr.Dir(), tr.Suite(), nil)
	must(t, err)
	if !clean.Clean() {
		t.Fatalf("problems: %+v", clean.Problems)
	}
	// The test tree's 6 blocks, plus a few stored blocks around each of
	// the 4 writes in huge (the lower file system allocates whole
	// blocks, and the writes reserve their range first); reading the
	// holes would be about 10^9.
	if clean.Blocks > 6+4*8 {
		t.Errorf("%d blocks checked: the holes were read", clean.Blocks)
	}
	bad := int64(1<<40) / crypt.BlockSize
	flipAt(t, p, int64(crypt.BlockOffset(uint64(bad)))+50)
	r, err := Check(tr.Dir(), tr.Suite(), nil)
	must(t, err)
	g, e := sorted(got(r)), sorted([]want{{"block", p, "/huge", bad}})
	if strings.Join(g, "\n") != strings.Join(e, "\n") {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(e, "\n  "))
	}
}
