package fuse_test

import (
	"fmt"

	"github.com/jacobsa/fuse"
)

// configure applies a test's server options to the mount configuration.
func configure(cfg *fuse.MountConfig, o serverOptions) error {
	if o.Transport != "" && o.Transport != "dev" {
		return fmt.Errorf("transport %q is not supported", o.Transport)
	}
	return nil
}

// mountStatus is what the serving process reports about its mount.
func mountStatus(mfs *fuse.MountedFileSystem) map[string]any {
	return map[string]any{"transport": "dev"}
}

// sourceOf names where a connection's ops come from.
func sourceOf(c *fuse.Connection) string { return "dev" }
