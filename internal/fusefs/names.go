package fusefs

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// dirIV returns the name IV of directory n, loading it on first use.
func (fs *FS) dirIV(n *inode) (crypt.DirIV, error) {
	if fs.suite.DeterministicNames() {
		return crypt.DirIV{}, nil
	}
	fs.mu.Lock()
	iv, ok := n.dirIV, n.dirIVOK
	fs.mu.Unlock()
	if ok {
		return iv, nil
	}
	iv, err := fs.loadDirIV(n)
	if errors.Is(err, errIVPending) {
		// Not cached: the IV file is read again at the next request.
		fs.log.Info().Str("op", "diriv").Uint64("inode", n.ID).Str("path", fs.lowerPath(n, crypt.DirIVFile)).
			Msg("a new empty directory has no name IV yet (a sync in progress?): it reads as empty until it arrives")
		return iv, syscall.ENOENT
	}
	if err != nil {
		fs.log.Error().Str("op", "diriv").Uint64("inode", n.ID).Str("path", fs.lowerPath(n, crypt.DirIVFile)).Err(err).Msg("cannot read directory IV")
		return iv, syscall.EIO
	}
	fs.mu.Lock()
	n.dirIV, n.dirIVOK = iv, true
	fs.mu.Unlock()
	return iv, nil
}

// errIVPending: in shared mode, an empty directory without a name IV is
// not given one: the directory was most likely made by a sync client
// that has not brought its IV file yet, and a new IV written now would
// be replaced by that one (or synced to the other machines, where it
// would hide every name of the directory).
var errIVPending = errors.New("empty directory without a name IV")

// loadDirIV reads the name IV of directory n from its IV file. A
// directory whose IV file is missing or empty (a crash right after mkdir,
// or after init wrote the config) gets a new one as long as it holds no
// names, except in shared mode (errIVPending).
func (fs *FS) loadDirIV(n *inode) (crypt.DirIV, error) {
	dfd, err := fs.dirFd(n)
	if err != nil {
		return crypt.DirIV{}, err
	}
	iv, err := ciphertree.ReadDirIV(dfd)
	if (errors.Is(err, unix.ENOENT) || errors.Is(err, ciphertree.ErrBadIV)) && !fs.readOnly {
		empty, eerr := ciphertree.IsEmpty(dfd, n.ID == rootID)
		switch {
		case eerr != nil:
			return iv, eerr
		case !empty:
			return iv, fmt.Errorf("the directory has entries but no valid %s: %w", crypt.DirIVFile, err)
		case fs.shared:
			return iv, errIVPending
		}
		unix.Unlinkat(dfd, crypt.DirIVFile, 0)
		if iv, err = ciphertree.WriteDirIV(dfd); err == nil {
			fs.ivs.add(n)
		}
	}
	return iv, err
}

// rootIVError explains why the root's name IV cannot be read, for the
// person mounting: what is wrong and what helps.
func rootIVError(lower string, err error) error {
	path := lower + "/" + crypt.DirIVFile
	what := "cannot be read"
	switch {
	case errors.Is(err, unix.ENOENT):
		what = "is missing"
	case errors.Is(err, ciphertree.ErrBadIV), errors.Is(err, ciphertree.ErrNotRegular):
		what = "is damaged"
	}
	return fmt.Errorf("the top directory's name IV %s %s (%v). Every name in the top directory is encrypted under it: "+
		"without it none of them can be decrypted, so the tree cannot be mounted. Restore that file from a backup of %s "+
		"and run 'cryptfs fsck %s' to see what else is affected. A tree made with --deterministic-names has no IV files: "+
		"if that is this one, its config is not the tree's own ('cryptfs recover %s' rebuilds the config from the recovery key)",
		path, what, err, lower, lower, lower)
}

// lowerName maps a plaintext name in directory p to its lower name (that
// of a conflict copy shown under the name, conflict.go).
func (fs *FS) lowerName(p *inode, name string) (ciphertree.Name, error) {
	if len(name) > crypt.MaxLowerName {
		return ciphertree.Name{}, syscall.ENAMETOOLONG
	}
	iv, err := fs.dirIV(p)
	if err != nil {
		return ciphertree.Name{}, err
	}
	ln, err := ciphertree.EncodeName(fs.suite, iv, name)
	if err != nil {
		return ln, err
	}
	return fs.resolveConflict(p, name, ln), nil // a sync tool's conflict copy (conflict.go)
}
