package fstest

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func hardLinkChecks() []check {
	return []check{
		{"CountAndInode", checkHardLinkCount},
		{"SharedContent", checkHardLinkSharedContent},
		{"UnlinkOneName", checkHardLinkUnlinkOne},
		{"AcrossDirectories", checkHardLinkAcrossDirectories},
		{"Errors", checkHardLinkErrors},
	}
}

func link(from, to string) error {
	return retry0(func() error { return unix.Link(from, to) })
}

// checkHardLinkCount: every name of a file has the same inode and the link count.
func checkHardLinkCount(t *testing.T, e *env) {
	writeFile(t, e.path("a"), []byte("x"))
	if n := lstat(t, e.path("a")).Nlink; n != 1 {
		t.Errorf("new file has link count %d", n)
	}
	names := []string{"a", "b", "c", "d"}
	for i, n := range names[1:] {
		must(t, link(e.path("a"), e.path(n)), "link a %s", n)
		for _, m := range names[:i+2] {
			st := lstat(t, e.path(m))
			if uint64(st.Nlink) != uint64(i+2) {
				t.Errorf("after %d links: %s has link count %d", i+1, m, st.Nlink)
			}
		}
	}
	ino := lstat(t, e.path("a")).Ino
	for _, n := range names {
		if got := lstat(t, e.path(n)).Ino; got != ino {
			t.Errorf("%s has inode %d, a has %d", n, got, ino)
		}
	}
	// Through a descriptor as well.
	f := mustOpen(t, e.path("c"), unix.O_RDONLY, 0)
	if st := fstat(t, f); st.Ino != ino || st.Nlink != 4 {
		t.Errorf("fstat: inode %d link count %d, want %d and 4", st.Ino, st.Nlink, ino)
	}
}

// checkHardLinkSharedContent: a write through one name is read through another, and a
// truncation through one name shows in the other.
func checkHardLinkSharedContent(t *testing.T, e *env) {
	writeFile(t, e.path("a"), randBytes(1, 10000))
	must(t, link(e.path("a"), e.path("b")), "link")
	data := randBytes(2, 3*4096+1)
	writeFile(t, e.path("b"), data)
	checkBytes(t, readFile(t, e.path("a")), data, "a after writing b")
	f := mustOpen(t, e.path("a"), unix.O_RDWR, 0)
	pwrite(t, f, []byte("patch"), 4094)
	copy(data[4094:], "patch")
	checkBytes(t, readFile(t, e.path("b")), data, "b after patching a")
	must(t, unix.Truncate(e.path("b"), 100), "truncate b")
	checkBytes(t, pread(t, f, 200, 0), data[:100], "a after truncating b")
	must(t, os.Chmod(e.path("a"), 0o600), "chmod a")
	if m := lstat(t, e.path("b")).Mode & 0o777; m != 0o600 {
		t.Errorf("chmod through one name: other name has mode %o", m)
	}
}

// checkHardLinkUnlinkOne: removing one name keeps the file and its content under the other.
func checkHardLinkUnlinkOne(t *testing.T, e *env) {
	data := randBytes(3, 5000)
	writeFile(t, e.path("a"), data)
	must(t, link(e.path("a"), e.path("b")), "link")
	must(t, os.Remove(e.path("a")), "unlink a")
	checkNames(t, listDir(t, e.dir), []string{"b"}, "after unlinking a")
	if n := lstat(t, e.path("b")).Nlink; n != 1 {
		t.Errorf("link count %d after unlinking one of two names", n)
	}
	checkBytes(t, readFile(t, e.path("b")), data, "remaining name")
	// The name can be reused for an unrelated file.
	writeFile(t, e.path("a"), []byte("unrelated"))
	checkBytes(t, readFile(t, e.path("b")), data, "remaining name after reusing the other")
}

// checkHardLinkAcrossDirectories links a file into another directory and links a symlink
// itself (linkat without AT_SYMLINK_FOLLOW).
func checkHardLinkAcrossDirectories(t *testing.T, e *env) {
	must(t, os.Mkdir(e.path("x"), 0o755), "mkdir")
	must(t, os.Mkdir(e.path("y"), 0o755), "mkdir")
	writeFile(t, e.path("x", "f"), []byte("shared"))
	must(t, link(e.path("x", "f"), e.path("y", "g")), "link across directories")
	if a, b := lstat(t, e.path("x", "f")).Ino, lstat(t, e.path("y", "g")).Ino; a != b {
		t.Errorf("inodes differ: %d and %d", a, b)
	}
	must(t, os.Symlink("f", e.path("x", "sym")), "symlink")
	must(t, unix.Linkat(unix.AT_FDCWD, e.path("x", "sym"), unix.AT_FDCWD, e.path("x", "sym2"), 0), "link a symlink")
	st := lstat(t, e.path("x", "sym2"))
	if fileType(st.Mode) != unix.S_IFLNK || st.Ino != lstat(t, e.path("x", "sym")).Ino || st.Nlink != 2 {
		t.Errorf("hard link of a symlink: mode %o inode %d link count %d", st.Mode, st.Ino, st.Nlink)
	}
	// With AT_SYMLINK_FOLLOW, the link is to the target.
	must(t, unix.Linkat(unix.AT_FDCWD, e.path("x", "sym"), unix.AT_FDCWD, e.path("x", "f2"), unix.AT_SYMLINK_FOLLOW),
		"link following a symlink")
	if a, b := lstat(t, e.path("x", "f2")).Ino, lstat(t, e.path("x", "f")).Ino; a != b {
		t.Errorf("AT_SYMLINK_FOLLOW link has inode %d, target %d", a, b)
	}
}

// checkHardLinkErrors: directories cannot be hard-linked (EPERM), existing names are not
// replaced (EEXIST), a missing source is ENOENT.
func checkHardLinkErrors(t *testing.T, e *env) {
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	writeFile(t, e.path("f"), []byte("f"))
	writeFile(t, e.path("g"), []byte("g"))
	wantErrno(t, link(e.path("d"), e.path("d2")), unix.EPERM, "link a directory")
	wantErrno(t, link(e.path("f"), e.path("g")), unix.EEXIST, "link onto an existing name")
	wantErrno(t, link(e.path("missing"), e.path("h")), unix.ENOENT, "link a missing file")
	checkNames(t, listDir(t, e.dir), []string{"d", "f", "g"}, "after failed links")
	if n := lstat(t, e.path("d")).Nlink; n != 2 {
		t.Errorf("directory link count %d after failed link", n)
	}
}

func symlinkChecks() []check {
	return []check{
		{"Targets", checkSymlinkTargets},
		{"LongTarget", checkSymlinkLongTarget},
		{"Follow", checkSymlinkFollow},
		{"NoFollow", checkSymlinkNoFollow},
		{"Errors", checkSymlinkErrors},
	}
}

func readlink(path string) (string, error) {
	b := make([]byte, unix.PathMax+1)
	n, err := retry(func() (int, error) { return unix.Readlink(path, b) })
	if err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// checkSymlinkTarget creates a symlink to target and checks readlink and lstat's size.
func checkSymlinkTarget(t *testing.T, path, target string) {
	t.Helper()
	must(t, unix.Symlink(target, path), "symlink %q", abbrevString(target))
	got, err := readlink(path)
	must(t, err, "readlink")
	if got != target {
		t.Errorf("readlink: %q, want %q", abbrevString(got), abbrevString(target))
	}
	st := lstat(t, path)
	if fileType(st.Mode) != unix.S_IFLNK {
		t.Errorf("lstat: mode %o, want a symlink", st.Mode)
	}
	if st.Size != int64(len(target)) {
		t.Errorf("lstat size %d, want the target length %d", st.Size, len(target))
	}
}

// abbrevString shortens long strings for messages.
func abbrevString(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s...(%d bytes)", s[:60], len(s))
	}
	return s
}

// checkSymlinkTargets: relative, absolute, dangling, odd and binary targets read back
// exactly.
func checkSymlinkTargets(t *testing.T, e *env) {
	var all []byte
	for b := 1; b < 256; b++ {
		all = append(all, byte(b))
	}
	cases := []struct{ name, target string }{
		{"relative", "target"},
		{"relative-dirs", "../x/./y/../target"},
		{"absolute", e.path("target")},
		{"dangling", "does/not/exist"},
		{"one-byte", "t"},
		{"trailing-slash", "target/"},
		{"dot", "."},
		{"dotdot", ".."},
		{"spaces", " a b "},
		{"utf8", "répertoire/ファイル"},
		{"all-bytes", string(all)},
		{"long", strings.Repeat("a", min(4000, e.opts.MaxSymlinkLen))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkSymlinkTarget(t, e.path("l-"+c.name), c.target)
		})
	}
	writeFile(t, e.path("target"), []byte("t"))
	for _, name := range []string{"relative", "absolute"} {
		if got := readFile(t, e.path("l-"+name)); string(got) != "t" {
			t.Errorf("read through %s symlink: %q", name, got)
		}
	}
}

// checkSymlinkLongTarget: a target of exactly MaxSymlinkLen bytes works, one byte more
// fails with ENAMETOOLONG.
func checkSymlinkLongTarget(t *testing.T, e *env) {
	n := e.opts.MaxSymlinkLen
	// Path-like, with components of at most 200 bytes, to stay meaningful as a path.
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(strings.Repeat(string(rune('a'+b.Len()%26)), min(200, n-b.Len())))
	}
	target := b.String()[:n]
	checkSymlinkTarget(t, e.path("max"), target)
	wantErrno(t, unix.Symlink(target+"x", e.path("over")), unix.ENAMETOOLONG,
		"symlink with a %d-byte target", n+1)
	if exists(t, e.path("over")) {
		t.Errorf("failed symlink left an entry")
	}
}

// checkSymlinkFollow: open, stat, and path traversal follow symlinks, also chains of them.
func checkSymlinkFollow(t *testing.T, e *env) {
	must(t, os.Mkdir(e.path("dir"), 0o755), "mkdir")
	writeFile(t, e.path("dir", "file"), []byte("content"))
	must(t, os.Symlink("dir/file", e.path("lfile")), "symlink")
	must(t, os.Symlink("dir", e.path("ldir")), "symlink")
	must(t, os.Symlink("lfile", e.path("chain")), "symlink")
	must(t, os.Symlink(e.path("ldir"), e.path("abschain")), "symlink")
	for _, p := range []string{"lfile", "chain", "ldir/file", "abschain/file"} {
		if got := readFile(t, e.path(p)); string(got) != "content" {
			t.Errorf("read through %s: %q", p, got)
		}
	}
	var st unix.Stat_t
	must(t, unix.Stat(e.path("chain"), &st), "stat through symlinks")
	if st.Ino != lstat(t, e.path("dir", "file")).Ino || fileType(st.Mode) != unix.S_IFREG {
		t.Errorf("stat through symlinks: inode %d mode %o", st.Ino, st.Mode)
	}
	// Writing through a symlink writes the target.
	writeFile(t, e.path("chain"), []byte("rewritten"))
	if got := readFile(t, e.path("dir", "file")); string(got) != "rewritten" {
		t.Errorf("target after writing through a symlink: %q", got)
	}
	checkNames(t, listDir(t, e.path("ldir")), []string{"file"}, "listing through a symlink")
	// O_CREAT through a dangling symlink creates the target.
	must(t, os.Symlink("dir/created", e.path("dangling")), "symlink")
	f := mustOpen(t, e.path("dangling"), unix.O_WRONLY|unix.O_CREAT, 0o644)
	f.Close()
	if st := lstat(t, e.path("dir", "created")); fileType(st.Mode) != unix.S_IFREG {
		t.Errorf("O_CREAT through a dangling symlink: target mode %o", st.Mode)
	}
}

// checkSymlinkNoFollow: O_NOFOLLOW on a symlink is ELOOP; loops are ELOOP; lstat, unlink,
// and rename act on the link itself.
func checkSymlinkNoFollow(t *testing.T, e *env) {
	writeFile(t, e.path("file"), []byte("x"))
	must(t, os.Symlink("file", e.path("link")), "symlink")
	_, err := openFile(e.path("link"), unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	wantErrno(t, err, unix.ELOOP, "open(O_NOFOLLOW) of a symlink")
	f, err := openFile(e.path("link"), unix.O_PATH|unix.O_NOFOLLOW, 0)
	must(t, err, "open(O_PATH|O_NOFOLLOW) of a symlink")
	if st := fstat(t, f); fileType(st.Mode) != unix.S_IFLNK {
		t.Errorf("O_PATH|O_NOFOLLOW descriptor is mode %o, want a symlink", st.Mode)
	}
	f.Close()
	must(t, os.Symlink("loop2", e.path("loop1")), "symlink")
	must(t, os.Symlink("loop1", e.path("loop2")), "symlink")
	_, err = openFile(e.path("loop1"), unix.O_RDONLY, 0)
	wantErrno(t, err, unix.ELOOP, "open of a symlink loop")
	must(t, os.Symlink("self", e.path("self")), "symlink")
	_, err = openFile(e.path("self"), unix.O_RDONLY, 0)
	wantErrno(t, err, unix.ELOOP, "open of a self-referencing symlink")
	must(t, rename(e.path("link"), e.path("link2")), "rename symlink")
	if got, _ := readlink(e.path("link2")); got != "file" {
		t.Errorf("renamed symlink points to %q", got)
	}
	must(t, os.Remove(e.path("link2")), "unlink symlink")
	if got := readFile(t, e.path("file")); string(got) != "x" {
		t.Errorf("unlinking a symlink touched its target: %q", got)
	}
	checkNames(t, listDir(t, e.dir), []string{"file", "loop1", "loop2", "self"}, "after unlinking the symlink")
}

// checkSymlinkErrors: readlink of a non-symlink is EINVAL; a symlink cannot replace an
// existing name; an empty target is ENOENT.
func checkSymlinkErrors(t *testing.T, e *env) {
	writeFile(t, e.path("file"), []byte("x"))
	_, err := readlink(e.path("file"))
	wantErrno(t, err, unix.EINVAL, "readlink of a regular file")
	_, err = readlink(e.path("missing"))
	wantErrno(t, err, unix.ENOENT, "readlink of a missing name")
	wantErrno(t, unix.Symlink("t", e.path("file")), unix.EEXIST, "symlink over an existing file")
	wantErrno(t, unix.Symlink("", e.path("empty")), unix.ENOENT, "symlink with an empty target")
	if got := readFile(t, e.path("file")); !bytes.Equal(got, []byte("x")) {
		t.Errorf("file changed to %q", got)
	}
	checkNames(t, listDir(t, e.dir), []string{"file"}, "after failed symlinks")
}
