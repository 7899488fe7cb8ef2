package fstest

import (
	"os"
	"path/filepath"
	"testing"
)

// Options describes known, documented differences of the filesystem under test. The zero
// value asks for strict POSIX behaviour as Linux ext4 and tmpfs show it. Every field relaxes or
// resizes specific checks; the comment on each field says which and why it may be needed.
type Options struct {
	// NoDeviceNodes skips creating character and block device nodes. Use it when the caller
	// is not root or the filesystem refuses device nodes by design. (Device checks also skip
	// by themselves when the process is not root.)
	NoDeviceNodes bool

	// MaxNameLen is the longest file name, in bytes, the filesystem accepts. Names of exactly
	// this length must work for every kind of entry and a name one byte longer must fail with
	// ENAMETOOLONG; statfs must report it as f_namelen. 0 means 255 (NAME_MAX of ext4/tmpfs).
	MaxNameLen int

	// MaxXattrNameLen is the longest extended attribute name, in bytes and including the
	// "user." prefix, that the filesystem accepts; one byte longer must fail with ERANGE, the
	// kernel's own error for names over XATTR_NAME_MAX. 0 means 255 (XATTR_NAME_MAX). A
	// filesystem that stores names encrypted has a lower limit and passes it here.
	MaxXattrNameLen int

	// MaxXattrValueLen is the size of the value the large-value xattr check stores. 0 means
	// 4000 bytes. ext4 keeps all xattrs of an inode in one block (4 KiB), so a filesystem that
	// stores sealed (longer) values in a lower ext4 directory has less room and passes its
	// own figure here.
	MaxXattrValueLen int

	// MaxXattrs is how many xattrs the many-xattrs check puts on one file. 0 means 100. The
	// same per-inode space limit as for MaxXattrValueLen applies to stacked filesystems.
	MaxXattrs int

	// MaxSymlinkLen is the longest symlink target, in bytes; one byte longer must fail with
	// ENAMETOOLONG. 0 means 4095 (PATH_MAX-1, the limit of ext4 and tmpfs).
	MaxSymlinkLen int

	// SparseBlocksUnreliable says that st_blocks of a sparse file does not reflect the
	// allocation (jacobsa/fuse computes st_blocks from the size). With it, the sparse checks
	// still verify sizes and zero-filled holes but not that holes occupy no blocks.
	SparseBlocksUnreliable bool

	// NegativeTimesUnreliable skips timestamps before 1970 in the utimensat checks.
	// jacobsa/fuse converts times for the kernel with truncating division of UnixNano
	// (conversions.go, convertTime), so a pre-1970 time with a sub-second part comes back
	// wrong through any filesystem built on it; ext4 and tmpfs store such times exactly.
	NegativeTimesUnreliable bool

	// NoOtherUsers says that only the mounting user may use the filesystem at all (a FUSE
	// mount without allow_other). It skips the checks that act as another user through a
	// child process; without it such a mount fails the positive control of those checks.
	NoOtherUsers bool
}

// Defaults of the size options, the values of Linux ext4 and tmpfs.
const (
	defaultMaxNameLen       = 255
	defaultMaxXattrNameLen  = 255
	defaultMaxXattrValueLen = 4000
	defaultMaxXattrs        = 100
	defaultMaxSymlinkLen    = 4095
)

func (o Options) withDefaults() Options {
	if o.MaxNameLen == 0 {
		o.MaxNameLen = defaultMaxNameLen
	}
	if o.MaxXattrNameLen == 0 {
		o.MaxXattrNameLen = defaultMaxXattrNameLen
	}
	if o.MaxXattrValueLen == 0 {
		o.MaxXattrValueLen = defaultMaxXattrValueLen
	}
	if o.MaxXattrs == 0 {
		o.MaxXattrs = defaultMaxXattrs
	}
	if o.MaxSymlinkLen == 0 {
		o.MaxSymlinkLen = defaultMaxSymlinkLen
	}
	return o
}

// env is what a check gets: its own empty directory and the options.
type env struct {
	dir   string  // absolute, private to the running check, mode 0755, removed afterwards
	clock string  // shared scratch directory for clock probes (see waitClockPast)
	opts  Options // with defaults filled in
}

// path joins elem onto the check's directory.
func (e *env) path(elem ...string) string {
	return filepath.Join(append([]string{e.dir}, elem...)...)
}

type check struct {
	name string
	fn   func(t *testing.T, e *env)
}

type group struct {
	name   string
	checks []check
}

// suite lists every group of checks in the order Run runs them.
func suite() []group {
	return []group{
		{"IO", ioChecks()},
		{"Sparse", sparseChecks()},
		{"Truncate", truncateChecks()},
		{"Rename", renameChecks()},
		{"HardLinks", hardLinkChecks()},
		{"Symlinks", symlinkChecks()},
		{"Special", specialChecks()},
		{"Permissions", permissionChecks()},
		{"Ownership", ownershipChecks()},
		{"Timestamps", timestampChecks()},
		{"Xattrs", xattrChecks()},
		{"Names", nameChecks()},
		{"Trees", treeChecks()},
		{"Directories", directoryChecks()},
		{"UnlinkedOpen", unlinkedOpenChecks()},
		{"Misc", miscChecks()},
	}
}

// Run runs every check as a subtest of t inside dir, which may be any directory on the
// filesystem under test (a plain directory or a mount point). Run creates its own
// subdirectory of dir, gives every check a fresh directory inside it and removes everything
// it created; a failure to remove is reported as an error because it is a filesystem bug
// too. Checks run one after the other; Run must not run in parallel with tests that change
// the process umask.
func Run(t *testing.T, dir string, opts Options) {
	t.Helper()
	opts = opts.withDefaults()
	root, err := os.MkdirTemp(dir, "fstest-")
	if err != nil {
		t.Fatalf("create suite directory in %s: %v", dir, err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		t.Fatalf("absolute path of %s: %v", root, err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("remove suite directory: %v", err)
		}
	})
	// 0755 so that a child process acting as another user can search it.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatalf("chmod %s: %v", root, err)
	}
	clock := filepath.Join(root, "clock")
	if err := os.Mkdir(clock, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", clock, err)
	}
	for _, g := range suite() {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.checks {
				t.Run(c.name, func(t *testing.T) {
					d := filepath.Join(root, g.name+"."+c.name)
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatalf("mkdir %s: %v", d, err)
					}
					if err := os.Chmod(d, 0o755); err != nil {
						t.Fatalf("chmod %s: %v", d, err)
					}
					t.Cleanup(func() {
						if err := os.RemoveAll(d); err != nil {
							t.Errorf("clean up check directory: %v", err)
						}
					})
					c.fn(t, &env{dir: d, clock: clock, opts: opts})
				})
			}
		})
	}
}
