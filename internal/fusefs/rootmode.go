package fusefs

import (
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// The plaintext root's mode lives in crypt.RootModeFile (see package
// ciphertree): a chmod of the mount root changes that file, never the
// cipher root's own mode, so that on a mount shared by several users the
// cipher tree stays out of their reach however open the mount root is.

// rootModeSet marks FS.rootMode as holding a stored mode.
const rootModeSet = 1 << 31

// loadRootMode reads the stored root mode at mount. A damaged file is
// logged and ignored: the root then shows the cipher root's own mode,
// which is never wider than what init made.
func (fs *FS) loadRootMode(rootfd int) {
	mode, ok, err := ciphertree.ReadRootMode(rootfd)
	if err != nil {
		fs.log.Error().Str("path", fs.lower+"/"+crypt.RootModeFile).Err(err).
			Msg("cannot read the root's mode; showing the cipher directory's own")
		return
	}
	if ok {
		fs.rootMode.Store(rootModeSet | mode)
	}
}

// storedRootMode returns the stored root mode bits, if any.
func (fs *FS) storedRootMode() (uint32, bool) {
	m := fs.rootMode.Load()
	return m &^ rootModeSet, m&rootModeSet != 0
}

// setRootMode stores a new mode of the plaintext root. Call with the
// root's lock held exclusively.
func (fs *FS) setRootMode(mode uint32) error {
	fd, err := fs.dirFd(fs.getInode(rootID))
	if err != nil {
		return err
	}
	if err := ciphertree.WriteRootMode(fd, mode); err != nil {
		return err
	}
	fs.rootMode.Store(rootModeSet | mode&0o7777)
	return nil
}

// rootAttrMode returns the mode the root shows given its lower stat.
func (fs *FS) rootAttrMode(lowerMode uint32) uint32 {
	if m, ok := fs.storedRootMode(); ok {
		return unix.S_IFDIR | m
	}
	return lowerMode
}
