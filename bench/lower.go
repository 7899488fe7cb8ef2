package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The lower file system every system works on. By default it is a fresh
// ext4 (Debian's mkfs defaults, with a journal) on a loop device with
// direct I/O, backed by a sparse file in the scratch directory:
//
//   - it isolates the benchmark from whatever else runs on the machine's
//     root file system (on this kind of machine, other builds and tests);
//   - the root file system here is ext4 without a journal, and ext4 without
//     a journal skips every inode deleted in the last 60 s (300 s while
//     its inode table block is dirty) when it allocates one: creating 10,000
//     files took from 0.4 s to 5 s depending on what had been deleted
//     nearby shortly before, by anyone;
//   - direct I/O keeps a single page cache (the upper one), so dropping the
//     caches really makes the next read come from the disk;
//   - removing it at the end is one unlink, not a walk of 500,000 inodes.
//
// -lower=dir uses the -work directory's file system as it is instead.

// lowerFS is a mounted loop-device ext4, or just a directory.
type lowerFS struct {
	dir     string // where the systems' directories go
	img     string // backing file ("" for -lower=dir)
	loop    string // /dev/loopN
	mounted bool
}

// setupLower creates the lower file system in work.
func setupLower(ctx context.Context, work, kind string, size int64) (*lowerFS, error) {
	l := &lowerFS{dir: filepath.Join(work, "lower")}
	if err := os.Mkdir(l.dir, 0o755); err != nil {
		return nil, err
	}
	if kind == "dir" {
		return l, nil
	}
	if kind != "loop" {
		return nil, fmt.Errorf("-lower=%s: want loop or dir", kind)
	}
	l.img = filepath.Join(work, "lower.img")
	f, err := os.Create(l.img)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", l.img, err)
	}
	if _, err := runCmd(ctx, "", "mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-L", "cryptfs-bench", l.img); err != nil {
		return nil, err
	}
	out, err := runCmd(ctx, "", "losetup", "--direct-io=on", "--find", "--show", l.img)
	if err != nil {
		return nil, err
	}
	l.loop = strings.TrimSpace(string(out))
	// noinit_itable: no background thread zeroing inode tables while
	// we measure.
	if err := unix.Mount(l.loop, l.dir, "ext4", 0, "noinit_itable"); err != nil {
		detachLoops(l.img, log.New(os.Stderr, "", 0))
		return nil, fmt.Errorf("mount %s on %s: %w", l.loop, l.dir, err)
	}
	l.mounted = true
	return l, nil
}

// teardown unmounts the lower file system and frees its loop device; the
// file systems mounted on top must be gone already. The backing file goes
// with the scratch directory. It is idempotent.
func (l *lowerFS) teardown(lg *log.Logger) {
	if l == nil || !l.mounted {
		return
	}
	l.mounted = false
	if err := unix.Unmount(l.dir, 0); err != nil && err != unix.EINVAL {
		lg.Printf("unmount %s: %v; detaching it", l.dir, err)
		unix.Unmount(l.dir, unix.MNT_DETACH)
	}
	detachLoops(l.img, lg)
}

// detachLoops frees the loop devices backed by img.
func detachLoops(img string, lg *log.Logger) {
	out, err := runCmd(context.Background(), "", "losetup", "--associated", img, "--noheadings", "--output", "NAME")
	if err != nil {
		return
	}
	for dev := range strings.FieldsSeq(string(out)) {
		if _, err := runCmd(context.Background(), "", "losetup", "--detach", dev); err != nil {
			lg.Printf("losetup --detach %s: %v", dev, err)
		}
	}
}

// lowerSize is the size of the sparse backing file: room for every
// system's copies of the tree and stream file, twice over.
func lowerSize(p params, t treeInfo, systems int) int64 {
	perSystem := p.StreamBytes + 2*(t.TarBytes+int64(t.Entries)*4096) + int64(p.SmallFiles)*4096*int64(max(p.reps("create-10k"), 1)+1)
	size := 2 * int64(systems) * perSystem
	return max(size, 4<<30)
}

// checkSpace fails early when the work root cannot hold need bytes.
func checkSpace(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("%s has %.1f GiB free, the benchmark needs about %.1f GiB", dir, float64(free)/(1<<30), float64(need)/(1<<30))
	}
	return nil
}
