package crypt

import (
	"regexp"
	"slices"
	"strings"
)

// Conflict copies (docs/format.md, section 12).
//
// Sync tools that find a file changed on two machines keep both versions:
// one under the original name, the other under the original name plus a
// conflict marker. In the cipher tree the original name is an encrypted
// name (base64url, no dot) or a long name ("longname.<hash>"), so a tool
// puts its marker at the end of the lower name, or, for a long name,
// before what it takes for an extension (".<hash>"). The functions here
// recognise those lower names without keys and without I/O; the caller
// then decrypts the base name as usual, and shows the entry as the
// plaintext name followed by the same suffix.

// ConflictTool names the convention a conflict suffix follows.
type ConflictTool string

// The recognised conventions.
const (
	// ToolSyncthing: ".sync-conflict-YYYYMMDD-HHMMSS-DEVICEID", DEVICEID
	// the 7-character short device ID (base32, A-Z and 2-7) or empty.
	ToolSyncthing ConflictTool = "syncthing"
	// ToolNextcloud: " (conflicted copy [USER ]YYYY-MM-DD HHMMSS)" (Nextcloud
	// and ownCloud desktop clients since 2.5) and " (case clash from
	// YYYY-MM-DD HHMMSS)" (Nextcloud).
	ToolNextcloud ConflictTool = "nextcloud"
	// ToolOwnCloud: "_conflict-YYYYMMDD-HHMMSS" or
	// "_conflict_USER-YYYYMMDD-HHMMSS" (ownCloud and Nextcloud clients
	// before 2.5).
	ToolOwnCloud ConflictTool = "owncloud"
	// ToolDropbox: " ([NAME's ]conflicted copy YYYY-MM-DD[ N| (N)])".
	ToolDropbox ConflictTool = "dropbox"
	// ToolOneDrive: "-HOSTNAME", "-HOSTNAME-N" and the Linux client's
	// "-HOSTNAME-safeBackup-NNNN": a dash, then 1..80 letters, digits and
	// dashes starting with a letter or digit.
	ToolOneDrive ConflictTool = "onedrive"
)

// ConflictPlacement says where a tool put the suffix in the lower name.
type ConflictPlacement uint8

const (
	// SuffixAtEnd: lower = base + suffix (every encrypted name, which has
	// no extension; and a long name if the tool appended at the end).
	SuffixAtEnd ConflictPlacement = iota
	// SuffixBeforeHash: lower = "longname" + suffix + "." + hash, base =
	// "longname." + hash (the tool took ".<hash>" for an extension).
	SuffixBeforeHash
)

// A Conflict is one reading of a lower name as a conflict copy.
type Conflict struct {
	Base      string            // lower name of the original: an encrypted name or a long name
	Suffix    string            // the marker exactly as the tool wrote it, e.g. ".sync-conflict-20261205-120000-ABCDEFG"
	Placement ConflictPlacement // where the tool put it
	Tool      ConflictTool      // convention of the last (outermost) marker in Suffix
}

// Lower returns the lower name the conflict copy has: the inverse of
// ParseConflict.
func (c Conflict) Lower() string {
	if c.Placement == SuffixBeforeHash {
		return strings.TrimSuffix(longNamePrefix, ".") + c.Suffix + c.Base[len(longNamePrefix)-1:]
	}
	return c.Base + c.Suffix
}

// DisplayName returns the plaintext name the mount shows for the conflict
// copy of the entry whose plaintext name is plain: plain + Suffix, the
// suffix always at the end (whatever the placement in the lower name). It
// reports false if the result is not a valid name (longer than 255 bytes).
func (c Conflict) DisplayName(plain string) (string, bool) {
	name := plain + c.Suffix
	if checkName(plain) != nil || checkName(name) != nil {
		return "", false
	}
	return name, true
}

// Conflict marker grammars (RE2, so matching is linear in the input).
const (
	reSyncthing = `\.sync-conflict-[0-9]{8}-[0-9]{6}-(?:[A-Z2-7]{7})?`
	reNextcloud = ` \((?:conflicted copy (?:[^()/\x00]+ )?|case clash from )[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{6}\)`
	reOwnCloud  = `_conflict(?:_[^/\x00]+)?-[0-9]{8}-[0-9]{6}`
	reDropbox   = ` \((?:[^()/\x00]+'s )?conflicted copy [0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]+| \([0-9]+\))?\)`
	reOneDrive  = `-[A-Za-z0-9][A-Za-z0-9-]{0,79}`
	reAnyMarker = `(?:` + reSyncthing + `|` + reNextcloud + `|` + reOwnCloud + `|` + reDropbox + `|` + reOneDrive + `)`
)

var (
	// conflictSuffix matches a whole suffix: one or more markers (a
	// conflict copy of a conflict copy has two).
	conflictSuffix = regexp.MustCompile(`^` + reAnyMarker + `+$`)
	// conflictLast tells which convention the last marker follows, in
	// order of precedence (OneDrive's grammar is the most general).
	conflictLast = []struct {
		tool ConflictTool
		re   *regexp.Regexp
	}{
		{ToolSyncthing, regexp.MustCompile(`^` + reAnyMarker + `*` + reSyncthing + `$`)},
		{ToolNextcloud, regexp.MustCompile(`^` + reAnyMarker + `*` + reNextcloud + `$`)},
		{ToolOwnCloud, regexp.MustCompile(`^` + reAnyMarker + `*` + reOwnCloud + `$`)},
		{ToolDropbox, regexp.MustCompile(`^` + reAnyMarker + `*` + reDropbox + `$`)},
		{ToolOneDrive, regexp.MustCompile(`^` + reAnyMarker + `*` + reOneDrive + `$`)},
	}
)

// suffixTool reports whether s is a conflict suffix and the convention of
// its last marker.
func suffixTool(s string) (ConflictTool, bool) {
	if len(s) > MaxLowerName || !conflictSuffix.MatchString(s) {
		return "", false
	}
	for _, l := range conflictLast {
		if l.re.MatchString(s) {
			return l.tool, true
		}
	}
	return "", false // unreachable: the union matched
}

// shortEncodedLens are the lengths of encrypted names that are lower names
// themselves (plaintext names of 1..MaxShortName bytes), longest first.
var shortEncodedLens = func() []int {
	var ls []int
	for n := MaxShortName; n >= 1; n -= nameBlock {
		ls = append(ls, EncodedNameLen(n))
	}
	return ls
}()

// hasEncodedShape reports whether s could be an encrypted lower name: a
// possible length and base64url characters only.
func hasEncodedShape(s string) bool {
	if !slices.Contains(shortEncodedLens, len(s)) {
		return false
	}
	for i := range len(s) {
		if !isB64URL(s[i]) {
			return false
		}
	}
	return true
}

// ParseConflict returns every reading of the lower name as a conflict
// copy made by a sync tool: a base that has the shape of an encrypted
// name (or is a long name) and a suffix made of recognised markers. It
// looks at syntax only: the caller decrypts each Base (reading the
// sidecar of a long name) and keeps the first that authenticates;
// readings come in order of decreasing Base length. Ordinary lower names,
// reserved names and anything else give none. A name the caller already
// decrypted as an ordinary name is not a conflict copy.
func ParseConflict(lower string) []Conflict {
	if len(lower) > MaxLowerName || strings.HasPrefix(lower, ReservedPrefix) {
		return nil
	}
	var out []Conflict
	add := func(base, suffix string, p ConflictPlacement) {
		if tool, ok := suffixTool(suffix); ok {
			out = append(out, Conflict{Base: base, Suffix: suffix, Placement: p, Tool: tool})
		}
	}
	// A long name, the tool taking ".<hash>" for an extension.
	if stem, ok := strings.CutPrefix(lower, strings.TrimSuffix(longNamePrefix, ".")); ok && len(stem) > longHashLen+1 {
		cut := len(stem) - longHashLen - 1
		if base := longNamePrefix + stem[cut+1:]; stem[cut] == '.' && IsLongName(base) {
			add(base, stem[:cut], SuffixBeforeHash)
		}
	}
	// A long name with the suffix at the end.
	if len(lower) > longLowerLen && IsLongName(lower[:longLowerLen]) {
		add(lower[:longLowerLen], lower[longLowerLen:], SuffixAtEnd)
	}
	// An encrypted name with the suffix at the end.
	for _, l := range shortEncodedLens {
		if l < len(lower) && hasEncodedShape(lower[:l]) {
			add(lower[:l], lower[l:], SuffixAtEnd)
		}
	}
	slices.SortStableFunc(out, func(a, b Conflict) int { return len(b.Base) - len(a.Base) })
	return out
}

// A PlainConflict is one reading of a plaintext name as the display name
// of a conflict copy: Base + Suffix.
type PlainConflict struct {
	Base   string       // plaintext name of the original
	Suffix string       // conflict suffix
	Tool   ConflictTool // convention of the last marker
}

// SplitConflictName returns every reading of the plaintext name as Base +
// Suffix with a valid Base and a recognised suffix, longest Base first.
// A lookup of a name that is not an ordinary entry can use them to find a
// conflict copy: encrypt Base, then look for ConflictLowerNames.
func SplitConflictName(name string) []PlainConflict {
	if checkName(name) != nil {
		return nil
	}
	var out []PlainConflict
	for i := len(name) - 1; i > 0; i-- {
		switch name[i] {
		case '.', ' ', '_', '-':
		default:
			continue
		}
		if checkName(name[:i]) != nil {
			continue
		}
		if tool, ok := suffixTool(name[i:]); ok {
			out = append(out, PlainConflict{Base: name[:i], Suffix: name[i:], Tool: tool})
		}
	}
	return out
}

// ConflictLowerNames returns the lower names that a conflict copy with
// the given suffix of the entry with lower name baseLower may have (both
// placements for a long name), leaving out those longer than
// MaxLowerName, which no tool can create.
func ConflictLowerNames(baseLower, suffix string) []string {
	if _, ok := suffixTool(suffix); !ok {
		return nil
	}
	cands := []Conflict{{Base: baseLower, Suffix: suffix, Placement: SuffixAtEnd}}
	if IsLongName(baseLower) {
		cands = append(cands, Conflict{Base: baseLower, Suffix: suffix, Placement: SuffixBeforeHash})
	}
	var out []string
	for _, c := range cands {
		if l := c.Lower(); len(l) <= MaxLowerName {
			out = append(out, l)
		}
	}
	return out
}
