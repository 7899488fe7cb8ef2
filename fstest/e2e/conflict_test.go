package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// Sync tools' conflict copies against a real mount (docs/format.md,
// section 12): the test plays each tool, putting the other machine's
// version of a cipher file under the name the tool gives a conflict copy,
// and checks what the mount shows, reads, renames and removes, and what
// fsck says.

// syncTools are conflict markers as each tool writes them.
var syncTools = []struct{ tool, marker string }{
	{"syncthing", ".sync-conflict-20261205-120000-ABCDEFG"},     // lib/model conflictName
	{"dropbox", " (Alice's conflicted copy 2026-12-05)"},        // Dropbox desktop
	{"nextcloud", " (conflicted copy alice 2026-12-05 120000)"}, // Utility::makeConflictFileName
	{"owncloud", "_conflict-20261205-120000"},                   // ownCloud/Nextcloud clients before 2.5
	{"onedrive", "-LAPTOP"},                                     // OneDrive: -HOSTNAME
}

// toolConflictName is the name a tool gives the conflict copy of a file
// called name: the marker before the extension (Syncthing: before
// filepath.Ext; the Qt clients: before the last dot unless it is the
// first character; Dropbox and OneDrive likewise). An encrypted name has
// no dot, so the marker goes at the end; "longname.<hash>" gets it before
// ".<hash>".
func toolConflictName(marker, name string) string {
	ext := filepath.Ext(name)
	if strings.LastIndexByte(name, '.') <= 0 {
		ext = ""
	}
	return name[:len(name)-len(ext)] + marker + ext
}

// lowerPath returns the cipher path of plaintext path plain.
func lowerPath(t *testing.T, cipher, plain string) string {
	t.Helper()
	out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", "path", "encrypt", "--insecure-kdf", cipher, plain)
	if code != 0 {
		t.Fatalf("cryptfs path encrypt %s: exit %d: %s", plain, code, out)
	}
	return filepath.Join(cipher, strings.TrimSpace(out))
}

func TestConflictCopiesMounted(t *testing.T) {
	for _, tier := range []string{"off", "kernel-cache"} {
		t.Run(tier, func(t *testing.T) { testConflictCopiesMounted(t, tier) })
	}
}

func testConflictCopiesMounted(t *testing.T, tier string) {
	cryptfstest.RequireFUSE(t)
	long := strings.Repeat("L", 170) + ".odt" // a long name: a sidecar holds its encrypted name
	cipher := cryptfstest.Init(t)
	args := []string{"--fast-path=" + tier}
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: args})
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "docs"), 0o755))
	mine := map[string]string{"report.odt": "my report", long: "my long report"}
	for name, data := range mine {
		mustDo(t, os.WriteFile(filepath.Join(m.Dir, "docs", name), []byte(data), 0o644))
	}
	// The other machine's versions: written here under other names, so
	// that their cipher files can be moved where a sync tool puts them.
	theirs := func(tool, name string) string { return "theirs " + tool + " " + name[:6] }
	for _, st := range syncTools {
		for name := range mine {
			mustDo(t, os.WriteFile(filepath.Join(m.Dir, "docs", st.tool+"-"+name[:6]), []byte(theirs(st.tool, name)), 0o644))
		}
	}
	cryptfstest.Unmount(t, m)
	var copies []string // lower paths of the conflict copies
	for _, st := range syncTools {
		for name := range mine {
			orig := lowerPath(t, cipher, "docs/"+name)
			dst := filepath.Join(filepath.Dir(orig), toolConflictName(st.marker, filepath.Base(orig)))
			mustDo(t, os.Rename(lowerPath(t, cipher, "docs/"+st.tool+"-"+name[:6]), dst))
			copies = append(copies, dst)
		}
	}

	// fsck: conflicts, not damage.
	out := fsck(t, cipher, 0)
	if n := strings.Count(out, "conflict ("); n != len(copies) {
		t.Errorf("fsck lists %d conflicts, want %d:\n%s", n, len(copies), out)
	}
	res, err := cryptfstest.NewCLI(t).Fsck(t.Context(), cipher, "--json")
	mustDo(t, err)
	var rep struct {
		Clean     bool
		Conflicts []struct{ Tool, Plain, Original string }
	}
	mustDo(t, json.Unmarshal(res.Stdout, &rep))
	for _, c := range rep.Conflicts {
		if !strings.HasPrefix(c.Plain, c.Original) || !slices.ContainsFunc(syncTools, func(s struct{ tool, marker string }) bool {
			return s.tool == c.Tool && c.Plain == c.Original+s.marker
		}) {
			t.Errorf("fsck --json: conflict %+v", c)
		}
	}
	if !rep.Clean || len(rep.Conflicts) != len(copies) {
		t.Errorf("fsck --json: clean %v, %d conflicts; want clean, %d", rep.Clean, len(rep.Conflicts), len(copies))
	}

	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: args})
	docs := filepath.Join(m.Dir, "docs")
	// Looked up and read before the directory is ever listed.
	first := "report.odt" + syncTools[0].marker
	if got, err := os.ReadFile(filepath.Join(docs, first)); err != nil || string(got) != theirs(syncTools[0].tool, "report.odt") {
		t.Fatalf("reading %q before any listing: %q, %v", first, got, err)
	}
	// Listed next to the originals.
	want := []string{"report.odt", long}
	for _, st := range syncTools {
		want = append(want, "report.odt"+st.marker, long+st.marker)
	}
	slices.Sort(want)
	if got := listDir(t, docs); !slices.Equal(got, want) {
		t.Fatalf("listing:\n  %q\nwant\n  %q", got, want)
	}
	for _, st := range syncTools {
		for name := range mine {
			p := filepath.Join(docs, name+st.marker)
			if got, err := os.ReadFile(p); err != nil || string(got) != theirs(st.tool, name) {
				t.Errorf("reading %q: %q, %v", name+st.marker, got, err)
			}
		}
	}
	// A conflict copy is a file like any other: it can be written.
	f, err := os.OpenFile(filepath.Join(docs, "report.odt"+syncTools[1].marker), os.O_WRONLY|os.O_APPEND, 0)
	mustDo(t, err)
	_, err = f.WriteString(", edited")
	mustDo(t, err)
	mustDo(t, f.Close())
	// Creating a name a copy has fails as for any entry.
	if _, err := os.OpenFile(filepath.Join(docs, first), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); !os.IsExist(err) {
		t.Errorf("creating %q: %v, want EEXIST", first, err)
	}

	// Resolving: the short name by renaming the Syncthing copy over the
	// original and removing the others; the long name by removing the
	// original first (its sidecar must stay for the copies), then
	// renaming the Dropbox copy into its place and removing the rest.
	mustDo(t, os.Rename(filepath.Join(docs, first), filepath.Join(docs, "report.odt")))
	mustDo(t, os.Remove(filepath.Join(docs, long)))
	if got, err := os.ReadFile(filepath.Join(docs, long+syncTools[2].marker)); err != nil || string(got) != theirs(syncTools[2].tool, long) {
		t.Errorf("a copy of the long name after the original was removed: %q, %v", got, err)
	}
	mustDo(t, os.Rename(filepath.Join(docs, long+syncTools[1].marker), filepath.Join(docs, long)))
	for _, st := range syncTools {
		for name := range mine {
			p := filepath.Join(docs, name+st.marker)
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				t.Errorf("removing %q: %v", name+st.marker, err)
			}
		}
	}
	if got := listDir(t, docs); !slices.Equal(got, []string{long, "report.odt"}) {
		t.Errorf("after resolving: %q", got)
	}
	for name, want := range map[string]string{"report.odt": theirs(syncTools[0].tool, "report.odt"), long: theirs(syncTools[1].tool, long)} {
		if got, err := os.ReadFile(filepath.Join(docs, name)); err != nil || string(got) != want {
			t.Errorf("%.20s after resolving: %q, %v; want %q", name, got, err, want)
		}
	}
	cryptfstest.Unmount(t, m)
	if strings.Contains(m.Log(), `"level":"error"`) {
		t.Errorf("the daemon logged errors:\n%s", m.Log())
	}
	// The lower directory holds the two files, the long name's sidecar
	// and the IV, and fsck finds nothing.
	entries, err := os.ReadDir(filepath.Dir(copies[0]))
	mustDo(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sidecar := crypt.SidecarName(filepath.Base(lowerPath(t, cipher, "docs/"+long)))
	if len(names) != 4 || !slices.Contains(names, sidecar) || !slices.Contains(names, crypt.DirIVFile) {
		t.Errorf("lower directory after resolving: %q", names)
	}
	if out := fsck(t, cipher, 0); strings.Contains(out, "conflict") {
		t.Errorf("fsck after resolving:\n%s", out)
	}
}
