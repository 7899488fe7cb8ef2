package ciphertree

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// Getxattr reads one lower attribute value of the inode at path (a
// ProcFd path: the xattr calls refuse O_PATH descriptors).
func Getxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		sz, err := unix.Getxattr(path, name, buf)
		if err == unix.ERANGE {
			if sz, err = unix.Getxattr(path, name, nil); err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:sz], nil
	}
}

// Xattr is one user attribute of a lower inode, as Xattrs found it.
type Xattr struct {
	Lower    string // the lower name (crypt.XattrPrefix + encrypted name)
	Name     string // the plaintext name, when NameErr is nil
	NameErr  error  // the name does not decrypt (wraps crypt.ErrAuth)
	Value    []byte // the plaintext value, when NameErr and ValueErr are nil
	ValueErr error  // the value does not decrypt (wraps crypt.ErrAuth)
}

// Xattrs lists the user attributes of the inode at path (a ProcFd path)
// and decrypts their names and values. Lower attributes outside the user
// namespace are not cryptfs's and are skipped, as are attributes removed
// while they are read. The value of an attribute whose name does not
// decrypt is not read. An I/O error stops the listing.
func Xattrs(s *crypt.Suite, path string) ([]Xattr, error) {
	sz, err := unix.Listxattr(path, nil)
	if err != nil {
		return nil, fmt.Errorf("listxattr: %w", err)
	}
	if sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	if sz, err = unix.Listxattr(path, buf); err != nil {
		return nil, fmt.Errorf("listxattr: %w", err)
	}
	var out []Xattr
	for _, lname := range strings.Split(string(buf[:sz]), "\x00") {
		if !strings.HasPrefix(lname, crypt.XattrPrefix) {
			continue
		}
		x := Xattr{Lower: lname}
		if x.Name, x.NameErr = s.DecryptXattrName(lname); x.NameErr == nil {
			sealed, err := Getxattr(path, lname)
			if errors.Is(err, syscall.ENODATA) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("getxattr %s: %w", lname, err)
			}
			x.Value, x.ValueErr = s.OpenXattrValue(lname, sealed)
		}
		out = append(out, x)
	}
	return out, nil
}
