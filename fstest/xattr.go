package fstest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func xattrChecks() []check {
	return []check{
		{"SetGetListRemove", checkXattrBasic},
		{"CreateReplaceFlags", checkXattrFlags},
		{"Values", checkXattrValues},
		{"Many", checkXattrMany},
		{"SmallBuffer", checkXattrSmallBuffer},
		{"Directory", checkXattrDirectory},
		{"Descriptor", checkXattrDescriptor},
		{"NameLength", checkXattrNameLength},
		{"Symlink", checkXattrSymlink},
		{"FollowsFile", checkXattrFollowsFile},
	}
}

// getxattr returns the value of name on path (following symlinks unless nofollow).
func getxattr(path, name string, nofollow bool) ([]byte, error) {
	get := unix.Getxattr
	if nofollow {
		get = unix.Lgetxattr
	}
	for {
		n, err := retry(func() (int, error) { return get(path, name, nil) })
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n+1) // one spare byte detects a value that grew meanwhile
		m, err := retry(func() (int, error) { return get(path, name, buf) })
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:m], nil
	}
}

// listUserXattrs returns the user.* names on path, sorted. Other namespaces (security.*,
// system.*) belong to the system and are ignored.
func listUserXattrs(t *testing.T, path string) []string {
	t.Helper()
	n, err := retry(func() (int, error) { return unix.Llistxattr(path, nil) })
	must(t, err, "listxattr size of %s", path)
	buf := make([]byte, n)
	m, err := retry(func() (int, error) { return unix.Llistxattr(path, buf) })
	must(t, err, "listxattr %s", path)
	if m != n {
		t.Errorf("listxattr returned %d bytes, the size query said %d", m, n)
	}
	if m > 0 && buf[m-1] != 0 {
		t.Errorf("listxattr result does not end with NUL")
	}
	var names []string
	for _, name := range strings.Split(string(buf[:m]), "\x00") {
		if strings.HasPrefix(name, "user.") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// wantXattr reports an error unless name on path has value want.
func wantXattr(t *testing.T, path, name string, want []byte) {
	t.Helper()
	got, err := getxattr(path, name, true)
	if err != nil {
		t.Errorf("getxattr %s: %v", name, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("getxattr %s: %s", abbrevString(name), diffBytes(got, want))
	}
}

// checkXattrBasic: set, get, list, overwrite and remove user.* attributes; missing ones are
// ENODATA.
func checkXattrBasic(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, []byte("content"))
	checkNames(t, listUserXattrs(t, p), nil, "xattrs of a new file")
	_, err := getxattr(p, "user.missing", false)
	wantErrno(t, err, unix.ENODATA, "getxattr of a missing name")
	must(t, unix.Setxattr(p, "user.a", []byte("alpha"), 0), "setxattr")
	must(t, unix.Setxattr(p, "user.b", []byte("beta"), 0), "setxattr")
	wantXattr(t, p, "user.a", []byte("alpha"))
	wantXattr(t, p, "user.b", []byte("beta"))
	checkNames(t, listUserXattrs(t, p), []string{"user.a", "user.b"}, "listxattr")
	must(t, unix.Setxattr(p, "user.a", []byte("a longer value"), 0), "overwrite")
	wantXattr(t, p, "user.a", []byte("a longer value"))
	must(t, unix.Setxattr(p, "user.a", []byte("s"), 0), "overwrite shorter")
	wantXattr(t, p, "user.a", []byte("s"))
	must(t, unix.Removexattr(p, "user.a"), "removexattr")
	_, err = getxattr(p, "user.a", false)
	wantErrno(t, err, unix.ENODATA, "getxattr after removexattr")
	wantErrno(t, unix.Removexattr(p, "user.a"), unix.ENODATA, "removexattr of a removed name")
	checkNames(t, listUserXattrs(t, p), []string{"user.b"}, "listxattr after remove")
	// Names are case sensitive.
	must(t, unix.Setxattr(p, "user.B", []byte("upper"), 0), "setxattr")
	wantXattr(t, p, "user.b", []byte("beta"))
	wantXattr(t, p, "user.B", []byte("upper"))
	if got := readFile(t, p); string(got) != "content" {
		t.Errorf("xattr operations changed the content to %q", got)
	}
}

// checkXattrFlags: XATTR_CREATE fails on an existing name (EEXIST), XATTR_REPLACE on a
// missing one (ENODATA); neither changes anything then.
func checkXattrFlags(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, nil)
	must(t, unix.Setxattr(p, "user.x", []byte("one"), unix.XATTR_CREATE), "XATTR_CREATE of a new name")
	wantErrno(t, unix.Setxattr(p, "user.x", []byte("two"), unix.XATTR_CREATE), unix.EEXIST, "XATTR_CREATE of an existing name")
	wantXattr(t, p, "user.x", []byte("one"))
	wantErrno(t, unix.Setxattr(p, "user.y", []byte("two"), unix.XATTR_REPLACE), unix.ENODATA, "XATTR_REPLACE of a missing name")
	checkNames(t, listUserXattrs(t, p), []string{"user.x"}, "after failed XATTR_REPLACE")
	must(t, unix.Setxattr(p, "user.x", []byte("three"), unix.XATTR_REPLACE), "XATTR_REPLACE of an existing name")
	wantXattr(t, p, "user.x", []byte("three"))
}

// checkXattrValues: empty values, every byte value, and large values read back exactly; the
// size query with an empty buffer reports the value length.
func checkXattrValues(t *testing.T, e *env) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := e.opts.MaxXattrValueLen
	cases := []struct {
		name  string
		value []byte
	}{
		{"user.empty", nil},
		{"user.nul", []byte{0}},
		{"user.allbytes", all},
		{"user.trailingnul", []byte("text\x00")},
		{"user.utf8", []byte("wert äöü 値")},
		{"user.big", randBytes(uint64(big), big)},
	}
	for i, c := range cases {
		// One file per value, so that the large value has the inode's space to itself.
		p := e.path(fmt.Sprintf("f%d", i))
		writeFile(t, p, nil)
		must(t, unix.Setxattr(p, c.name, c.value, 0), "setxattr %s (%d bytes)", c.name, len(c.value))
		n, err := unix.Getxattr(p, c.name, nil)
		must(t, err, "getxattr size query")
		if n != len(c.value) {
			t.Errorf("%s: size query says %d, want %d", c.name, n, len(c.value))
		}
		wantXattr(t, p, c.name, c.value)
	}
	checkNames(t, listUserXattrs(t, e.path("f0")), []string{"user.empty"}, "empty value is listed")
}

// checkXattrMany: MaxXattrs attributes on one file are all listed and readable, and removing
// every other one leaves exactly the rest.
func checkXattrMany(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, nil)
	var names []string
	for i := range e.opts.MaxXattrs {
		name := fmt.Sprintf("user.x%d", i)
		must(t, unix.Setxattr(p, name, []byte(fmt.Sprint(i)), 0), "setxattr %s", name)
		names = append(names, name)
	}
	checkNames(t, listUserXattrs(t, p), names, "listxattr")
	for i, name := range names {
		wantXattr(t, p, name, []byte(fmt.Sprint(i)))
	}
	var kept []string
	for i, name := range names {
		if i%2 == 0 {
			must(t, unix.Removexattr(p, name), "removexattr %s", name)
		} else {
			kept = append(kept, name)
		}
	}
	checkNames(t, listUserXattrs(t, p), kept, "listxattr after removing half")
}

// checkXattrSmallBuffer: a buffer too small for the value or the list is ERANGE.
func checkXattrSmallBuffer(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, nil)
	must(t, unix.Setxattr(p, "user.v", []byte("0123456789"), 0), "setxattr")
	_, err := unix.Getxattr(p, "user.v", make([]byte, 9))
	wantErrno(t, err, unix.ERANGE, "getxattr into a 9-byte buffer for 10 bytes")
	n, err := unix.Getxattr(p, "user.v", make([]byte, 10))
	must(t, err, "getxattr into an exact buffer")
	if n != 10 {
		t.Errorf("getxattr into an exact buffer: %d bytes", n)
	}
	size, err := unix.Listxattr(p, nil)
	must(t, err, "listxattr size query")
	if size < len("user.v\x00") {
		t.Errorf("listxattr size query: %d", size)
	}
	_, err = unix.Listxattr(p, make([]byte, size-1))
	wantErrno(t, err, unix.ERANGE, "listxattr into a buffer one byte short")
}

// checkXattrDirectory: directories carry xattrs of their own, independent of their entries.
func checkXattrDirectory(t *testing.T, e *env) {
	d := e.path("d")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	writeFile(t, d+"/f", nil)
	must(t, unix.Setxattr(d, "user.dir", []byte("on dir"), 0), "setxattr on a directory")
	must(t, unix.Setxattr(d+"/f", "user.file", []byte("on file"), 0), "setxattr on its file")
	wantXattr(t, d, "user.dir", []byte("on dir"))
	checkNames(t, listUserXattrs(t, d), []string{"user.dir"}, "directory xattrs")
	checkNames(t, listUserXattrs(t, d+"/f"), []string{"user.file"}, "file xattrs")
	checkNames(t, listDir(t, d), []string{"f"}, "directory listing after setting xattrs")
	// The xattr moves with the directory.
	must(t, rename(d, e.path("d2")), "rename")
	wantXattr(t, e.path("d2"), "user.dir", []byte("on dir"))
	wantXattr(t, e.path("d2", "f"), "user.file", []byte("on file"))
}

// checkXattrDescriptor: fsetxattr/fgetxattr/flistxattr/fremovexattr work on an open
// descriptor, also of a read-only open.
func checkXattrDescriptor(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, nil)
	f := mustOpen(t, p, unix.O_RDONLY, 0)
	must(t, unix.Fsetxattr(fd(f), "user.fd", []byte("via fd"), 0), "fsetxattr")
	buf := make([]byte, 64)
	n, err := unix.Fgetxattr(fd(f), "user.fd", buf)
	must(t, err, "fgetxattr")
	if string(buf[:n]) != "via fd" {
		t.Errorf("fgetxattr: %q", buf[:n])
	}
	wantXattr(t, p, "user.fd", []byte("via fd"))
	n, err = unix.Flistxattr(fd(f), buf)
	must(t, err, "flistxattr")
	if !bytes.Contains(buf[:n], []byte("user.fd\x00")) {
		t.Errorf("flistxattr: %q", buf[:n])
	}
	must(t, unix.Fremovexattr(fd(f), "user.fd"), "fremovexattr")
	checkNames(t, listUserXattrs(t, p), nil, "after fremovexattr")
}

// checkXattrNameLength: names up to MaxXattrNameLen bytes (prefix included) work, longer
// ones fail with ERANGE (getxattr may say ENODATA below the kernel's limit); an empty name
// after the prefix is EINVAL.
func checkXattrNameLength(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, nil)
	maxLen := e.opts.MaxXattrNameLen
	var names []string
	for _, n := range []int{len("user.") + 1, 100, maxLen - 1, maxLen} {
		name := "user." + strings.Repeat(string(rune('a'+n%26)), n-len("user."))
		must(t, unix.Setxattr(p, name, []byte("v"), 0), "setxattr with a %d-byte name", n)
		wantXattr(t, p, name, []byte("v"))
		names = append(names, name)
	}
	checkNames(t, listUserXattrs(t, p), names, "long names listed")
	long := "user." + strings.Repeat("z", maxLen+1-len("user."))
	wantErrno(t, unix.Setxattr(p, long, []byte("v"), 0), unix.ERANGE, "setxattr with a %d-byte name", maxLen+1)
	_, err := unix.Getxattr(p, long, nil)
	if maxLen < defaultMaxXattrNameLen && errors.Is(err, unix.ENODATA) {
		// Relaxed by MaxXattrNameLen: below XATTR_NAME_MAX the kernel passes the name to the
		// filesystem, and "no such attribute" is a truthful answer for a name that cannot
		// exist there. setxattr above must still refuse it with ERANGE.
		err = unix.ERANGE
	}
	wantErrno(t, err, unix.ERANGE, "getxattr with a %d-byte name", maxLen+1)
	wantErrno(t, unix.Setxattr(p, "user.", []byte("v"), 0), unix.EINVAL, "setxattr with an empty name")
	checkNames(t, listUserXattrs(t, p), names, "after failed setxattr")
}

// checkXattrSymlink: user.* attributes are not allowed on symlinks (EPERM); l* calls act on
// the link, the others on the target.
func checkXattrSymlink(t *testing.T, e *env) {
	writeFile(t, e.path("f"), nil)
	must(t, os.Symlink("f", e.path("l")), "symlink")
	wantErrno(t, unix.Lsetxattr(e.path("l"), "user.x", []byte("v"), 0), unix.EPERM, "lsetxattr user.* on a symlink")
	must(t, unix.Setxattr(e.path("l"), "user.t", []byte("target"), 0), "setxattr through a symlink")
	wantXattr(t, e.path("f"), "user.t", []byte("target"))
	_, err := getxattr(e.path("l"), "user.t", true)
	wantErrno(t, err, unix.ENODATA, "lgetxattr on the symlink")
}

// checkXattrFollowsFile: xattrs survive rename and hard links see them, a new file with a
// reused name starts without any.
func checkXattrFollowsFile(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, nil)
	must(t, unix.Setxattr(p, "user.keep", []byte("kept"), 0), "setxattr")
	must(t, link(p, e.path("h")), "link")
	wantXattr(t, e.path("h"), "user.keep", []byte("kept"))
	must(t, rename(p, e.path("g")), "rename")
	wantXattr(t, e.path("g"), "user.keep", []byte("kept"))
	writeFile(t, p, nil)
	checkNames(t, listUserXattrs(t, p), nil, "new file under a reused name")
	data := randBytes(1, 9000)
	writeFile(t, e.path("g"), data)
	wantXattr(t, e.path("g"), "user.keep", []byte("kept"))
	checkBytes(t, readFile(t, e.path("h")), data, "content after xattr operations")
}
