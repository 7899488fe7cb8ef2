package ciphertree

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// Name is how a plaintext name is stored in a lower directory.
type Name struct {
	Lower   string // the lower directory entry
	Encoded string // the encrypted name; differs from Lower for long names
	Long    bool   // Lower is a hashed long name: Encoded lives in a sidecar
}

// EncodeName maps plaintext name, in a directory with name IV iv, to its
// lower name. Errors are bare errnos, as a file system reports them:
// ENAMETOOLONG for a name too long to store, EINVAL for "", ".", ".."
// and names with '/' or NUL.
func EncodeName(s *crypt.Suite, iv crypt.DirIV, name string) (Name, error) {
	if len(name) > crypt.MaxLowerName {
		return Name{}, syscall.ENAMETOOLONG
	}
	encoded, err := s.EncryptName(iv, name)
	if err != nil {
		if errors.Is(err, crypt.ErrInvalidName) {
			return Name{}, syscall.EINVAL
		}
		return Name{}, err
	}
	lower, long := crypt.LowerName(encoded)
	return Name{Lower: lower, Encoded: encoded, Long: long}, nil
}

// WriteSidecar stores the encoded name of a long-name entry, replacing
// whatever had the sidecar's name (a stale sidecar, or a FIFO, device node
// or symlink put there: never opened); a directory in its place gives an
// error wrapping ErrNotRegular.
func WriteSidecar(dfd int, longLower, encoded string) error {
	name := crypt.SidecarName(longLower)
	fd, err := createExclusive(dfd, name, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := PwriteFull(fd, []byte(encoded), 0); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// ReadSidecar returns the encoded name a long-name entry stands for. Like
// ReadDirIV it opens only a regular file (else an error wrapping
// ErrNotRegular).
func ReadSidecar(dfd int, longLower string) (string, error) {
	fd, err := OpenRegular(dfd, crypt.SidecarName(longLower), unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, err := ReadFull(fd, buf)
	if err != nil {
		return "", err
	}
	return crypt.ParseSidecar(longLower, buf[:n])
}

// DecodeName returns the plaintext name of lower entry lower in the
// directory behind dfd (name IV iv), reading the sidecar of long names.
// A name that is not an encrypted name at all (a file added to the tree
// from outside) fails like a tampered one: the error wraps crypt.ErrAuth.
func DecodeName(s *crypt.Suite, dfd int, iv crypt.DirIV, lower string) (string, error) {
	encoded, err := encodedName(dfd, lower)
	if err != nil {
		return "", err
	}
	return s.DecryptName(iv, encoded)
}

// decodedEntry is an entry of a lower directory, other than a reserved
// name, with its name decoded (DecodeName's result).
type decodedEntry struct {
	lower string
	ino   uint64
	typ   uint8
	name  string
	err   error // why the name does not decode; name is "" then
}

// readDecoded lists the lower directory behind dfd (name IV iv; atRoot:
// it is the cipher root) without its reserved names, and decodes every
// name as DecodeName does, decrypting them in a batch
// (crypt.Suite.DecryptNames, which blocks signals once per batch instead
// of once per name).
func readDecoded(s *crypt.Suite, dfd int, iv crypt.DirIV, atRoot bool) ([]decodedEntry, error) {
	var ents []decodedEntry
	err := ReadDir(dfd, func(lower string, ino uint64, typ uint8) bool {
		if !crypt.IsReserved(lower, atRoot) {
			ents = append(ents, decodedEntry{lower: lower, ino: ino, typ: typ})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	encoded := make([]string, 0, len(ents))
	at := make([]int, 0, len(ents)) // encoded[k] is ents[at[k]]'s
	for i := range ents {
		enc, err := encodedName(dfd, ents[i].lower)
		if err != nil {
			ents[i].err = err
			continue
		}
		encoded = append(encoded, enc)
		at = append(at, i)
	}
	names, errs := s.DecryptNames(iv, encoded)
	for k, i := range at {
		ents[i].name, ents[i].err = names[k], errs[k]
	}
	return ents, nil
}

// encodedName returns the encoded name lower entry lower stands for: lower
// itself, or a long name's sidecar.
func encodedName(dfd int, lower string) (string, error) {
	if crypt.IsLongName(lower) {
		return ReadSidecar(dfd, lower)
	}
	if strings.ContainsRune(lower, '.') {
		return "", fmt.Errorf("not an encrypted name (a file added to the cipher tree from outside, e.g. a sync tool's conflict copy?): %w", crypt.ErrAuth)
	}
	return lower, nil
}
