package fusefs

import (
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Conflict copies of sync tools (docs/format.md, section 12) in the mount.
//
// A directory learns its conflict copies from its listing (list, which
// also runs when a lookup misses a name that reads as a copy's name in a
// directory not listed yet): each directory inode keeps the copies shown
// in it, by shown name. A name is mapped to a copy's lower name only from
// that table, so a lookup never probes the lower directory for the
// candidate lower names a name could have: a directory without copies
// costs one listing at most, whatever is looked up in it, and a name that
// cannot be a copy's name (crypt.SplitConflictName finds no marker)
// costs nothing. Entries are checked against the lower directory when
// used, so a copy removed or renamed since the listing is not resolved.

// dirConflicts maps the names of the conflict copies shown in a directory
// to their lower names. The directory inode holds the one its last
// listing found (inode.conflicts), nil until it was listed.
type dirConflicts map[string]string

// noConflicts is the table of every directory listed without copies.
var noConflicts = dirConflicts{}

// setConflicts records the conflict copies a listing of n shows. A name
// cached as absent that the listing shows as a copy (one that appeared
// behind the daemon's back) is revoked, so that the listing and lookups
// agree. Call with n's lock held (either mode).
func (fs *FS) setConflicts(n *inode, l *ciphertree.Listing) {
	c := noConflicts
	for _, e := range l.Entries {
		if e.Conflict != nil {
			if len(c) == 0 {
				c = dirConflicts{}
			}
			c[e.Name] = e.Lower
			if id, ok := fs.cache.Child(&n.Node, e.Name); ok && id == 0 {
				fs.cache.RevokeChild(&n.Node, e.Name)
			}
		}
	}
	fs.mu.Lock()
	n.conflicts = c
	fs.mu.Unlock()
}

// conflictOf returns the lower name of the conflict copy shown as name in
// directory p, if p's last listing showed one, it is still there and no
// ordinary entry (lower name ordinary) has taken the name since.
func (fs *FS) conflictOf(p *inode, name, ordinary string) (string, bool) {
	fs.mu.Lock()
	lower, ok := p.conflicts[name]
	fs.mu.Unlock()
	if !ok {
		return "", false
	}
	pfd, err := fs.dirFd(p)
	if err != nil {
		return "", false
	}
	var st unix.Stat_t
	if unix.Fstatat(pfd, ordinary, &st, unix.AT_SYMLINK_NOFOLLOW) != unix.ENOENT ||
		unix.Fstatat(pfd, lower, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return "", false
	}
	return lower, true
}

// resolveConflict is the mapping of a plaintext name to its lower name
// (lowerName) for conflict copies: the copy's lower name, with no
// sidecar of its own (Long false), when the directory shows one under
// name; ln, the name's encryption, otherwise.
func (fs *FS) resolveConflict(p *inode, name string, ln ciphertree.Name) ciphertree.Name {
	if lower, ok := fs.conflictOf(p, name, ln.Lower); ok {
		return ciphertree.Name{Lower: lower, Encoded: ln.Encoded}
	}
	return ln
}

// conflictOnMiss is asked by LOOKUP when name has no lower entry under
// its encryption: if name reads as a conflict copy's name and directory p
// was never listed (in shared mode: whenever), it lists p now (once; the
// listing records the directory's copies), and returns the lower name of the copy shown as
// name, if any. The caller holds p's lock (either mode).
func (fs *FS) conflictOnMiss(p *inode, name, ordinary string) (string, bool) {
	fs.mu.Lock()
	known := p.conflicts != nil && !fs.shared // shared: copies appear at any time
	fs.mu.Unlock()
	if known || len(crypt.SplitConflictName(name)) == 0 {
		return "", false
	}
	if _, err := fs.list(p); err != nil {
		return "", false
	}
	return fs.conflictOf(p, name, ordinary)
}

// removeSidecar removes the sidecar of long name lower from the directory
// behind pfd, unless a conflict copy of the long name still needs it
// (docs/format.md, section 7): the copies share the original's sidecar.
func (fs *FS) removeSidecar(pfd int, lower string) {
	if has, err := ciphertree.HasConflictCopies(pfd, lower); has || err != nil {
		return
	}
	unix.Unlinkat(pfd, crypt.SidecarName(lower), 0)
}

// dropSidecar is called when lower name lower has left the directory
// behind pfd (removed, or renamed away). It removes the sidecar the name
// used once nothing needs it: a long name's own sidecar unless a conflict
// copy of it remains; for a conflict copy of a long name, the original's
// sidecar when neither the original nor another copy remains. Other
// names have none.
func (fs *FS) dropSidecar(pfd int, lower string) {
	if crypt.IsLongName(lower) {
		fs.removeSidecar(pfd, lower)
		return
	}
	for _, c := range crypt.ParseConflict(lower) {
		var st unix.Stat_t
		if crypt.IsLongName(c.Base) && unix.Fstatat(pfd, c.Base, &st, unix.AT_SYMLINK_NOFOLLOW) == unix.ENOENT {
			fs.removeSidecar(pfd, c.Base)
		}
	}
}
