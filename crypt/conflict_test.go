package crypt

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Conflict names as each tool builds them, written from the tools' code
// and documentation (docs/format.md, section 12).

var conflictTime = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// syncthingConflict is Syncthing's conflictName (lib/model): the marker
// goes before filepath.Ext(name).
func syncthingConflict(name, shortID string) string {
	ext := filepath.Ext(name)
	return name[:len(name)-len(ext)] + conflictTime.Format(".sync-conflict-20060102-150405-") + shortID + ext
}

// qtInsert inserts marker where the Nextcloud and ownCloud clients do:
// before the last dot, unless there is none or it is the first character.
func qtInsert(name, marker string) string {
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		dot = len(name)
	}
	return name[:dot] + marker + name[dot:]
}

// nextcloudConflict is Utility::makeConflictFileName (Nextcloud desktop).
func nextcloudConflict(name, user string) string {
	marker := " (conflicted copy "
	if user != "" {
		marker += user + " "
	}
	return qtInsert(name, marker+conflictTime.Format("2006-01-02 150405")+")")
}

// nextcloudCaseClash is Utility::makeCaseClashConflictFileName.
func nextcloudCaseClash(name string) string {
	return qtInsert(name, " (case clash from "+conflictTime.Format("2006-01-02 150405")+")")
}

// owncloudConflict is the ownCloud client's makeConflictFileName before
// 2.5 (with CSYNC_CONFLICT_FILE_USERNAME when user is set).
func owncloudConflict(name, user string) string {
	if user == "" {
		return qtInsert(name, "_conflict-"+conflictTime.Format("20060102-150405"))
	}
	return qtInsert(name, "_conflict_"+user+"-"+conflictTime.Format("20060102-150405"))
}

// dropboxConflict follows Dropbox's documented names, e.g. "report
// (Jane's conflicted copy 2026-12-05).odt".
func dropboxConflict(name, owner, number string) string {
	marker := " ("
	if owner != "" {
		marker += owner + "'s "
	}
	marker += "conflicted copy " + conflictTime.Format("2006-01-02") + number + ")"
	return qtInsert(name, marker)
}

// onedriveConflict is OneDrive's "-HOSTNAME" (and "-HOSTNAME-N") before
// the extension.
func onedriveConflict(name, host string) string { return qtInsert(name, "-"+host) }

type conflictCase struct {
	tool       ConflictTool
	make       func(lower string) string
	suffix     string // the suffix the mount shows after the plaintext name
	longSuffix string // the same for a long name, if it differs
}

var conflictCases = []conflictCase{
	{ToolSyncthing, func(n string) string { return syncthingConflict(n, "ABCDEFG") }, ".sync-conflict-20261205-120000-ABCDEFG", ""},
	{ToolSyncthing, func(n string) string { return syncthingConflict(n, "") }, ".sync-conflict-20261205-120000-", ""},
	{ToolNextcloud, func(n string) string { return nextcloudConflict(n, "") }, " (conflicted copy 2026-12-05 120000)", ""},
	{ToolNextcloud, func(n string) string { return nextcloudConflict(n, "jane.doe@example.org") }, " (conflicted copy jane.doe@example.org 2026-12-05 120000)", ""},
	{ToolNextcloud, func(n string) string { return nextcloudConflict(n, "Jane Doe") }, " (conflicted copy Jane Doe 2026-12-05 120000)", ""},
	{ToolNextcloud, nextcloudCaseClash, " (case clash from 2026-12-05 120000)", ""},
	{ToolOwnCloud, func(n string) string { return owncloudConflict(n, "") }, "_conflict-20261205-120000", ""},
	{ToolOwnCloud, func(n string) string { return owncloudConflict(n, "jane") }, "_conflict_jane-20261205-120000", ""},
	{ToolDropbox, func(n string) string { return dropboxConflict(n, "", "") }, " (conflicted copy 2026-12-05)", ""},
	{ToolDropbox, func(n string) string { return dropboxConflict(n, "Someone", "") }, " (Someone's conflicted copy 2026-12-05)", ""},
	{ToolDropbox, func(n string) string { return dropboxConflict(n, "Jane O'Brien", " 1") }, " (Jane O'Brien's conflicted copy 2026-12-05 1)", ""},
	{ToolDropbox, func(n string) string { return dropboxConflict(n, "Mac mini", " (2)") }, " (Mac mini's conflicted copy 2026-12-05 (2))", ""},
	{ToolOneDrive, func(n string) string { return onedriveConflict(n, "DESKTOP-ABC123") }, "-DESKTOP-ABC123", ""},
	{ToolOneDrive, func(n string) string { return onedriveConflict(n, "laptop-2") }, "-laptop-2", ""},
	{ToolOneDrive, func(n string) string { return onedriveConflict(n, "laptop-safeBackup-0001") }, "-laptop-safeBackup-0001", ""},
	// A conflict copy of a conflict copy: Nextcloud tags Syncthing's copy,
	// before the last dot, which for an encrypted name is Syncthing's.
	{tool: ToolSyncthing, make: func(n string) string { return nextcloudConflict(syncthingConflict(n, "ABCDEFG"), "") },
		suffix:     " (conflicted copy 2026-12-05 120000).sync-conflict-20261205-120000-ABCDEFG",
		longSuffix: ".sync-conflict-20261205-120000-ABCDEFG (conflicted copy 2026-12-05 120000)"},
	{ToolOneDrive, func(n string) string { return onedriveConflict(onedriveConflict(n, "laptop"), "desktop") }, "-laptop-desktop", ""},
}

// conflictTree is a directory of the cipher tree: lower name -> sidecar
// content for long names.
type conflictTree struct {
	s        *Suite
	iv       DirIV
	sidecars map[string]string
}

// resolve is what a reader of the cipher tree does with a lower name that
// is not an ordinary entry: try each reading, decrypt its base, show
// plaintext + suffix.
func (d *conflictTree) resolve(lower string) (display string, c Conflict, err error) {
	for _, c := range ParseConflict(lower) {
		enc := c.Base
		if IsLongName(c.Base) {
			side, ok := d.sidecars[SidecarName(c.Base)]
			if !ok {
				continue
			}
			if enc, err = ParseSidecar(c.Base, []byte(side)); err != nil {
				continue
			}
		}
		plain, err := d.s.DecryptName(d.iv, enc)
		if err != nil {
			continue
		}
		if name, ok := c.DisplayName(plain); ok {
			return name, c, nil
		}
	}
	return "", Conflict{}, fmt.Errorf("%q is not a conflict copy: %w", lower, ErrAuth)
}

func TestConflictCopiesOfEachTool(t *testing.T) {
	s := fixedSuite(t, Options{})
	d := &conflictTree{s: s, iv: vecDirIV, sidecars: map[string]string{}}
	plains := []string{"report.odt", "a", "twenty-byte-name.odt", "no extension at all",
		strings.Repeat("m", 100) + ".txt", strings.Repeat("long-", 40) + ".tar.gz", strings.Repeat("x", 255)}
	for _, plain := range plains {
		enc, err := s.EncryptName(d.iv, plain)
		if err != nil {
			t.Fatal(err)
		}
		lower, long := LowerName(enc)
		if long {
			d.sidecars[SidecarName(lower)] = enc
		}
		for _, tc := range conflictCases {
			conflict := tc.make(lower)
			suffix, tool := tc.suffix, tc.tool
			if long && tc.longSuffix != "" {
				suffix, tool = tc.longSuffix, ToolNextcloud
			}
			name := fmt.Sprintf("%s/%d-byte name/%q", tc.tool, len(plain), suffix)
			if len(conflict) > MaxLowerName {
				// No tool can create it on a 255-byte file system; it must
				// not be read as anything else either.
				if got := ParseConflict(conflict); got != nil {
					t.Errorf("%s: over-long name parsed as %+v", name, got)
				}
				continue
			}
			display, c, err := d.resolve(conflict)
			if len(plain)+len(suffix) > MaxLowerName {
				// The display name would be too long: not shown.
				if err == nil {
					t.Errorf("%s: shown as %q, longer than %d bytes", name, display, MaxLowerName)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: lower %q: %v", name, conflict, err)
				continue
			}
			if display != plain+suffix {
				t.Errorf("%s: shown as %q, want %q", name, display, plain+suffix)
			}
			if c.Tool != tool || c.Lower() != conflict || c.Base != lower || c.Suffix != suffix {
				t.Errorf("%s: reading %+v of %q", name, c, conflict)
			}
			wantPlacement := SuffixAtEnd
			if long {
				wantPlacement = SuffixBeforeHash // every tool inserts before ".<hash>"
			}
			if c.Placement != wantPlacement {
				t.Errorf("%s: placement %v, want %v", name, c.Placement, wantPlacement)
			}
			// The way back, for a lookup by display name.
			split := SplitConflictName(display)
			if !slices.ContainsFunc(split, func(p PlainConflict) bool { return p.Base == plain && p.Suffix == suffix }) {
				t.Errorf("%s: SplitConflictName(%q) = %+v lacks the original split", name, display, split)
			}
			if !slices.Contains(ConflictLowerNames(lower, suffix), conflict) {
				t.Errorf("%s: ConflictLowerNames(%q, %q) = %q lacks %q", name, lower, suffix, ConflictLowerNames(lower, suffix), conflict)
			}
		}
	}
}

func TestConflictNameCreatedThroughTheMount(t *testing.T) {
	// A user who names a file like a conflict copy gets an ordinary
	// encrypted name: it decrypts as the whole name, and no conflict
	// reading of it authenticates.
	s := fixedSuite(t, Options{})
	iv := vecDirIV
	d := &conflictTree{s: s, iv: iv}
	for _, tc := range conflictCases {
		for _, plain := range []string{"x", "report.odt", strings.Repeat("y", 150)} {
			name := plain + tc.suffix
			if checkName(name) != nil {
				continue
			}
			enc, err := s.EncryptName(iv, name)
			if err != nil {
				t.Fatal(err)
			}
			lower, _ := LowerName(enc)
			if strings.ContainsAny(lower[min(len(lower), 9):], ". ()") {
				t.Fatalf("lower name %q of %q looks like a conflict copy", lower, name)
			}
			if got, err := s.DecryptName(iv, enc); err != nil || got != name {
				t.Fatalf("DecryptName = %q, %v", got, err)
			}
			if display, _, err := d.resolve(lower); err == nil {
				t.Fatalf("ordinary name %q of %q resolved as the conflict copy %q", lower, name, display)
			}
		}
	}
}

func TestParseConflictRejects(t *testing.T) {
	s := fixedSuite(t, Options{})
	enc, _ := s.EncryptName(vecDirIV, "report.odt")
	longEnc, _ := s.EncryptName(vecDirIV, strings.Repeat("l", 200))
	long, _ := LowerName(longEnc)
	hash := long[len(longNamePrefix):]
	for _, lower := range []string{
		"", enc, long, "cryptfs.conf", "cryptfs.conf.bak",
		DirIVFile,
		".cryptfs.sync-conflict-20261205-120000-ABCDEFG.diriv", // Syncthing's copy of a directory IV
		".cryptfs.longname.sync-conflict-20261205-120000-ABCDEFG." + hash,
		".cryptfs.tmp.x",
		enc + ".txt",
		enc + " (1)",
		enc + ".sync-conflict-2026-12-05-120000-ABCDEFG",
		enc + ".sync-conflict-20261205-120000-abcdefg",
		enc + ".sync-conflict-20261205-120000-ABCDEFGH",
		enc + ".sync-conflict-20261205-1200-ABCDEFG",
		enc + " (conflicted copy 2026-12-05",
		enc + " (conflicted copy 2026-12-05 12000a)",
		enc + "-host.example.org",
		enc + "-" + strings.Repeat("h", 81),
		enc + " (conflicted copy (x) 2026-12-05 120000)",
		enc + " (Jane's conflicted copy 20261205)",
		enc + "_conflict-2026-12-05-120000",
		enc + "-",
		enc + "--host",
		enc + "-host/x",
		enc[1:] + ".sync-conflict-20261205-120000-ABCDEFG", // 42 characters: no encrypted name has them
		enc[:42] + "!" + ".sync-conflict-20261205-120000-ABCDEFG",
		"longname.sync-conflict-20261205-120000-ABCDEFG." + hash[1:],
		"longname.sync-conflict-20261205-120000-ABCDEFG" + hash,
		"Longname.sync-conflict-20261205-120000-ABCDEFG." + hash,
		strings.Repeat("A", 300),
	} {
		if got := ParseConflict(lower); len(got) != 0 {
			t.Errorf("ParseConflict(%q) = %+v, want none", lower, got)
		}
	}
}

func TestParseConflictReadings(t *testing.T) {
	// Bases are tried longest first; OneDrive's marker may make two
	// encrypted-name lengths possible.
	b43 := strings.Repeat("A", 43)
	b64 := strings.Repeat("B", 64)
	lower := b43 + "-" + b64[:20] + "-host"
	got := ParseConflict(lower)
	if len(got) != 2 || len(got[0].Base) != 64 || len(got[1].Base) != 43 || got[0].Suffix != "-host" || got[1].Suffix != "-"+b64[:20]+"-host" {
		t.Fatalf("ParseConflict(%q) = %+v", lower, got)
	}
	for _, c := range got {
		if c.Lower() != lower || c.Tool != ToolOneDrive || c.Placement != SuffixAtEnd {
			t.Errorf("reading %+v", c)
		}
	}
}

func TestConflictDisplayNameLimit(t *testing.T) {
	c := Conflict{Base: strings.Repeat("A", 43), Suffix: ".sync-conflict-20261205-120000-ABCDEFG", Tool: ToolSyncthing}
	if name, ok := c.DisplayName(strings.Repeat("p", 255-len(c.Suffix))); !ok || len(name) != 255 {
		t.Fatalf("255-byte display name refused: %q, %v", name, ok)
	}
	if _, ok := c.DisplayName(strings.Repeat("p", 256-len(c.Suffix))); ok {
		t.Fatal("256-byte display name accepted")
	}
	if _, ok := c.DisplayName(""); ok {
		t.Fatal("empty plaintext name accepted")
	}
}

func TestSplitConflictName(t *testing.T) {
	st := PlainConflict{"report.odt", ".sync-conflict-20261205-120000-ABCDEFG", ToolSyncthing}
	tests := []struct {
		name string
		want []PlainConflict
	}{
		{"report.odt", nil},
		{"report-final.odt", nil},
		// Every reading, longest base first: Syncthing's device ID also
		// reads as a OneDrive host name (the caller checks which exists).
		{st.Base + st.Suffix, []PlainConflict{
			{st.Base + ".sync-conflict-20261205-120000", "-ABCDEFG", ToolOneDrive},
			{st.Base + ".sync-conflict-20261205", "-120000-ABCDEFG", ToolOneDrive},
			{st.Base + ".sync-conflict", "-20261205-120000-ABCDEFG", ToolOneDrive},
			{st.Base + ".sync", "-conflict-20261205-120000-ABCDEFG", ToolOneDrive},
			st,
		}},
		{"a-b-host", []PlainConflict{{"a-b", "-host", ToolOneDrive}, {"a", "-b-host", ToolOneDrive}}},
		{"notes (conflicted copy 2026-12-05)", []PlainConflict{{"notes", " (conflicted copy 2026-12-05)", ToolDropbox}}},
		{"notes_conflict-20261205-120000", []PlainConflict{
			{"notes_conflict-20261205", "-120000", ToolOneDrive},
			{"notes_conflict", "-20261205-120000", ToolOneDrive},
			{"notes", "_conflict-20261205-120000", ToolOwnCloud},
		}},
		{"a/b-host", nil},
		{"", nil},
		{"-host", nil},  // no base
		{".-host", nil}, // base "." is not a name
	}
	for _, tc := range tests {
		if got := SplitConflictName(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("SplitConflictName(%q) = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestConflictLowerNames(t *testing.T) {
	long, _ := LowerName(strings.Repeat("A", 300))
	hash := long[len(longNamePrefix):]
	got := ConflictLowerNames(long, "-host")
	want := []string{long + "-host", "longname-host." + hash}
	if !slices.Equal(got, want) {
		t.Fatalf("ConflictLowerNames = %q, want %q", got, want)
	}
	if got := ConflictLowerNames(strings.Repeat("A", 235), ".sync-conflict-20261205-120000-ABCDEFG"); got != nil {
		t.Fatalf("over-long lower names: %q", got)
	}
	if got := ConflictLowerNames(strings.Repeat("A", 43), ".txt"); got != nil {
		t.Fatalf("not a conflict suffix: %q", got)
	}
}

func TestConflictOfUndecryptableBase(t *testing.T) {
	// A base of the right shape that does not authenticate is not shown.
	s := fixedSuite(t, Options{})
	d := &conflictTree{s: s, iv: vecDirIV}
	enc, _ := s.EncryptName(DirIV{1}, "other directory")
	if _, _, err := d.resolve(enc + "-host"); !errors.Is(err, ErrAuth) {
		t.Fatalf("conflict copy of a name from another directory: %v", err)
	}
}

func FuzzParseConflict(f *testing.F) {
	s := fixedSuite(f, Options{})
	for _, plain := range []string{"report.odt", strings.Repeat("l", 200)} {
		enc, _ := s.EncryptName(vecDirIV, plain)
		lower, _ := LowerName(enc)
		for _, tc := range conflictCases {
			f.Add(tc.make(lower))
		}
	}
	f.Add(strings.Repeat("A", 43) + "-" + strings.Repeat("B", 20) + "-host")
	f.Fuzz(func(t *testing.T, lower string) {
		for _, c := range ParseConflict(lower) {
			if c.Lower() != lower {
				t.Fatalf("reading %+v does not rebuild %q", c, lower)
			}
			if tool, ok := suffixTool(c.Suffix); !ok || tool != c.Tool || c.Suffix == "" {
				t.Fatalf("reading %+v: suffix not recognised", c)
			}
			if !hasEncodedShape(c.Base) && !IsLongName(c.Base) {
				t.Fatalf("reading %+v: base is no lower name", c)
			}
			if IsReserved(lower, true) {
				t.Fatalf("reserved name %q read as a conflict copy", lower)
			}
		}
	})
}

func FuzzSplitConflictName(f *testing.F) {
	for _, tc := range conflictCases {
		f.Add("report.odt" + tc.suffix)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, p := range SplitConflictName(name) {
			if p.Base+p.Suffix != name || checkName(p.Base) != nil {
				t.Fatalf("split %+v of %q", p, name)
			}
			c := Conflict{Base: strings.Repeat("A", 43), Suffix: p.Suffix}
			if got, ok := c.DisplayName(p.Base); !ok || got != name {
				t.Fatalf("DisplayName(%q) = %q, %v", p.Base, got, ok)
			}
		}
	})
}
