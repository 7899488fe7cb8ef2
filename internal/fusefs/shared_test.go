package fusefs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/meta"
)

// TestStatAtShared: in shared mode statAt (statx) fills the same fields
// as fstatat for every kind of lower entry, by name and by descriptor,
// and reports a birth time where the lower file system records one; a
// file re-created under the same number is told apart by it (reborn).
func TestStatAtShared(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	f.shared = true
	dir := t.TempDir()
	mustNil := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustNil(os.WriteFile(filepath.Join(dir, "file"), []byte("12345"), 0o640))
	mustNil(os.Mkdir(filepath.Join(dir, "dir"), 0o750))
	mustNil(os.Symlink("target", filepath.Join(dir, "link")))
	mustNil(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	mustNil(err)
	defer unix.Close(dfd)
	for _, name := range []string{"file", "dir", "link", "fifo"} {
		var want, got, byFd unix.Stat_t
		mustNil(unix.Fstatat(dfd, name, &want, unix.AT_SYMLINK_NOFOLLOW))
		birth, err := f.statAt(dfd, name, &got)
		mustNil(err)
		if got.Dev != want.Dev || got.Ino != want.Ino || got.Mode != want.Mode || got.Nlink != want.Nlink ||
			got.Uid != want.Uid || got.Gid != want.Gid || got.Rdev != want.Rdev || got.Size != want.Size ||
			got.Blocks != want.Blocks || got.Atim != want.Atim || got.Mtim != want.Mtim || got.Ctim != want.Ctim {
			t.Errorf("%s: statAt %+v, fstatat %+v", name, got, want)
		}
		fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW, 0)
		mustNil(err)
		birth2, err := f.statAt(fd, "", &byFd)
		unix.Close(fd)
		mustNil(err)
		if byFd.Ino != want.Ino || byFd.Mode != want.Mode || birth2 != birth {
			t.Errorf("%s by descriptor: ino %d mode %o birth %d; by name %d %o %d", name, byFd.Ino, byFd.Mode, birth2, want.Ino, want.Mode, birth)
		}
		if birth == 0 {
			t.Logf("%s: the lower file system (%s) records no birth time", name, dir)
		}
	}

	// Outside shared mode: a plain stat, no birth time.
	f.shared = false
	var st unix.Stat_t
	if birth, err := f.statAt(dfd, "file", &st); err != nil || birth != 0 {
		t.Errorf("statAt outside shared mode: birth %d, %v; want 0", birth, err)
	}
	if birth, err := f.statAt(dfd, "", &st); err != nil || birth != 0 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("statAt of the descriptor itself outside shared mode: %v, mode %o", err, st.Mode)
	}

	for _, tc := range []struct {
		nb, birth int64
		want      bool
	}{{0, 0, false}, {0, 5, false}, {5, 0, false}, {5, 5, false}, {5, 6, true}} {
		if got := reborn(tc.nb, tc.birth); got != tc.want {
			t.Errorf("reborn(%d, %d) = %v, want %v", tc.nb, tc.birth, got, tc.want)
		}
	}
}

// TestNewSharedRefusesEBPF: a shared-storage file system cannot be made
// in the ebpf tier, whose maps answer without asking the daemon.
func TestNewSharedRefusesEBPF(t *testing.T) {
	lower := t.TempDir()
	if _, err := New(Config{Lower: lower, Suite: testSuite(t), Tier: meta.EBPF, Shared: true}, nil); err == nil {
		t.Fatal("New in the ebpf tier with Shared: no error")
	}
}
