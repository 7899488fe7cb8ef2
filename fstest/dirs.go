package fstest

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

func directoryChecks() []check {
	return []check{
		{"MkdirRmdir", checkMkdirRmdir},
		{"ListExact", checkListExact},
		{"ListWhileChanging", checkListWhileChanging},
		{"Large", checkLargeDirectory},
		{"SeekAndRewind", checkDirSeekRewind},
		{"LinkCount", checkDirLinkCount},
		{"Removed", checkRemovedDirectory},
	}
}

// checkMkdirRmdir: mkdir and rmdir, and their Linux errors.
func checkMkdirRmdir(t *testing.T, e *env) {
	d := e.path("d")
	must(t, unix.Mkdir(d, 0o755), "mkdir")
	if st := lstat(t, d); fileType(st.Mode) != unix.S_IFDIR {
		t.Errorf("mkdir made mode %o", st.Mode)
	}
	checkNames(t, listDir(t, d), nil, "new directory")
	wantErrno(t, unix.Mkdir(d, 0o755), unix.EEXIST, "mkdir of an existing directory")
	writeFile(t, e.path("f"), nil)
	wantErrno(t, unix.Mkdir(e.path("f"), 0o755), unix.EEXIST, "mkdir over a file")
	wantErrno(t, unix.Mkdir(e.path("missing", "x"), 0o755), unix.ENOENT, "mkdir in a missing directory")
	wantErrno(t, unix.Mkdir(e.path("f", "x"), 0o755), unix.ENOTDIR, "mkdir below a file")
	must(t, unix.Mkdir(e.path("slash")+"/", 0o755), "mkdir with a trailing slash")
	writeFile(t, e.path("d", "x"), nil)
	wantErrno(t, unix.Rmdir(d), unix.ENOTEMPTY, "rmdir of a non-empty directory")
	wantErrno(t, unix.Rmdir(e.path("f")), unix.ENOTDIR, "rmdir of a file")
	wantErrno(t, unix.Rmdir(e.path("missing")), unix.ENOENT, "rmdir of a missing name")
	wantErrno(t, unix.Unlink(d), unix.EISDIR, "unlink of a directory")
	_, err := openFile(d, unix.O_WRONLY, 0)
	wantErrno(t, err, unix.EISDIR, "open a directory for writing")
	_, err = openFile(e.path("f"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	wantErrno(t, err, unix.ENOTDIR, "open(O_DIRECTORY) of a file")
	must(t, os.Remove(e.path("d", "x")), "unlink")
	must(t, unix.Rmdir(d), "rmdir of an emptied directory")
	must(t, unix.Rmdir(e.path("slash")+"/"), "rmdir with a trailing slash")
	if exists(t, d) {
		t.Errorf("directory still exists after rmdir")
	}
	checkNames(t, listDir(t, e.dir), []string{"f"}, "after rmdir")
}

// direntType maps S_IFMT bits to DT_* values.
func direntType(mode uint32) uint8 {
	switch fileType(mode) {
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFLNK:
		return unix.DT_LNK
	case unix.S_IFIFO:
		return unix.DT_FIFO
	case unix.S_IFSOCK:
		return unix.DT_SOCK
	case unix.S_IFCHR:
		return unix.DT_CHR
	case unix.S_IFBLK:
		return unix.DT_BLK
	}
	return unix.DT_UNKNOWN
}

// checkListExact: the listing holds exactly the created entries once each, "." and ".."
// exactly once, d_ino equal to st_ino, and d_type either DT_UNKNOWN or the entry's type.
func checkListExact(t *testing.T, e *env) {
	d := e.path("d")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	want := []string{"file", "dir", "link", "dangling", "fifo", "empty", "big"}
	writeFile(t, d+"/file", []byte("x"))
	must(t, os.Mkdir(d+"/dir", 0o755), "mkdir")
	must(t, os.Symlink("file", d+"/link"), "symlink")
	must(t, os.Symlink("nowhere", d+"/dangling"), "symlink")
	must(t, unix.Mkfifo(d+"/fifo", 0o644), "mkfifo")
	writeFile(t, d+"/empty", nil)
	writeFile(t, d+"/big", randBytes(1, mib))
	for _, bufSize := range []int{4096, 64 * kib, 100} {
		f := mustOpen(t, d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		ents, err := readDirents(f, bufSize)
		f.Close()
		must(t, err, "getdents with a %d-byte buffer", bufSize)
		dots := 0
		var names []string
		for _, ent := range ents {
			switch ent.name {
			case ".", "..":
				dots++
				continue
			}
			names = append(names, ent.name)
			st := lstat(t, d+"/"+ent.name)
			if ent.ino != st.Ino {
				t.Errorf("%s: d_ino %d, st_ino %d", ent.name, ent.ino, st.Ino)
			}
			if ent.typ != unix.DT_UNKNOWN && ent.typ != direntType(st.Mode) {
				t.Errorf("%s: d_type %d, want %d for mode %o", ent.name, ent.typ, direntType(st.Mode), st.Mode)
			}
		}
		if dots != 2 {
			t.Errorf("buffer %d: %d entries named . or .., want 2", bufSize, dots)
		}
		checkNames(t, names, want, fmt.Sprintf("getdents with a %d-byte buffer", bufSize))
	}
	// os.ReadDir agrees.
	osEnts, err := os.ReadDir(d)
	must(t, err, "os.ReadDir")
	var osNames []string
	for _, ent := range osEnts {
		osNames = append(osNames, ent.Name())
	}
	checkNames(t, osNames, want, "os.ReadDir")
}

// checkListWhileChanging lists a directory repeatedly while another goroutine creates and
// removes other entries (each name used once): every entry that exists the whole time must
// be listed exactly once, no name twice, and nothing but the known names.
func checkListWhileChanging(t *testing.T, e *env) {
	const stable = 300
	d := e.path("d")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	var want []string
	for i := range stable {
		n := fmt.Sprintf("stable-%04d", i)
		writeFile(t, d+"/"+n, nil)
		want = append(want, n)
	}
	var stop atomic.Bool
	var churnErr error
	var churned atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var live []string
		for i := 0; !stop.Load(); i++ {
			n := fmt.Sprintf("churn-%06d", i)
			if err := os.WriteFile(d+"/"+n, nil, 0o644); err != nil {
				churnErr = err
				return
			}
			live = append(live, n)
			if len(live) > 50 {
				if err := os.Remove(d + "/" + live[0]); err != nil {
					churnErr = err
					return
				}
				live = live[1:]
			}
			churned.Add(1)
		}
	}()
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	f := mustOpen(t, d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	for pass := 0; pass < 30 || churned.Load() < 200; pass++ {
		if pass > 10000 {
			t.Fatalf("the creating goroutine made no progress")
		}
		_, err := unix.Seek(fd(f), 0, io.SeekStart)
		must(t, err, "rewind")
		ents, err := readDirents(f, 1024) // small buffer: many getdents calls per pass
		must(t, err, "pass %d", pass)
		count := make(map[string]int)
		for _, ent := range ents {
			count[ent.name]++
		}
		for n, c := range count {
			if c > 1 {
				t.Fatalf("pass %d: %q listed %d times", pass, n, c)
			}
			if n != "." && n != ".." && !strings.HasPrefix(n, "stable-") && !strings.HasPrefix(n, "churn-") {
				t.Fatalf("pass %d: unknown name %q", pass, n)
			}
		}
		for _, n := range want {
			if count[n] != 1 {
				t.Fatalf("pass %d: stable entry %q listed %d times", pass, n, count[n])
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if churnErr != nil {
		t.Fatalf("creating and removing entries: %v", churnErr)
	}
}

// checkLargeDirectory: 5000 entries are all listed, through getdents and os.ReadDir, and can
// all be looked up and removed.
func checkLargeDirectory(t *testing.T, e *env) {
	const n = 5000
	d := e.path("d")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	df := mustOpen(t, d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	var want []string
	for i := range n {
		name := fmt.Sprintf("entry-%05d-%s", i, strings.Repeat("x", i%40))
		nfd, err := retry(func() (int, error) {
			return unix.Openat(fd(df), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		})
		must(t, err, "create %s", name)
		unix.Close(nfd)
		want = append(want, name)
	}
	checkNames(t, listDir(t, d), want, "getdents")
	osNames, err := df.Readdirnames(-1)
	must(t, err, "Readdirnames")
	checkNames(t, osNames, want, "Readdirnames")
	if st := lstat(t, d); st.Nlink != 2 {
		t.Errorf("directory of files has link count %d, want 2", st.Nlink)
	}
	for _, name := range want {
		var st unix.Stat_t
		must(t, unix.Fstatat(fd(df), name, &st, unix.AT_SYMLINK_NOFOLLOW), "fstatat %s", name)
	}
	for _, name := range want {
		must(t, retry0(func() error { return unix.Unlinkat(fd(df), name, 0) }), "unlink %s", name)
	}
	checkNames(t, listDir(t, d), nil, "after removing all entries")
}

// checkDirSeekRewind: lseek to an entry's d_off continues the listing after that entry
// (seekdir/telldir), and rewinding a directory descriptor shows entries created and hides
// entries removed since the last read (rewinddir).
func checkDirSeekRewind(t *testing.T, e *env) {
	d := e.path("d")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	var want []string
	for i := range 200 {
		n := fmt.Sprintf("e%03d", i)
		writeFile(t, d+"/"+n, nil)
		want = append(want, n)
	}
	f := mustOpen(t, d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	all, err := readDirents(f, 4096)
	must(t, err, "getdents")
	checkNames(t, sortedNames(all), want, "first listing")
	for _, k := range []int{0, 1, len(all) / 3, len(all) / 2, len(all) - 2} {
		_, err := unix.Seek(fd(f), all[k].off, io.SeekStart)
		must(t, err, "seek to d_off of entry %d", k)
		rest, err := readDirents(f, 4096)
		must(t, err, "getdents after seek")
		if len(rest) != len(all)-k-1 {
			t.Errorf("after seeking past entry %d: %d entries, want %d", k, len(rest), len(all)-k-1)
			continue
		}
		for i, ent := range rest {
			if ent.name != all[k+1+i].name {
				t.Errorf("after seeking past entry %d: entry %d is %q, want %q", k, i, ent.name, all[k+1+i].name)
				break
			}
		}
	}
	// Change the directory, rewind, and read again.
	writeFile(t, d+"/added", nil)
	must(t, os.Remove(d+"/e100"), "unlink")
	_, err = unix.Seek(fd(f), 0, io.SeekStart)
	must(t, err, "rewind")
	again, err := readDirents(f, 4096)
	must(t, err, "getdents after rewind")
	want = append(want, "added")
	want = append(want[:100], want[101:]...)
	checkNames(t, sortedNames(again), want, "listing after changes and rewind")
}

// checkDirLinkCount: a directory's link count is 2 plus its subdirectories; files do not
// count.
func checkDirLinkCount(t *testing.T, e *env) {
	d := e.path("d")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	nlink := func() uint64 { return uint64(lstat(t, d).Nlink) }
	if n := nlink(); n != 2 {
		t.Errorf("new directory: link count %d, want 2", n)
	}
	for i := range 3 {
		must(t, os.Mkdir(fmt.Sprintf("%s/sub%d", d, i), 0o755), "mkdir")
		if n := nlink(); n != uint64(3+i) {
			t.Errorf("with %d subdirectories: link count %d, want %d", i+1, n, 3+i)
		}
	}
	writeFile(t, d+"/file", nil)
	must(t, os.Symlink("sub0", d+"/link"), "symlink")
	if n := nlink(); n != 5 {
		t.Errorf("after adding a file and a symlink: link count %d, want 5", n)
	}
	must(t, unix.Rmdir(d+"/sub1"), "rmdir")
	if n := nlink(); n != 4 {
		t.Errorf("after rmdir of a subdirectory: link count %d, want 4", n)
	}
	if n := lstat(t, d+"/sub0").Nlink; n != 2 {
		t.Errorf("empty subdirectory: link count %d, want 2", n)
	}
}

// checkRemovedDirectory: a removed directory that is still open cannot be listed and refuses
// new entries (ENOENT, as the VFS marks it dead); its link count is 0.
func checkRemovedDirectory(t *testing.T, e *env) {
	d := e.path("d")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	f := mustOpen(t, d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, unix.Rmdir(d), "rmdir")
	if st := fstat(t, f); st.Nlink != 0 {
		t.Errorf("removed directory: link count %d, want 0", st.Nlink)
	}
	_, err := readDirents(f, 4096)
	wantErrno(t, err, unix.ENOENT, "getdents of a removed directory")
	_, err = retry(func() (int, error) {
		return unix.Openat(fd(f), "new", unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	})
	wantErrno(t, err, unix.ENOENT, "create in a removed directory")
	wantErrno(t, unix.Mkdirat(fd(f), "sub", 0o755), unix.ENOENT, "mkdir in a removed directory")
	checkNames(t, listDir(t, e.dir), nil, "parent after rmdir")
}
