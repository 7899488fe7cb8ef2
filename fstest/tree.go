package fstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func treeChecks() []check {
	return []check{
		{"Deep", checkTreeDeep},
		{"NearPathMax", checkTreeNearPathMax},
		{"BeyondPathMax", checkTreeBeyondPathMax},
	}
}

// checkTreeDeep builds 64 nested directories by path, with a file at every level, reads the
// deepest file by absolute path, moves the whole tree, and removes it bottom-up.
func checkTreeDeep(t *testing.T, e *env) {
	const depth = 64
	p := e.path("top")
	var levels []string
	for i := range depth {
		if i > 0 {
			p = filepath.Join(p, fmt.Sprintf("level%02d", i))
		}
		must(t, os.Mkdir(p, 0o755), "mkdir at depth %d", i)
		writeFile(t, filepath.Join(p, "file"), []byte(fmt.Sprint(i)))
		levels = append(levels, p)
	}
	if got := readFile(t, filepath.Join(p, "file")); string(got) != fmt.Sprint(depth-1) {
		t.Errorf("deepest file reads %q", got)
	}
	must(t, rename(e.path("top"), e.path("moved")), "rename the top directory")
	for i, l := range levels {
		l = e.path("moved") + strings.TrimPrefix(l, e.path("top"))
		levels[i] = l
		want := []string{"file"}
		if i < depth-1 {
			want = append(want, fmt.Sprintf("level%02d", i+1))
			if n := lstat(t, l).Nlink; n != 3 {
				t.Errorf("depth %d: link count %d, want 3", i, n)
			}
		}
		checkNames(t, listDir(t, l), want, fmt.Sprintf("depth %d", i))
		if got := readFile(t, filepath.Join(l, "file")); string(got) != fmt.Sprint(i) {
			t.Errorf("depth %d: file reads %q", i, got)
		}
	}
	for i := depth - 1; i >= 0; i-- {
		must(t, os.Remove(filepath.Join(levels[i], "file")), "unlink at depth %d", i)
		must(t, unix.Rmdir(levels[i]), "rmdir at depth %d", i)
	}
	checkNames(t, listDir(t, e.dir), nil, "after removing the tree")
}

// mkdirChain creates directories below the directory open as parent, each named by next
// until it returns "", with mkdirat relative to the previous one (no long paths reach the
// kernel), and returns the deepest directory open and the relative path built.
func mkdirChain(t *testing.T, parent *os.File, next func(rel string) string) (*os.File, string) {
	t.Helper()
	cur := parent
	rel := ""
	for {
		name := next(rel)
		if name == "" {
			return cur, rel
		}
		must(t, retry0(func() error { return unix.Mkdirat(fd(cur), name, 0o755) }), "mkdirat %q at depth %d", name, strings.Count(rel, "/"))
		nfd, err := retry(func() (int, error) {
			return unix.Openat(fd(cur), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		})
		must(t, err, "openat %q", name)
		if cur != parent {
			cur.Close()
		}
		cur = os.NewFile(uintptr(nfd), name)
		opened := cur
		t.Cleanup(func() { opened.Close() })
		if rel != "" {
			rel += "/"
		}
		rel += name
	}
}

// component returns a directory name for building long paths: at most 100 bytes and at most
// MaxNameLen, made of a letter that changes per level.
func (e *env) component(level, n int) string {
	return strings.Repeat(string(rune('a'+level%26)), min(n, 100, e.opts.MaxNameLen))
}

// checkTreeNearPathMax builds a directory whose absolute path plus "/f" is exactly 4095
// bytes (PATH_MAX with the NUL); the file is created through the directory descriptor and
// must then be reachable by its full absolute path, while a path one byte longer fails with
// ENAMETOOLONG.
func checkTreeNearPathMax(t *testing.T, e *env) {
	const limit = unix.PathMax - 1 // longest path string the kernel accepts
	base := mustOpen(t, e.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	// Target length of the relative directory path, so that e.dir + "/" + rel + "/f" == limit.
	want := limit - len(e.dir) - 1 - len("/f")
	if want < 1 {
		t.Skipf("the check directory's path (%d bytes) is already too long", len(e.dir))
	}
	level := 0
	deep, rel := mkdirChain(t, base, func(rel string) string {
		have := len(rel)
		if have == want {
			return ""
		}
		sep := 0
		if have > 0 {
			sep = 1
		}
		left := want - have - sep
		n := min(left, 100, e.opts.MaxNameLen)
		if left-n == 1 {
			n-- // one byte left would not fit a "/x" component
		}
		level++
		return e.component(level, n)
	})
	if len(rel) != want {
		t.Fatalf("built a relative path of %d bytes, want %d", len(rel), want)
	}
	f, err := retry(func() (int, error) {
		return unix.Openat(fd(deep), "f", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	})
	must(t, err, "create file in the deep directory")
	_, err = unix.Write(f, []byte("deep"))
	must(t, err, "write")
	unix.Close(f)

	full := e.dir + "/" + rel + "/f"
	if len(full) != limit {
		t.Fatalf("full path is %d bytes, want %d", len(full), limit)
	}
	if got := readFile(t, full); string(got) != "deep" {
		t.Errorf("read by a %d-byte absolute path: %q", len(full), got)
	}
	st := lstat(t, full)
	if st.Size != 4 {
		t.Errorf("lstat by full path: size %d", st.Size)
	}
	// A relative path from the check directory's descriptor works too.
	var st2 unix.Stat_t
	must(t, unix.Fstatat(fd(base), rel+"/f", &st2, unix.AT_SYMLINK_NOFOLLOW), "fstatat by relative path")
	if st2.Ino != st.Ino {
		t.Errorf("fstatat by relative path: inode %d, want %d", st2.Ino, st.Ino)
	}
	var st3 unix.Stat_t
	wantErrno(t, unix.Lstat(full+"x", &st3), unix.ENAMETOOLONG, "lstat of a %d-byte path", len(full)+1)
	_, err = openFile(e.dir+"/"+rel+"/gg", unix.O_WRONLY|unix.O_CREAT, 0o644)
	wantErrno(t, err, unix.ENAMETOOLONG, "create by a %d-byte path", limit+1)
}

// checkTreeBeyondPathMax: the filesystem has no limit on depth; directories and files whose
// absolute path exceeds PATH_MAX work through descriptors (openat, mkdirat, fstatat,
// unlinkat, renameat).
func checkTreeBeyondPathMax(t *testing.T, e *env) {
	base := mustOpen(t, e.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	total := len(e.dir)
	level := 0
	deep, rel := mkdirChain(t, base, func(string) string {
		if total > unix.PathMax+1000 {
			return ""
		}
		level++
		c := e.component(level, 100)
		total += 1 + len(c)
		return c
	})
	data := randBytes(5, 10000)
	wfd, err := retry(func() (int, error) {
		return unix.Openat(fd(deep), "file", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	})
	must(t, err, "create beyond PATH_MAX")
	wf := os.NewFile(uintptr(wfd), "file")
	defer wf.Close()
	pwrite(t, wf, data, 0)
	checkBytes(t, readAt(t, wf, len(data), 0), data, "file beyond PATH_MAX")
	must(t, unix.Renameat(fd(deep), "file", fd(deep), "renamed"), "renameat beyond PATH_MAX")
	must(t, unix.Mkdirat(fd(deep), "sub", 0o755), "mkdirat beyond PATH_MAX")
	must(t, unix.Symlinkat("renamed", fd(deep), "link"), "symlinkat beyond PATH_MAX")
	rfd, err := unix.Openat(fd(deep), "link", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	must(t, err, "open through a symlink beyond PATH_MAX")
	rf := os.NewFile(uintptr(rfd), "link")
	defer rf.Close()
	checkBytes(t, readAt(t, rf, len(data), 0), data, "through the symlink")
	ents, err := readDirents(deep, 4096)
	must(t, err, "list beyond PATH_MAX")
	checkNames(t, sortedNames(ents), []string{"link", "renamed", "sub"}, "deep listing")
	// The absolute path is too long for the kernel.
	var st unix.Stat_t
	wantErrno(t, unix.Lstat(e.dir+"/"+rel+"/renamed", &st), unix.ENAMETOOLONG, "lstat by an absolute path of %d bytes", total)
	must(t, unix.Unlinkat(fd(deep), "link", 0), "unlinkat")
	must(t, unix.Unlinkat(fd(deep), "sub", unix.AT_REMOVEDIR), "rmdir")
	// The rest is removed with the check directory (os.RemoveAll works with descriptors).
}
