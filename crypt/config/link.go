package config

import "os"

// linkNoReplace makes newpath a hard link of oldpath (link fails if newpath
// exists) and removes oldpath. Once the link exists the file is in place,
// so a failure to remove oldpath is not an error (the caller's cleanup
// removes it again).
func linkNoReplace(oldpath, newpath string) error {
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	os.Remove(oldpath)
	return nil
}
