package fstest

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func renameChecks() []check {
	return []check{
		{"FileOverFile", checkRenameFileOverFile},
		{"DirOverEmptyDir", checkRenameDirOverEmptyDir},
		{"DirOverNonEmptyDir", checkRenameDirOverNonEmptyDir},
		{"TypeMismatch", checkRenameTypeMismatch},
		{"AcrossDirectories", checkRenameAcrossDirectories},
		{"ToSelf", checkRenameToSelf},
		{"OpenFile", checkRenameOpenFile},
		{"Errors", checkRenameErrors},
	}
}

func rename(from, to string) error {
	return retry0(func() error { return unix.Rename(from, to) })
}

// checkRenameFileOverFile: the target is replaced atomically; a descriptor open on the old
// target still reads the old content, and its link count drops to 0.
func checkRenameFileOverFile(t *testing.T, e *env) {
	src, dst := e.path("src"), e.path("dst")
	writeFile(t, src, []byte("new content"))
	writeFile(t, dst, []byte("old content, longer"))
	srcIno := lstat(t, src).Ino
	old := mustOpen(t, dst, unix.O_RDONLY, 0)
	must(t, rename(src, dst), "rename")
	if exists(t, src) {
		t.Errorf("source still exists after rename")
	}
	if got := readFile(t, dst); string(got) != "new content" {
		t.Errorf("target reads %q, want the source's content", got)
	}
	if ino := lstat(t, dst).Ino; ino != srcIno {
		t.Errorf("target inode %d, want the source's %d", ino, srcIno)
	}
	if got := pread(t, old, 100, 0); string(got) != "old content, longer" {
		t.Errorf("descriptor of the replaced file reads %q", got)
	}
	if st := fstat(t, old); st.Nlink != 0 {
		t.Errorf("replaced file has link count %d, want 0", st.Nlink)
	}
	checkNames(t, listDir(t, e.dir), []string{"dst"}, "directory after rename")
}

// checkRenameDirOverEmptyDir: a directory replaces an empty one and keeps its content.
func checkRenameDirOverEmptyDir(t *testing.T, e *env) {
	must(t, os.MkdirAll(e.path("src", "sub"), 0o755), "mkdir")
	writeFile(t, e.path("src", "file"), []byte("x"))
	must(t, os.Mkdir(e.path("dst"), 0o755), "mkdir")
	srcIno := lstat(t, e.path("src")).Ino
	must(t, rename(e.path("src"), e.path("dst")), "rename dir over empty dir")
	if st := lstat(t, e.path("dst")); st.Ino != srcIno {
		t.Errorf("target inode %d, want the source's %d", st.Ino, srcIno)
	}
	checkNames(t, listDir(t, e.path("dst")), []string{"file", "sub"}, "renamed directory")
	if got := readFile(t, e.path("dst", "file")); string(got) != "x" {
		t.Errorf("file in renamed directory reads %q", got)
	}
	checkNames(t, listDir(t, e.dir), []string{"dst"}, "parent after rename")
	if st := lstat(t, e.dir); st.Nlink != 3 {
		t.Errorf("parent link count %d, want 3 (one subdirectory)", st.Nlink)
	}
}

// checkRenameDirOverNonEmptyDir: replacing a non-empty directory fails with ENOTEMPTY and
// changes nothing.
func checkRenameDirOverNonEmptyDir(t *testing.T, e *env) {
	must(t, os.Mkdir(e.path("src"), 0o755), "mkdir")
	must(t, os.Mkdir(e.path("dst"), 0o755), "mkdir")
	writeFile(t, e.path("dst", "keep"), []byte("k"))
	wantErrno(t, rename(e.path("src"), e.path("dst")), unix.ENOTEMPTY, "rename dir over non-empty dir")
	checkNames(t, listDir(t, e.dir), []string{"dst", "src"}, "parent")
	checkNames(t, listDir(t, e.path("dst")), []string{"keep"}, "target")
}

// checkRenameTypeMismatch: a file cannot replace a directory (EISDIR) nor a directory a file
// (ENOTDIR).
func checkRenameTypeMismatch(t *testing.T, e *env) {
	writeFile(t, e.path("file"), []byte("f"))
	must(t, os.Mkdir(e.path("dir"), 0o755), "mkdir")
	wantErrno(t, rename(e.path("file"), e.path("dir")), unix.EISDIR, "rename file over dir")
	wantErrno(t, rename(e.path("dir"), e.path("file")), unix.ENOTDIR, "rename dir over file")
	checkNames(t, listDir(t, e.dir), []string{"dir", "file"}, "after failed renames")
	if got := readFile(t, e.path("file")); string(got) != "f" {
		t.Errorf("file changed to %q", got)
	}
}

// checkRenameAcrossDirectories moves a file and a directory between directories; the
// parents' link counts follow the moved directory.
func checkRenameAcrossDirectories(t *testing.T, e *env) {
	a, b := e.path("a"), e.path("b")
	must(t, os.Mkdir(a, 0o755), "mkdir")
	must(t, os.Mkdir(b, 0o755), "mkdir")
	writeFile(t, e.path("a", "f"), []byte("moved"))
	must(t, os.Mkdir(e.path("a", "d"), 0o755), "mkdir")
	writeFile(t, e.path("a", "d", "inner"), []byte("inner"))
	must(t, rename(e.path("a", "f"), e.path("b", "g")), "rename file across directories")
	must(t, rename(e.path("a", "d"), e.path("b", "d")), "rename dir across directories")
	checkNames(t, listDir(t, a), nil, "source directory")
	checkNames(t, listDir(t, b), []string{"d", "g"}, "target directory")
	if got := readFile(t, e.path("b", "g")); string(got) != "moved" {
		t.Errorf("moved file reads %q", got)
	}
	if got := readFile(t, e.path("b", "d", "inner")); string(got) != "inner" {
		t.Errorf("file in moved directory reads %q", got)
	}
	if n := lstat(t, a).Nlink; n != 2 {
		t.Errorf("source parent link count %d, want 2", n)
	}
	if n := lstat(t, b).Nlink; n != 3 {
		t.Errorf("target parent link count %d, want 3", n)
	}
	// ".." of the moved directory is the new parent.
	if got, want := lstat(t, e.path("b", "d")+"/..").Ino, lstat(t, b).Ino; got != want {
		t.Errorf("moved directory's .. is inode %d, want %d", got, want)
	}
}

// checkRenameToSelf: renaming a name onto itself, or onto another hard link of the same
// file, succeeds and does nothing (both names stay).
func checkRenameToSelf(t *testing.T, e *env) {
	writeFile(t, e.path("f"), []byte("self"))
	must(t, rename(e.path("f"), e.path("f")), "rename file to itself")
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	must(t, rename(e.path("d"), e.path("d")), "rename dir to itself")
	must(t, os.Link(e.path("f"), e.path("link")), "link")
	must(t, rename(e.path("f"), e.path("link")), "rename onto another link of the same file")
	checkNames(t, listDir(t, e.dir), []string{"d", "f", "link"}, "after renames to self")
	if n := lstat(t, e.path("f")).Nlink; n != 2 {
		t.Errorf("link count %d, want 2", n)
	}
	if got := readFile(t, e.path("f")); string(got) != "self" {
		t.Errorf("content %q", got)
	}
}

// checkRenameOpenFile: a renamed file stays usable through a descriptor opened before, and
// writes through it show under the new name.
func checkRenameOpenFile(t *testing.T, e *env) {
	must(t, os.Mkdir(e.path("sub"), 0o755), "mkdir")
	f := mustOpen(t, e.path("f"), unix.O_RDWR|unix.O_CREAT, 0o644)
	pwrite(t, f, []byte("before "), 0)
	ino := fstat(t, f).Ino
	must(t, rename(e.path("f"), e.path("sub", "g")), "rename open file")
	pwrite(t, f, []byte("after"), 7)
	if got := readFile(t, e.path("sub", "g")); string(got) != "before after" {
		t.Errorf("new name reads %q, want %q", got, "before after")
	}
	if got := pread(t, f, 100, 0); string(got) != "before after" {
		t.Errorf("descriptor reads %q", got)
	}
	st := fstat(t, f)
	if st.Ino != ino || st.Nlink != 1 {
		t.Errorf("fstat after rename: inode %d link count %d, want %d and 1", st.Ino, st.Nlink, ino)
	}
	writeFile(t, e.path("f"), []byte("new file"))
	if got := pread(t, f, 100, 0); string(got) != "before after" {
		t.Errorf("a new file under the old name changed the open file to %q", got)
	}
}

// checkRenameErrors: missing source, missing target parent, a directory into its own
// subdirectory, and renaming "." fail with the Linux errors.
func checkRenameErrors(t *testing.T, e *env) {
	must(t, os.MkdirAll(e.path("d", "sub"), 0o755), "mkdir")
	writeFile(t, e.path("f"), []byte("f"))
	wantErrno(t, rename(e.path("missing"), e.path("x")), unix.ENOENT, "rename missing source")
	wantErrno(t, rename(e.path("f"), e.path("nodir", "x")), unix.ENOENT, "rename into missing directory")
	wantErrno(t, rename(e.path("f"), e.path("f", "x")), unix.ENOTDIR, "rename below a file")
	wantErrno(t, rename(e.path("d"), e.path("d", "sub", "x")), unix.EINVAL, "rename dir into its own subdirectory")
	wantErrno(t, rename(e.path("d", "sub")+"/.", e.path("x")), unix.EBUSY, "rename .") // e.path would clean "/."
	checkNames(t, listDir(t, e.dir), []string{"d", "f"}, "after failed renames")
}
