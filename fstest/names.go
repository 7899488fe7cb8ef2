package fstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func nameChecks() []check {
	return []check{
		{"EveryByte", checkNamesEveryByte},
		{"AllBytesInOneName", checkNamesAllBytes},
		{"MaxLength", checkNamesMaxLength},
		{"TooLong", checkNamesTooLong},
		{"UTF8", checkNamesUTF8},
		{"DotNames", checkNamesDots},
	}
}

// exerciseNames creates a file for each name holding the name as content, then checks that
// the listing is exactly the names, that each can be stat'ed, opened and read back through
// its name, renamed and unlinked, and that the directory ends up empty.
func exerciseNames(t *testing.T, dir string, names []string) {
	t.Helper()
	must(t, os.Mkdir(dir, 0o755), "mkdir")
	for _, n := range names {
		must(t, os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644), "create %q", n)
	}
	checkNames(t, listDir(t, dir), names, "listing")
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st := lstat(t, p); fileType(st.Mode) != unix.S_IFREG || st.Size != int64(len(n)) {
			t.Errorf("%q: mode %o size %d", n, st.Mode, st.Size)
		}
		if got := readFile(t, p); string(got) != n {
			t.Errorf("%q reads %q", n, got)
		}
	}
	// Rename every name to a plain one and back, then unlink.
	for i, n := range names {
		p := filepath.Join(dir, n)
		tmp := filepath.Join(dir, fmt.Sprintf("plain-%d", i))
		must(t, rename(p, tmp), "rename %q away", n)
		must(t, rename(tmp, p), "rename back to %q", n)
		must(t, os.Remove(p), "unlink %q", n)
	}
	checkNames(t, listDir(t, dir), nil, "after unlinking every name")
	must(t, os.Remove(dir), "rmdir")
}

// checkNamesEveryByte: each byte value except NUL and '/' works in a name, alone (except
// ".") and tripled.
func checkNamesEveryByte(t *testing.T, e *env) {
	var singles, triples []string
	for b := 1; b < 256; b++ {
		if b == '/' {
			continue
		}
		if b != '.' {
			singles = append(singles, string([]byte{byte(b)}))
		}
		triples = append(triples, string([]byte{byte(b), byte(b), byte(b)}))
	}
	exerciseNames(t, e.path("singles"), singles)
	exerciseNames(t, e.path("triples"), triples)
	// Each byte between two letters, as a directory name too.
	d := e.path("dirs")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	var dirs []string
	for b := 1; b < 256; b++ {
		if b == '/' {
			continue
		}
		n := string([]byte{'a', byte(b), 'z'})
		must(t, os.Mkdir(filepath.Join(d, n), 0o755), "mkdir %q", n)
		writeFile(t, filepath.Join(d, n, "inside"), []byte(n))
		dirs = append(dirs, n)
	}
	checkNames(t, listDir(t, d), dirs, "directories")
	for _, n := range dirs {
		if got := readFile(t, filepath.Join(d, n, "inside")); string(got) != n {
			t.Errorf("file in directory %q reads %q", n, got)
		}
	}
}

// checkNamesAllBytes: one name holding every byte value except NUL and '/' (254 bytes, split
// into several names if MaxNameLen is smaller).
func checkNamesAllBytes(t *testing.T, e *env) {
	var all []byte
	for b := 1; b < 256; b++ {
		if b != '/' {
			all = append(all, byte(b))
		}
	}
	var names []string
	for len(all) > 0 {
		n := min(len(all), e.opts.MaxNameLen)
		names = append(names, string(all[:n]))
		all = all[n:]
	}
	// Reversed too, so that the name starts with high bytes.
	var rev []string
	for _, n := range names {
		b := []byte(n)
		for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
		rev = append(rev, string(b))
	}
	exerciseNames(t, e.path("all"), append(names, rev...))
}

// maxName returns a name of exactly n bytes made of c, with a distinguishing prefix.
func maxName(prefix string, n int, c byte) string {
	return prefix + strings.Repeat(string(c), n-len(prefix))
}

// checkNamesMaxLength: names of exactly MaxNameLen bytes work for files, directories,
// symlinks, fifos, hard links and rename targets, also made of multi-byte UTF-8.
func checkNamesMaxLength(t *testing.T, e *env) {
	n := e.opts.MaxNameLen
	file := maxName("f", n, 'x')
	dir := maxName("d", n, 'y')
	sym := maxName("s", n, 'z')
	fifo := maxName("p", n, 'w')
	hard := maxName("h", n, 'v')
	moved := maxName("m", n, 'u')
	utf := "é" // two bytes
	utf8Name := strings.Repeat(utf, n/2) + strings.Repeat("x", n%2)
	writeFile(t, e.path(file), []byte("max"))
	must(t, os.Mkdir(e.path(dir), 0o755), "mkdir with a %d-byte name", n)
	writeFile(t, e.path(dir, file), []byte("nested"))
	must(t, os.Symlink(file, e.path(sym)), "symlink with a %d-byte name", n)
	must(t, unix.Mkfifo(e.path(fifo), 0o644), "mkfifo with a %d-byte name", n)
	must(t, link(e.path(file), e.path(hard)), "link with a %d-byte name", n)
	writeFile(t, e.path("short"), []byte("renamed"))
	must(t, rename(e.path("short"), e.path(moved)), "rename to a %d-byte name", n)
	writeFile(t, e.path(utf8Name), []byte("utf8"))
	checkNames(t, listDir(t, e.dir), []string{file, dir, sym, fifo, hard, moved, utf8Name}, "listing")
	for name, want := range map[string]string{
		file: "max", sym: "max", hard: "max", moved: "renamed", utf8Name: "utf8",
		filepath.Join(dir, file): "nested",
	} {
		if got := readFile(t, e.path(name)); string(got) != want {
			t.Errorf("%s: %q, want %q", abbrevString(name), got, want)
		}
	}
	if got, _ := readlink(e.path(sym)); got != file {
		t.Errorf("readlink of the long symlink: %q", abbrevString(got))
	}
}

// checkNamesTooLong: every operation with a name of MaxNameLen+1 bytes fails with
// ENAMETOOLONG and leaves nothing behind.
func checkNamesTooLong(t *testing.T, e *env) {
	long := e.path(maxName("L", e.opts.MaxNameLen+1, 'q'))
	writeFile(t, e.path("f"), []byte("x"))
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	ops := []struct {
		name string
		fn   func() error
	}{
		{"create", func() error {
			f, err := openFile(long, unix.O_WRONLY|unix.O_CREAT, 0o644)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"open", func() error {
			f, err := openFile(long, unix.O_RDONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"lstat", func() error { var st unix.Stat_t; return unix.Lstat(long, &st) }},
		{"mkdir", func() error { return unix.Mkdir(long, 0o755) }},
		{"symlink", func() error { return unix.Symlink("f", long) }},
		{"mkfifo", func() error { return unix.Mkfifo(long, 0o644) }},
		{"link", func() error { return unix.Link(e.path("f"), long) }},
		{"rename file", func() error { return unix.Rename(e.path("f"), long) }},
		{"rename dir", func() error { return unix.Rename(e.path("d"), long) }},
		{"unlink", func() error { return unix.Unlink(long) }},
		{"rmdir", func() error { return unix.Rmdir(long) }},
	}
	for _, op := range ops {
		wantErrno(t, retry0(op.fn), unix.ENAMETOOLONG, "%s with a %d-byte name", op.name, e.opts.MaxNameLen+1)
	}
	checkNames(t, listDir(t, e.dir), []string{"d", "f"}, "after failed operations")
}

// checkNamesUTF8: UTF-8 names are stored as bytes: no normalisation, no case folding, so
// canonically equivalent or case-different names are different entries.
func checkNamesUTF8(t *testing.T, e *env) {
	names := []string{
		"héllo", "日本語のファイル名", "emoji-😀-🚀", "Straße", "STRASSE", "straße",
		"e\u0301", "\u00e9", // decomposed and precomposed é: distinct names
		"A", "a", "ﬁ", "fi", "שלום", "مرحبا", "Ωμέγα", "zero\u200bwidth", "\u202eright-to-left",
		"\ufeffbom", "\U0010ffff", "\xc3\x28", "\xff\xfe-invalid-utf8",
	}
	exerciseNames(t, e.path("utf8"), names)
}

// checkNamesDots: names that start or end with dots or spaces, or look like the metadata
// files of encrypted filesystems, are ordinary names; "." and ".." are not creatable.
func checkNamesDots(t *testing.T, e *env) {
	names := []string{
		".hidden", "..x", "...", "....", ".x.", "x.", "x..", ". ", " .", " ", "  leading", "trailing ",
		"-", "--", "~", ".#lock", "#x#", ".cryptfs", ".cryptfs.diriv", "gocryptfs.diriv", "gocryptfs.conf",
		".encfs6.xml", "cryptfs.conf", "CON", "nul", "a:b", "a\\b", "*", "?",
	}
	exerciseNames(t, e.path("files"), names)
	d := e.path("dirs")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	for _, n := range names {
		must(t, os.Mkdir(filepath.Join(d, n), 0o755), "mkdir %q", n)
	}
	checkNames(t, listDir(t, d), names, "directories")
	for _, n := range names {
		must(t, os.Remove(filepath.Join(d, n)), "rmdir %q", n)
	}
	// Not e.path, which would clean the dots away.
	wantErrno(t, unix.Mkdir(d+"/.", 0o755), unix.EEXIST, "mkdir .")
	wantErrno(t, unix.Mkdir(d+"/..", 0o755), unix.EEXIST, "mkdir ..")
	wantErrno(t, unix.Rmdir(d+"/."), unix.EINVAL, "rmdir .")
	wantErrno(t, unix.Rmdir(d+"/.."), unix.ENOTEMPTY, "rmdir ..")
	_, err := openFile(d+"/.", unix.O_RDWR|unix.O_CREAT, 0o644)
	wantErrno(t, err, unix.EISDIR, "open(O_CREAT) of .")
	checkNames(t, listDir(t, d), nil, "after removing the directories")
}
