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
	dfd, err := fs.dirFd(n)
	if err != nil {
		return iv, err
	}
	iv, err = ciphertree.ReadDirIV(dfd)
	if (errors.Is(err, unix.ENOENT) || errors.Is(err, ciphertree.ErrBadIV)) && !fs.readOnly {
		// A directory whose IV file is missing or empty (a crash right
		// after mkdir) can get a new one as long as it holds no names.
		var empty bool
		if empty, err = ciphertree.IsEmpty(dfd); err == nil {
			if !empty {
				err = fmt.Errorf("%s has entries but no valid %s: %w", fs.lowerPath(n, ""), crypt.DirIVFile, syscall.EIO)
			} else {
				unix.Unlinkat(dfd, crypt.DirIVFile, 0)
				if iv, err = ciphertree.WriteDirIV(dfd); err == nil {
					fs.ivs.add(n)
				}
			}
		}
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
