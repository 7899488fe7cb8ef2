//go:build !linux

package config

// renameNoReplace renames oldpath to newpath, failing with an error that
// matches fs.ErrExist if newpath exists (link, then unlink).
func renameNoReplace(oldpath, newpath string) error { return linkNoReplace(oldpath, newpath) }
