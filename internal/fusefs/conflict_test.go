package fusefs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/meta"
)

// Conflict copies through the handlers (docs/format.md, section 12): a
// sync tool's copy of a cipher file appears under the original's name
// plus the tool's marker, can be looked up (also before any listing),
// read, renamed over the original and removed; a long name's sidecar
// stays while a copy needs it; and lookups never probe the lower
// directory for the lower names a name could have.

const (
	syncthing = ".sync-conflict-20261205-120000-ABCDEFG"
	dropbox   = " (conflicted copy 2026-12-05)"
	onedrive  = "-LAPTOP"
)

// conflictCopy puts a copy of the lower file of plaintext path src under
// the conflict name a tool with marker gives the lower entry of plaintext
// path orig (before ".<hash>" of a long name, at the end otherwise), as a
// sync tool does behind the daemon's back, and returns its lower path.
func (f *testFS) conflictCopy(src, orig, marker string) string {
	f.t.Helper()
	s, err := f.tree().LowerPath(src)
	f.must(err)
	o, err := f.tree().LowerPath(orig)
	f.must(err)
	name := filepath.Base(o)
	if crypt.IsLongName(name) {
		name = "longname" + marker + strings.TrimPrefix(name, "longname")
	} else {
		name += marker
	}
	data, err := os.ReadFile(filepath.Join(f.lower, s))
	f.must(err)
	dst := filepath.Join(filepath.Dir(o), name)
	f.must(os.WriteFile(filepath.Join(f.lower, dst), data, 0o644))
	return dst
}

func (f *testFS) exists(lowerPath string) bool {
	_, err := os.Lstat(filepath.Join(f.lower, lowerPath))
	return err == nil
}

// found looks name up in parent and returns its node ID (0: absent).
func (f *testFS) found(parent uint64, name string) uint64 {
	f.t.Helper()
	e, err := f.lookup(parent, name)
	if err != nil {
		f.t.Fatalf("lookup %q: %v", name, err)
	}
	return uint64(e.Child)
}

func TestConflictCopies(t *testing.T) {
	for _, tier := range []meta.Tier{meta.Off, meta.KernelCache} {
		t.Run(tier.String(), func(t *testing.T) { testConflictCopies(t, tier) })
	}
}

func testConflictCopies(t *testing.T, tier meta.Tier) {
	f := newTestFS(t, tier, nil, 0)
	long := strings.Repeat("L", 170) + ".odt"
	d := f.mkdir(rootID, "d")
	src := f.mkdir(rootID, "src")
	f.create(d, "report.odt", []byte("mine"))
	f.create(d, long, []byte("mine, long"))
	f.create(src, "theirs", []byte("theirs"))
	f.create(src, "theirs-long", []byte("theirs, long"))
	copyShort := f.conflictCopy("src/theirs", "d/report.odt", syncthing)
	copyLong := f.conflictCopy("src/theirs-long", "d/"+long, syncthing)

	// Looked up before any listing of d, and read.
	id := f.found(d, "report.odt"+syncthing)
	if id == 0 {
		t.Fatalf("lookup of the conflict copy before a listing: absent")
	}
	if got := string(f.read(id)); got != "theirs" {
		t.Errorf("the copy reads %q", got)
	}
	idLong := f.found(d, long+syncthing)
	if idLong == 0 || string(f.read(idLong)) != "theirs, long" {
		t.Fatalf("the long name's copy: id %d", idLong)
	}

	// That lookup listed d once: a copy added behind the daemon's back
	// since is not found by lookups (no probing), only by the next
	// listing, which also revokes the cached negative entry.
	f.conflictCopy("src/theirs", "d/report.odt", dropbox)
	if id := f.found(d, "report.odt"+dropbox); id != 0 {
		t.Errorf("a copy added after the listing was found by a lookup: the lookup probed the lower directory")
	}
	want := []string{".", "..", "report.odt", "report.odt" + dropbox, "report.odt" + syncthing, long, long + syncthing}
	slices.Sort(want)
	if got := f.names(d); !slices.Equal(got, want) {
		t.Errorf("listing %q, want %q", got, want)
	}
	if id := f.found(d, "report.odt"+dropbox); id == 0 {
		t.Errorf("the listed copy is not found by a lookup")
	}

	// A name that cannot be a copy's name does not list the directory:
	// in e, a lookup of "y" leaves e unlisted, so a copy added after it
	// is still found by the first lookup of its name.
	e := f.mkdir(rootID, "e")
	f.create(e, "x", []byte("x"))
	if f.found(e, "y") != 0 {
		t.Fatal("y exists")
	}
	f.conflictCopy("src/theirs", "e/x", onedrive)
	if f.found(e, "x"+onedrive) == 0 {
		t.Errorf("x%s not found: the lookup of y listed the directory", onedrive)
	}

	// Creating a name a copy has: EEXIST, as for any entry.
	err := f.CreateFile(f.ctx, &fuseops.CreateFileOp{Parent: fuseops.InodeID(d), Name: "report.odt" + syncthing, Mode: 0o644})
	if errnoOf(err) != syscall.EEXIST {
		t.Errorf("create over a conflict copy: %v, want EEXIST", err)
	}

	// The original of the long name is removed: its sidecar stays while
	// the copy needs it.
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: fuseops.InodeID(d), Name: long}))
	sidecar := filepath.Join(filepath.Dir(copyLong), crypt.SidecarName(filepath.Base(mustLower(f, "d/"+long))))
	if !f.exists(sidecar) {
		t.Fatalf("the sidecar %s was removed with the original while its conflict copy needs it", sidecar)
	}
	if f.found(d, long+syncthing) == 0 {
		t.Errorf("the long name's copy is gone with the original")
	}
	// Resolving by renaming the copy to the original's name.
	f.must(f.Rename(f.ctx, &fuseops.RenameOp{OldParent: fuseops.InodeID(d), OldName: long + syncthing, NewParent: fuseops.InodeID(d), NewName: long}))
	if id := f.found(d, long); id == 0 || string(f.read(id)) != "theirs, long" {
		t.Errorf("after renaming the copy over the original: id %d", id)
	}
	if f.exists(copyLong) || !f.exists(sidecar) {
		t.Errorf("after the rename: copy there %v, sidecar there %v; want false, true", f.exists(copyLong), f.exists(sidecar))
	}

	// Resolving by renaming over the original, and by removing a copy.
	f.must(f.Rename(f.ctx, &fuseops.RenameOp{OldParent: fuseops.InodeID(d), OldName: "report.odt" + syncthing, NewParent: fuseops.InodeID(d), NewName: "report.odt"}))
	if id := f.found(d, "report.odt"); id == 0 || string(f.read(id)) != "theirs" {
		t.Errorf("report.odt after the rename: id %d", id)
	}
	if f.exists(copyShort) || f.found(d, "report.odt"+syncthing) != 0 {
		t.Errorf("the renamed copy is still there")
	}
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: fuseops.InodeID(d), Name: "report.odt" + dropbox}))
	want = []string{".", "..", "report.odt", long}
	slices.Sort(want)
	if got := f.names(d); !slices.Equal(got, want) {
		t.Errorf("after resolving: listing %q, want %q", got, want)
	}
	entries, err := os.ReadDir(filepath.Join(f.lower, filepath.Dir(copyShort)))
	f.must(err)
	if len(entries) != 4 { // IV, report.odt, long name, its sidecar
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("lower directory after resolving: %q", names)
	}
}

// TestConflictSidecarLastCopy: when the original of a long name is gone,
// removing its last conflict copy removes the sidecar too.
func TestConflictSidecarLastCopy(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	long := strings.Repeat("M", 200)
	f.create(rootID, long, []byte("mine"))
	f.create(rootID, "theirs", []byte("theirs"))
	lowerLong := mustLower(f, long)
	a := f.conflictCopy("theirs", long, syncthing)
	b := f.conflictCopy("theirs", long, onedrive)
	sidecar := crypt.SidecarName(lowerLong)
	f.names(rootID)
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: long}))
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: long + syncthing}))
	if f.exists(a) || !f.exists(sidecar) {
		t.Fatalf("one copy left: first copy there %v, sidecar there %v; want false, true", f.exists(a), f.exists(sidecar))
	}
	f.must(f.Unlink(f.ctx, &fuseops.UnlinkOp{Parent: rootID, Name: long + onedrive}))
	if f.exists(b) || f.exists(sidecar) {
		t.Errorf("no copy left: second copy there %v, sidecar there %v; want both gone", f.exists(b), f.exists(sidecar))
	}
}

func mustLower(f *testFS, plain string) string {
	f.t.Helper()
	l, err := f.tree().LowerPath(plain)
	f.must(err)
	return l
}
