package ciphertree

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// Conflict copies made by sync tools (docs/format.md, section 12): lower
// names that are an entry's lower name plus a tool's marker. Package crypt
// recognises them by syntax; this file decrypts them against a directory
// and applies the reading rules of section 12.3, for the daemon's listings
// and lookups, for fsck and for the offline tools.

// A Conflict is a lower entry decoded as a sync tool's conflict copy.
type Conflict struct {
	crypt.Conflict        // the reading that authenticated: Base, Suffix, Placement, Tool
	Original       string // plaintext name of the original entry (Base decrypted)
	Name           string // the name the copy is shown under: Original + Suffix
}

// ErrNotConflict is wrapped by DecodeConflict's error when no reading of
// the name as a conflict copy authenticates. It wraps crypt.ErrAuth: such
// a name is as undecryptable as a tampered one.
var ErrNotConflict = fmt.Errorf("not a conflict copy of an entry of this directory: %w", crypt.ErrAuth)

// DecodeConflict reads lower name lower of the directory behind dfd (name
// IV iv) as a conflict copy: each reading crypt.ParseConflict gives, in
// its order, has its base decrypted (through the sidecar for a long name),
// and the first that authenticates wins if the shown name is valid. Call
// it for names that DecodeName rejected: an ordinary encrypted name is
// never a conflict copy.
func DecodeConflict(s *crypt.Suite, dfd int, iv crypt.DirIV, lower string) (Conflict, error) {
	for _, c := range crypt.ParseConflict(lower) {
		orig, err := decodeBase(s, dfd, iv, c.Base)
		if err != nil {
			continue
		}
		name, ok := c.DisplayName(orig)
		if !ok {
			return Conflict{}, fmt.Errorf("conflict copy of %q: with its suffix %q the name is longer than %d bytes: %w",
				orig, c.Suffix, crypt.MaxLowerName, crypt.ErrAuth)
		}
		return Conflict{Conflict: c, Original: orig, Name: name}, nil
	}
	return Conflict{}, ErrNotConflict
}

// decodeBase decrypts the base of a conflict reading: an encrypted name,
// or a long name whose sidecar (the original's) holds the encrypted name.
func decodeBase(s *crypt.Suite, dfd int, iv crypt.DirIV, base string) (string, error) {
	encoded := base
	if crypt.IsLongName(base) {
		var err error
		if encoded, err = ReadSidecar(dfd, base); err != nil {
			return "", err
		}
	}
	return s.DecryptName(iv, encoded)
}

// decodeAny returns the plaintext name a reader shows for lower entry
// lower: its decryption, or its conflict copy name (section 12.3, steps 2
// to 4; collisions are not considered).
func decodeAny(s *crypt.Suite, dfd int, iv crypt.DirIV, lower string) (string, error) {
	name, err := DecodeName(s, dfd, iv, lower)
	if err == nil {
		return name, nil
	}
	if c, cerr := DecodeConflict(s, dfd, iv, lower); cerr == nil {
		return c.Name, nil
	}
	return "", err
}

// Entry is one user entry of a lower directory as a reader shows it.
type Entry struct {
	Name     string    // the plaintext name shown
	Lower    string    // the lower name
	Ino      uint64    // lower inode number, from the directory listing
	Type     uint8     // DT_* type of the lower entry
	Conflict *Conflict // set for a sync tool's conflict copy
}

// BadEntry is a lower entry whose name decodes neither as an encrypted
// name nor as a conflict copy.
type BadEntry struct {
	Lower string
	Ino   uint64
	Type  uint8
	Err   error // from DecodeName: wraps crypt.ErrAuth, or the errno of a missing sidecar
}

// Listing is a lower directory read by the rules of docs/format.md,
// section 12.3. Reserved names appear nowhere.
type Listing struct {
	// Entries are the entries shown, in the order of the lower
	// directory: ordinary entries and the conflict copies shown.
	Entries []Entry
	// Shadowed are conflict copies that are not shown because their
	// name is taken: by an ordinary entry, or by another conflict copy
	// whose lower name sorts first.
	Shadowed []Entry
	// Bad are the entries that do not decode.
	Bad []BadEntry
}

// Conflicts reports whether the listing holds conflict copies (shown or
// shadowed).
func (l *Listing) Conflicts() bool {
	if len(l.Shadowed) > 0 {
		return true
	}
	for _, e := range l.Entries {
		if e.Conflict != nil {
			return true
		}
	}
	return false
}

// ListDir reads the directory behind dfd, whose name IV is iv (atRoot: it
// is the cipher root, where the config files are reserved too), and
// decodes every entry: reserved names are skipped, encrypted names
// decrypted, conflict copies decoded and shown under their names unless
// an ordinary entry or a copy whose lower name sorts first has the name.
func ListDir(s *crypt.Suite, dfd int, iv crypt.DirIV, atRoot bool) (*Listing, error) {
	l := &Listing{}
	var all []Entry
	ordinary := map[string]bool{}
	ents, err := readDecoded(s, dfd, iv, atRoot)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.err == nil {
			ordinary[e.name] = true
			all = append(all, Entry{Name: e.name, Lower: e.lower, Ino: e.ino, Type: e.typ})
			continue
		}
		c, cerr := DecodeConflict(s, dfd, iv, e.lower)
		if cerr == nil {
			all = append(all, Entry{Name: c.Name, Lower: e.lower, Ino: e.ino, Type: e.typ, Conflict: &c})
			continue
		}
		why := e.err
		if !errors.Is(cerr, ErrNotConflict) {
			why = cerr // a reading authenticated; say why it is not shown
		}
		l.Bad = append(l.Bad, BadEntry{Lower: e.lower, Ino: e.ino, Type: e.typ, Err: why})
	}
	// Among conflict copies with one name, the lower name sorting first.
	first := map[string]string{}
	for _, e := range all {
		if e.Conflict != nil && !ordinary[e.Name] {
			if f, ok := first[e.Name]; !ok || e.Lower < f {
				first[e.Name] = e.Lower
			}
		}
	}
	for _, e := range all {
		if e.Conflict != nil && first[e.Name] != e.Lower {
			l.Shadowed = append(l.Shadowed, e)
			continue
		}
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}

// ResolveName maps plaintext name in the directory behind dfd (name IV
// iv) to the lower entry a reader shows under it (section 12.3, "Looking
// up a display name"): the name's encryption when that entry exists;
// otherwise, if the name reads as a conflict copy's name and such a copy
// exists, the copy (the one whose lower name sorts first); otherwise the
// encryption, for an entry that does not exist yet. A conflict copy is
// returned with Long false: it has no sidecar of its own.
//
// It probes the lower directory once per candidate lower name, which the
// offline tools can afford; the daemon instead learns a directory's
// conflict copies from its listing.
func ResolveName(s *crypt.Suite, dfd int, iv crypt.DirIV, name string) (Name, error) {
	n, err := EncodeName(s, iv, name)
	if err != nil {
		return n, err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, n.Lower, &st, unix.AT_SYMLINK_NOFOLLOW); err != unix.ENOENT {
		return n, nil // there (or an error the caller meets on its own access)
	}
	var found []string
	for _, pc := range crypt.SplitConflictName(name) {
		base, err := EncodeName(s, iv, pc.Base)
		if err != nil {
			continue
		}
		for _, cand := range crypt.ConflictLowerNames(base.Lower, pc.Suffix) {
			if unix.Fstatat(dfd, cand, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue
			}
			// The syntax can be read in more than one way: the copy
			// must decode to exactly this name.
			if c, err := DecodeConflict(s, dfd, iv, cand); err == nil && c.Name == name {
				found = append(found, cand)
			}
		}
	}
	if len(found) == 0 {
		return n, nil
	}
	return Name{Lower: slices.Min(found), Encoded: n.Encoded}, nil
}

// HasConflictCopies reports whether the directory behind dfd holds a
// conflict copy of the entry with lower name base, by syntax alone
// (crypt.ParseConflict). A writer asks before removing a long name's
// sidecar, which the copies share (section 7); a name that only looks
// like a copy keeps a sidecar alive too, which is harmless.
func HasConflictCopies(dfd int, base string) (bool, error) {
	found := false
	err := ReadDir(dfd, func(lower string, _ uint64, _ uint8) bool {
		for _, c := range crypt.ParseConflict(lower) {
			if c.Base == base {
				found = true
				return false
			}
		}
		return true
	})
	return found, err
}
