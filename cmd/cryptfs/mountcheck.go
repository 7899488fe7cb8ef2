package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// checkFUSE reports a missing /dev/fuse or fusermount3 with what to install.
func checkFUSE() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return withCode(exitNoFUSE, "/dev/fuse is missing: load the fuse module ('modprobe fuse') and install FUSE ('apt-get install fuse3')")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			return withCode(exitNoFUSE, "fusermount3 not found: install it with 'apt-get install fuse3'")
		}
	}
	return nil
}

// uringParam is the fuse module's switch for FUSE over io_uring (Linux
// 6.14+ built with CONFIG_FUSE_IO_URING; absent otherwise).
const uringParam = "/sys/module/fuse/parameters/enable_uring"

// checkURing reports, before the password is asked for, that the kernel
// will not offer FUSE over io_uring to a new mount: --transport=uring
// would fail. The daemon's mount checks again (jacobsa/fuse refuses to
// mount without it).
func checkURing() error {
	b, err := os.ReadFile(uringParam)
	switch {
	case err != nil:
		return withCode(exitNoFUSE, "--transport=uring: this kernel has no FUSE over io_uring (it needs Linux 6.14+ with CONFIG_FUSE_IO_URING; %s is missing); use --transport=auto or dev", uringParam)
	case strings.TrimSpace(string(b)) != "Y":
		return withCode(exitNoFUSE, "--transport=uring: the kernel does not offer FUSE over io_uring (%s is %s; as root: echo Y > %s); use --transport=auto or dev", uringParam, strings.TrimSpace(string(b)), uringParam)
	}
	return nil
}

// checkNoSymlinks refuses paths with a symlink in them (as root).
func checkNoSymlinks(paths ...string) error {
	for _, p := range paths {
		fd, err := mountinfo.OpenNoSymlinks(p, unix.O_PATH)
		if errors.Is(err, mountinfo.ErrSymlink) {
			return &codedError{code: exitUsage, err: err}
		}
		if err == nil {
			unix.Close(fd)
		}
	}
	return nil
}

// checkMountpoint refuses a mountpoint that is already mounted, missing,
// not a directory, inside the cipher directory (or around it), or not
// empty.
func checkMountpoint(mnt, cipherDir string) error {
	if _, err := control.Device(mnt); err == nil || isMountpoint(mnt) {
		return withCode(exitAlreadyMounted, "%s is already a mountpoint (unmount it first: cryptfs unmount %s)", mnt, mnt)
	}
	st, err := os.Stat(mnt)
	if errors.Is(err, syscall.ENOTCONN) {
		return withCode(exitAlreadyMounted, "%s is a dead mount (its daemon died): run 'cryptfs unmount %s'", mnt, mnt)
	}
	if err != nil || !st.IsDir() {
		return withCode(exitNoMountpoint, "mountpoint %s does not exist or is not a directory (create it with 'mkdir -p %s')", mnt, mnt)
	}
	// Compare real paths: a symlink must not hide that one is inside the
	// other.
	realMnt, realCipher := realPath(mnt), realPath(cipherDir)
	if inside(realMnt, realCipher) {
		return withCode(exitUsage, "the mountpoint %s must not be inside the cipher directory %s (a file system inside its own storage); mount it somewhere else", mnt, cipherDir)
	}
	if inside(realCipher, realMnt) {
		return withCode(exitUsage, "the cipher directory %s must not be inside the mountpoint %s", cipherDir, mnt)
	}
	d, err := os.Open(mnt)
	if err != nil {
		return err
	}
	names, _ := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return withCode(exitNotEmpty, "mountpoint %s is not empty", mnt)
	}
	return nil
}

// realPath resolves symlinks, or returns the path as it is.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// inside reports whether path is dir or below it.
func inside(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, "../")))
}

// isMountpoint reports whether anything is mounted at path.
func isMountpoint(path string) bool {
	_, err := mountinfo.At(path)
	return err == nil
}

// defaultLogFile is where a background daemon logs unless told otherwise:
// in the user's runtime directory (created and checked here).
func defaultLogFile(mnt string) (string, error) {
	dir, err := control.RuntimeDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(mnt))
	return filepath.Join(dir, "mount-"+hex.EncodeToString(sum[:6])+".log"), nil
}
