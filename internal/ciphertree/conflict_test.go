package ciphertree

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// toolConflictName returns the name a sync tool gives the conflict copy
// of the file called name, by the tool's own rule for where the marker
// goes: Syncthing (lib/model conflictName) before filepath.Ext(name);
// Dropbox, Nextcloud/ownCloud (Utility::makeConflictFileName: before the
// last dot unless it is the first character) and OneDrive before the
// extension too. An encrypted name has no dot, so the marker goes at the
// end; a long name "longname.<hash>" gets it before ".<hash>".
func toolConflictName(marker, name string) string {
	ext := filepath.Ext(name)
	if strings.LastIndexByte(name, '.') == 0 {
		ext = ""
	}
	return name[:len(name)-len(ext)] + marker + ext
}

// conflictMarkers are markers as each tool writes them.
var conflictMarkers = []struct {
	tool   crypt.ConflictTool
	marker string
}{
	{crypt.ToolSyncthing, ".sync-conflict-20261205-120000-ABCDEFG"},
	{crypt.ToolSyncthing, ".sync-conflict-20261205-120000-"},
	{crypt.ToolDropbox, " (conflicted copy 2026-12-05)"},
	{crypt.ToolDropbox, " (Alice's conflicted copy 2026-12-05 (1))"},
	{crypt.ToolNextcloud, " (conflicted copy alice 2026-12-05 120000)"},
	{crypt.ToolNextcloud, " (case clash from 2026-12-05 120000)"},
	{crypt.ToolOwnCloud, "_conflict-20261205-120000"},
	{crypt.ToolOwnCloud, "_conflict_bob-20261205-120000"},
	{crypt.ToolOneDrive, "-LAPTOP"},
	{crypt.ToolOneDrive, "-LAPTOP-2"},
	{crypt.ToolOneDrive, "-LAPTOP-safeBackup-0001"},
}

// copyLower copies the lower file at lower path src of tr to lower path
// dst, as a sync tool does when it keeps the other machine's version.
func copyLower(t *testing.T, tr *Tree, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.Dir(), src))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tr.Dir(), dst), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readPlain(t *testing.T, tr *Tree, plain string) []byte {
	t.Helper()
	f, err := tr.OpenFile(plain)
	if err != nil {
		t.Fatalf("open %q: %v", plain, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Fatalf("read %q: %v", plain, err)
	}
	return b
}

// TestConflictCopiesDecode: for every tool's marker, a conflict copy of
// a short name and of a long name (the other machine's version of the
// file, copied under the tool's conflict name) lists next to the original
// under the original's name plus the marker, maps between plaintext and
// lower paths both ways and reads the other version.
func TestConflictCopiesDecode(t *testing.T) {
	long := strings.Repeat("L", 170) + ".odt" // a long name: sidecar
	for _, det := range []bool{false, true} {
		for _, m := range conflictMarkers {
			tr := newTree(t, crypt.Options{DeterministicNames: det})
			must(t, tr.Mkdir("d", 0o755))
			for _, name := range []string{"report.odt", long} {
				must(t, tr.WriteFile("d/"+name, []byte("mine: "+name), 0o644))
				must(t, tr.WriteFile("d/theirs-"+name[:4], []byte("theirs: "+name), 0o644))
				orig, err := tr.LowerPath("d/" + name)
				must(t, err)
				theirs, err := tr.LowerPath("d/theirs-" + name[:4])
				must(t, err)
				copyLower(t, tr, theirs, filepath.Join(filepath.Dir(orig), toolConflictName(m.marker, filepath.Base(orig))))
				must(t, os.Remove(filepath.Join(tr.Dir(), theirs)))
			}
			d, err := tr.OpenDir("d")
			must(t, err)
			l, err := d.List()
			d.Close()
			must(t, err)
			var names []string
			for _, e := range l.Entries {
				names = append(names, e.Name)
				if e.Conflict != nil && (e.Conflict.Tool != m.tool || e.Conflict.Suffix != m.marker) {
					t.Errorf("%s: %q decoded as %+v", m.marker, e.Name, e.Conflict.Conflict)
				}
			}
			slices.Sort(names)
			want := []string{"report.odt", "report.odt" + m.marker, long, long + m.marker}
			slices.Sort(want)
			if !slices.Equal(names, want) || len(l.Bad) > 0 || len(l.Shadowed) > 0 {
				t.Errorf("det=%v %q: listing %q (bad %v, shadowed %v), want %q", det, m.marker, names, l.Bad, l.Shadowed, want)
				continue
			}
			for _, name := range []string{"report.odt", long} {
				shown := "d/" + name + m.marker
				if got := string(readPlain(t, tr, shown)); got != "theirs: "+name {
					t.Errorf("%q reads %q", shown, got)
				}
				if got := string(readPlain(t, tr, "d/"+name)); got != "mine: "+name {
					t.Errorf("%q reads %q", "d/"+name, got)
				}
				lower, err := tr.LowerPath(shown)
				must(t, err)
				if !strings.Contains(lower, m.marker) {
					t.Errorf("LowerPath(%q) = %q, not the copy", shown, lower)
				}
				if back, err := tr.PlainPath(lower); err != nil || back != shown {
					t.Errorf("PlainPath(%q) = %q, %v; want %q", lower, back, err, shown)
				}
			}
		}
	}
}

// TestConflictCollisions: an ordinary entry wins over a conflict copy of
// the same name, and of two copies with one name the lower name that
// sorts first is shown; the others are listed as shadowed.
func TestConflictCollisions(t *testing.T) {
	tr := newTree(t, crypt.Options{})
	must(t, tr.WriteFile("a", []byte("a"), 0o644))
	must(t, tr.WriteFile("a-b", []byte("a-b"), 0o644))
	must(t, tr.WriteFile("x", []byte("x"), 0o644))
	must(t, tr.WriteFile("x-y", []byte("x-y"), 0o644))
	la, _ := tr.LowerPath("a")
	lx, _ := tr.LowerPath("x")
	lxy, _ := tr.LowerPath("x-y")
	// "a" + "-b" collides with the ordinary "a-b".
	copyLower(t, tr, la, la+"-b")
	// "x" + "-y-z" and "x-y" + "-z" are both shown as "x-y-z".
	copyLower(t, tr, lx, lx+"-y-z")
	copyLower(t, tr, lxy, lxy+"-z")
	d, err := tr.OpenDir("")
	must(t, err)
	l, err := d.List()
	d.Close()
	must(t, err)
	var shown, shadowed []string
	for _, e := range l.Entries {
		shown = append(shown, e.Name+"="+e.Lower)
	}
	for _, e := range l.Shadowed {
		shadowed = append(shadowed, e.Lower)
	}
	slices.Sort(shown)
	slices.Sort(shadowed)
	first := min(lx+"-y-z", lxy+"-z")
	wantShown := []string{"a=" + la, "a-b=" + mustLower(t, tr, "a-b"), "x=" + lx, "x-y=" + lxy, "x-y-z=" + first}
	slices.Sort(wantShown)
	wantShadowed := []string{la + "-b", max(lx+"-y-z", lxy+"-z")}
	slices.Sort(wantShadowed)
	if !slices.Equal(shown, wantShown) || !slices.Equal(shadowed, wantShadowed) {
		t.Errorf("shown %q\nwant  %q\nshadowed %q\nwant     %q", shown, wantShown, shadowed, wantShadowed)
	}
	// Lookups agree with the listing.
	if got := readPlain(t, tr, "a-b"); string(got) != "a-b" {
		t.Errorf("a-b reads %q: the copy won over the ordinary entry", got)
	}
	if got, _ := tr.LowerPath("x-y-z"); got != first {
		t.Errorf("LowerPath(x-y-z) = %q, want %q", got, first)
	}
}

func mustLower(t *testing.T, tr *Tree, plain string) string {
	t.Helper()
	l, err := tr.LowerPath(plain)
	must(t, err)
	return l
}

// TestConflictNotShown: names that look like conflict copies but whose
// base does not authenticate in this directory, or whose name with the
// suffix would be too long, are bad entries; the tools' copies of
// cryptfs's own files are hidden like the files themselves.
func TestConflictNotShown(t *testing.T) {
	tr := newTree(t, crypt.Options{})
	must(t, tr.Mkdir("d", 0o755))
	must(t, tr.WriteFile("d/f", nil, 0o644))
	must(t, tr.WriteFile(strings.Repeat("n", 250), nil, 0o644))
	lf := mustLower(t, tr, "d/f")
	ln := mustLower(t, tr, strings.Repeat("n", 250))
	// A copy moved to another directory: its base is from "d".
	copyLower(t, tr, lf, filepath.Base(lf)+".sync-conflict-20261205-120000-ABCDEFG")
	// A 250-byte name plus a 29-byte marker is longer than 255 bytes.
	copyLower(t, tr, ln, toolConflictName(" (conflicted copy 2026-12-05)", ln))
	// A tool's copy of the root's IV file.
	copyLower(t, tr, crypt.DirIVFile, toolConflictName(".sync-conflict-20261205-120000-ABCDEFG", crypt.DirIVFile))
	d, err := tr.OpenDir("")
	must(t, err)
	l, err := d.List()
	d.Close()
	must(t, err)
	if len(l.Entries) != 2 || len(l.Shadowed) != 0 || len(l.Bad) != 2 {
		t.Fatalf("entries %+v, shadowed %+v, bad %+v; want d and the long name, and 2 bad", l.Entries, l.Shadowed, l.Bad)
	}
	for _, b := range l.Bad {
		if !errors.Is(b.Err, crypt.ErrAuth) {
			t.Errorf("%s: %v, want ErrAuth", b.Lower, b.Err)
		}
		if strings.Contains(b.Lower, "conflicted copy") && !strings.Contains(b.Err.Error(), "longer than 255") {
			t.Errorf("%s: %v, want the reason (too long)", b.Lower, b.Err)
		}
	}
}

// TestHasConflictCopies: the sidecar of a long name is needed while a
// copy of the long name exists, in either placement of the marker.
func TestHasConflictCopies(t *testing.T) {
	tr := newTree(t, crypt.Options{})
	long := strings.Repeat("n", 200)
	must(t, tr.WriteFile(long, nil, 0o644))
	ln := mustLower(t, tr, long)
	root := openDir(t, tr.Dir())
	if has, err := HasConflictCopies(root, ln); err != nil || has {
		t.Fatalf("before any copy: %v, %v", has, err)
	}
	for _, name := range []string{toolConflictName("-LAPTOP", ln), ln + "-LAPTOP"} {
		copyLower(t, tr, ln, name)
		if has, err := HasConflictCopies(root, ln); err != nil || !has {
			t.Errorf("with %s: %v, %v", name, has, err)
		}
		must(t, os.Remove(filepath.Join(tr.Dir(), name)))
	}
}

// FuzzDecodeConflict: any lower name, read as a conflict copy in a
// directory holding a short and a long name, decodes consistently or not
// at all: the reading that authenticated has the name as its lower name,
// and the shown name is the original's plus the suffix, a valid name.
func FuzzDecodeConflict(f *testing.F) {
	dir := f.TempDir()
	s, err := crypt.New(make([]byte, crypt.KeyLen), crypt.Options{})
	if err != nil {
		f.Fatal(err)
	}
	dfd, err := Openat(unix.AT_FDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		f.Fatal(err)
	}
	iv, err := WriteDirIV(dfd)
	if err != nil {
		f.Fatal(err)
	}
	short, err := EncodeName(s, iv, "report.odt")
	if err != nil {
		f.Fatal(err)
	}
	long, err := EncodeName(s, iv, strings.Repeat("L", 200))
	if err != nil {
		f.Fatal(err)
	}
	if err := WriteSidecar(dfd, long.Lower, long.Encoded); err != nil {
		f.Fatal(err)
	}
	for _, m := range conflictMarkers {
		f.Add(toolConflictName(m.marker, short.Lower))
		f.Add(toolConflictName(m.marker, long.Lower))
		f.Add(long.Lower + m.marker)
	}
	f.Add(short.Lower + "-a" + short.Lower)
	f.Fuzz(func(t *testing.T, lower string) {
		c, err := DecodeConflict(s, dfd, iv, lower)
		if err != nil {
			if !errors.Is(err, crypt.ErrAuth) {
				t.Fatalf("%q: %v, not ErrAuth", lower, err)
			}
			return
		}
		if c.Lower() != lower || c.Name != c.Original+c.Suffix || len(c.Name) > crypt.MaxLowerName || strings.ContainsAny(c.Name, "/\x00") {
			t.Fatalf("%q decoded as %+v", lower, c)
		}
		if c.Original != "report.odt" && c.Original != strings.Repeat("L", 200) {
			t.Fatalf("%q: original %q is no entry of the directory", lower, c.Original)
		}
	})
}
