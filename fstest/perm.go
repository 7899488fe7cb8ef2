package fstest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func permissionChecks() []check {
	return []check{
		{"ChmodBits", checkChmodBits},
		{"Umask", checkUmask},
		{"Access", checkAccess},
		{"OwnerWithoutPermission", checkOwnerWithoutPermission},
		{"OtherUser", checkOtherUser},
		{"PrivilegedWriteKeepsSetID", checkPrivilegedWriteKeepsSetID},
	}
}

// checkPrivilegedWriteKeepsSetID: a caller with CAP_FSETID (root) may write to and truncate a
// set-user-ID or set-group-ID file without clearing the bits (the other-user cases check that
// anyone else clears them), through every path: write, O_TRUNC, ftruncate, truncate.
func checkPrivilegedWriteKeepsSetID(t *testing.T, e *env) {
	needRoot(t)
	for i, m := range []uint32{0o4755, 0o2755, 0o6775} {
		p := e.path(fmt.Sprintf("f%d", i))
		writeFile(t, p, []byte("abc"))
		must(t, unix.Chmod(p, m), "chmod")
		f := mustOpen(t, p, unix.O_WRONLY|unix.O_APPEND, 0)
		_, err := unix.Write(fd(f), []byte("more"))
		must(t, err, "write")
		must(t, f.Close(), "close")
		f = mustOpen(t, p, unix.O_WRONLY|unix.O_TRUNC, 0)
		must(t, unix.Ftruncate(fd(f), 10), "ftruncate")
		must(t, f.Close(), "close")
		must(t, unix.Truncate(p, 5), "truncate")
		if got := lstat(t, p).Mode & 0o7777; got != m {
			t.Errorf("root wrote to and truncated a %04o file: mode %04o, want it kept", m, got)
		}
	}
}

// checkChmodBits: chmod and fchmod store every permission bit including set-user-ID,
// set-group-ID and sticky, on files and directories, and the mode survives reopening.
func checkChmodBits(t *testing.T, e *env) {
	fileModes := []uint32{0, 0o400, 0o644, 0o755, 0o777, 0o1755, 0o2755, 0o4755, 0o6755, 0o7777, 0o4000, 0o1000}
	dirModes := []uint32{0o700, 0o755, 0o1777, 0o2775, 0o3777, 0o7755, 0o555}
	writeFile(t, e.path("f"), []byte("x"))
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	f := mustOpen(t, e.path("f"), unix.O_RDONLY, 0)
	for _, m := range fileModes {
		must(t, unix.Chmod(e.path("f"), m), "chmod %04o", m)
		if got := lstat(t, e.path("f")).Mode; got != unix.S_IFREG|m {
			t.Errorf("chmod file %04o: mode %o", m, got)
		}
		must(t, unix.Fchmod(fd(f), m^0o111), "fchmod %04o", m^0o111)
		if got := fstat(t, f).Mode; got != unix.S_IFREG|m^0o111 {
			t.Errorf("fchmod file %04o: mode %o", m^0o111, got)
		}
	}
	for _, m := range dirModes {
		must(t, unix.Chmod(e.path("d"), m), "chmod %04o", m)
		if got := lstat(t, e.path("d")).Mode; got != unix.S_IFDIR|m {
			t.Errorf("chmod dir %04o: mode %o", m, got)
		}
	}
	must(t, unix.Chmod(e.path("d"), 0o755), "chmod")
	// Symlink modes cannot be changed; chmod acts on the target.
	must(t, os.Symlink("f", e.path("l")), "symlink")
	must(t, unix.Chmod(e.path("l"), 0o640), "chmod through symlink")
	if got := lstat(t, e.path("f")).Mode & 0o7777; got != 0o640 {
		t.Errorf("chmod through a symlink: target mode %04o, want 0640", got)
	}
	if got := lstat(t, e.path("l")).Mode; got != unix.S_IFLNK|0o777 {
		t.Errorf("symlink mode %o, want %o", got, unix.S_IFLNK|0o777)
	}
}

// checkUmask: a child process with a given umask creates files, directories and fifos whose
// modes are the requested ones minus the umask; symlinks are always 0777.
func checkUmask(t *testing.T, e *env) {
	cases := []struct {
		umask int
		op    string
		mode  uint32
		want  uint32
	}{
		{0o022, "open", 0o666, 0o644},
		{0o027, "open", 0o666, 0o640},
		{0o077, "open", 0o777, 0o700},
		{0o000, "open", 0o666, 0o666},
		{0o777, "open", 0o666, 0},
		{0o022, "mkdir", 0o777, 0o755},
		{0o027, "mkdir", 0o1777, 0o1750},
		{0o077, "mkdir", 0o777, 0o700},
		{0o027, "mkfifo", 0o666, 0o640},
	}
	for i, c := range cases {
		name := fmt.Sprintf("%s-%03o-%d", c.op, c.umask, i)
		req := helperRequest{UID: -1, Umask: c.umask, Op: c.op, Name: name, Mode: c.mode}
		if c.op == "open" {
			req.Flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL
		}
		must(t, runHelper(t, e.dir, req), "%s(%04o) with umask %03o in a child", c.op, c.mode, c.umask)
		if got := lstat(t, e.path(name)).Mode & 0o7777; got != c.want {
			t.Errorf("%s(%04o) with umask %03o: mode %04o, want %04o", c.op, c.mode, c.umask, got, c.want)
		}
		if c.op == "mkdir" {
			must(t, os.Chmod(e.path(name), 0o755), "chmod")
		}
	}
}

// checkAccess: access(2) reports existence and permissions as the kernel would enforce
// them: execute needs an x bit even for root, read and write follow the mode for others.
func checkAccess(t *testing.T, e *env) {
	writeFile(t, e.path("f644"), nil)
	writeFile(t, e.path("f755"), nil)
	writeFile(t, e.path("f000"), nil)
	must(t, os.Chmod(e.path("f644"), 0o644), "chmod")
	must(t, os.Chmod(e.path("f755"), 0o755), "chmod")
	must(t, os.Chmod(e.path("f000"), 0), "chmod")
	root := os.Geteuid() == 0
	cases := []struct {
		name string
		mode uint32
		want error
	}{
		{"f644", unix.F_OK, nil},
		{"f644", unix.R_OK | unix.W_OK, nil},
		{"f644", unix.X_OK, unix.EACCES},
		{"f755", unix.X_OK, nil},
		{"f755", unix.R_OK | unix.W_OK | unix.X_OK, nil},
		{"f000", unix.F_OK, nil},
		{"f000", unix.X_OK, unix.EACCES},
		{"missing", unix.F_OK, unix.ENOENT},
	}
	if root {
		cases = append(cases, struct {
			name string
			mode uint32
			want error
		}{"f000", unix.R_OK | unix.W_OK, nil})
	} else {
		cases = append(cases, struct {
			name string
			mode uint32
			want error
		}{"f000", unix.R_OK, unix.EACCES})
	}
	for _, c := range cases {
		err := unix.Faccessat(unix.AT_FDCWD, e.path(c.name), c.mode, 0)
		if errnoName(err) != errnoName(c.want) {
			t.Errorf("access(%s, %d): %s, want %s", c.name, c.mode, errnoName(err), errnoName(c.want))
		}
	}
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	if err := unix.Faccessat(unix.AT_FDCWD, e.path("d"), unix.X_OK, 0); err != nil {
		t.Errorf("access(dir, X_OK): %v", err)
	}
}

// checkOwnerWithoutPermission: for a non-root owner the mode bits apply to itself (root
// bypasses them, so the check needs a non-root identity: itself or a child process).
func checkOwnerWithoutPermission(t *testing.T, e *env) {
	if os.Geteuid() != 0 {
		writeFile(t, e.path("f"), []byte("x"))
		must(t, os.Chmod(e.path("f"), 0o200), "chmod")
		_, err := openFile(e.path("f"), unix.O_RDONLY, 0)
		wantErrno(t, err, unix.EACCES, "owner opens a 0200 file for reading")
		must(t, os.Chmod(e.path("f"), 0o400), "chmod")
		_, err = openFile(e.path("f"), unix.O_WRONLY, 0)
		wantErrno(t, err, unix.EACCES, "owner opens a 0400 file for writing")
		return
	}
	if e.opts.NoOtherUsers {
		t.Skip("Options.NoOtherUsers: only the mounting user may use the filesystem")
	}
	writeFile(t, e.path("f"), []byte("x"))
	must(t, os.Chown(e.path("f"), otherID, otherID), "chown")
	must(t, os.Chmod(e.path("f"), 0o200), "chmod")
	req := asOther("open", "f")
	wantErrno(t, runHelper(t, e.dir, req), unix.EACCES, "owner opens a 0200 file for reading")
	must(t, os.Chmod(e.path("f"), 0o400), "chmod")
	req.Flags = unix.O_WRONLY
	wantErrno(t, runHelper(t, e.dir, req), unix.EACCES, "owner opens a 0400 file for writing")
	must(t, os.Chmod(e.path("f"), 0o600), "chmod")
	req.Flags = unix.O_RDWR
	must(t, runHelper(t, e.dir, req), "owner opens a 0600 file read-write")
}

// otherUserCase is one operation of another user on entries that root set up.
type otherUserCase struct {
	name  string
	setup func(t *testing.T, dir string) // runs as root in a fresh directory
	req   helperRequest
	want  error                          // errno, or nil for success
	after func(t *testing.T, dir string) // optional checks as root afterwards
}

// otherUserCases: classic permission semantics for a user that owns nothing; the first
// successful cases are the positive controls that show the user can use the filesystem at
// all.
func otherUserCases() []otherUserCase {
	file := func(name string, mode uint32, uid int) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := dir + "/" + name
			writeFile(t, p, []byte("secret"))
			must(t, os.Chown(p, uid, uid), "chown")
			must(t, unix.Chmod(p, mode), "chmod")
		}
	}
	subdir := func(mode uint32, files ...string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			must(t, os.Mkdir(dir+"/d", 0o755), "mkdir")
			for _, f := range files {
				writeFile(t, dir+"/d/"+f, []byte("x"))
				must(t, os.Chmod(dir+"/d/"+f, 0o666), "chmod")
			}
			must(t, unix.Chmod(dir+"/d", mode), "chmod")
		}
	}
	req := func(op, name string, flags int, mode uint32) helperRequest {
		r := asOther(op, name)
		r.Flags, r.Mode = flags, mode
		return r
	}
	modeIs := func(name string, want uint32) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if got := lstat(t, dir+"/"+name).Mode & 0o7777; got != want {
				t.Errorf("%s: mode %04o, want %04o", name, got, want)
			}
		}
	}
	return []otherUserCase{
		{name: "read 0644 file (control)", setup: file("f", 0o644, 0), req: req("open", "f", unix.O_RDONLY, 0)},
		{name: "create in 0777 dir (control)", setup: subdir(0o777), req: req("open", "d/new", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644),
			after: func(t *testing.T, dir string) {
				st := lstat(t, dir+"/d/new")
				if st.Uid != otherID || st.Gid != otherID {
					t.Errorf("file created by uid %d is owned by %d:%d", otherID, st.Uid, st.Gid)
				}
			}},
		{name: "read 0600 file", setup: file("f", 0o600, 0), req: req("open", "f", unix.O_RDONLY, 0), want: unix.EACCES},
		{name: "write 0644 file", setup: file("f", 0o644, 0), req: req("open", "f", unix.O_WRONLY, 0), want: unix.EACCES},
		{name: "truncate 0644 file", setup: file("f", 0o644, 0), req: req("open", "f", unix.O_RDONLY|unix.O_TRUNC, 0), want: unix.EACCES,
			after: func(t *testing.T, dir string) {
				if got := readFile(t, dir+"/f"); string(got) != "secret" {
					t.Errorf("denied O_TRUNC changed the file to %q", got)
				}
			}},
		{name: "read-write own 0600 file", setup: file("f", 0o600, otherID), req: req("open", "f", unix.O_RDWR, 0)},
		{name: "create in 0755 dir", setup: subdir(0o755), req: req("open", "d/new", unix.O_WRONLY|unix.O_CREAT, 0o644), want: unix.EACCES},
		{name: "mkdir in 0755 dir", setup: subdir(0o755), req: req("mkdir", "d/new", 0, 0o755), want: unix.EACCES},
		{name: "unlink in 0755 dir", setup: subdir(0o755, "f"), req: req("unlink", "d/f", 0, 0), want: unix.EACCES},
		{name: "search 0700 dir", setup: subdir(0o700, "f"), req: req("open", "d/f", unix.O_RDONLY, 0), want: unix.EACCES},
		{name: "search 0711 dir", setup: subdir(0o711, "f"), req: req("open", "d/f", unix.O_RDONLY, 0)},
		{name: "list 0711 dir", setup: subdir(0o711, "f"), req: req("open", "d", unix.O_RDONLY|unix.O_DIRECTORY, 0), want: unix.EACCES},
		{name: "unlink other's file in sticky dir", setup: subdir(0o1777, "f"), req: req("unlink", "d/f", 0, 0), want: unix.EPERM},
		{name: "unlink other's file in non-sticky 0777 dir", setup: subdir(0o777, "f"), req: req("unlink", "d/f", 0, 0)},
		{name: "access R_OK 0600 file", setup: file("f", 0o600, 0), req: req("access", "f", unix.R_OK, 0), want: unix.EACCES},
		{name: "access R_OK 0644 file", setup: file("f", 0o644, 0), req: req("access", "f", unix.R_OK, 0)},
		{name: "access W_OK 0644 file", setup: file("f", 0o644, 0), req: req("access", "f", unix.W_OK, 0), want: unix.EACCES},
		{name: "access W_OK 0666 file", setup: file("f", 0o666, 0), req: req("access", "f", unix.W_OK, 0)},
		{name: "chmod other's file", setup: file("f", 0o666, 0), req: req("chmod", "f", 0, 0o777), want: unix.EPERM,
			after: modeIs("f", 0o666)},
		{name: "chmod own file", setup: file("f", 0o600, otherID), req: req("chmod", "f", 0, 0o640), after: modeIs("f", 0o640)},
		{name: "utimes now on writable other's file", setup: file("f", 0o666, 0), req: req("utimes-now", "f", 0, 0)},
		{name: "utimes explicit on writable other's file", setup: file("f", 0o666, 0), req: req("utimes-past", "f", 0, 0), want: unix.EPERM},
		{name: "setxattr on other's 0644 file", setup: file("f", 0o644, 0), req: req("setxattr", "f", 0, 0), want: unix.EACCES},
		{name: "write clears setuid", setup: file("f", 0o4777, 0),
			req:   helperRequest{UID: otherID, GID: otherID, Umask: -1, Op: "open", Name: "f", Flags: unix.O_WRONLY, Data: []byte("w")},
			after: modeIs("f", 0o777)},
		{name: "write clears setgid of group-executable file", setup: file("f", 0o2777, 0),
			req:   helperRequest{UID: otherID, GID: otherID, Umask: -1, Op: "open", Name: "f", Flags: unix.O_WRONLY, Data: []byte("w")},
			after: modeIs("f", 0o777)},
		{name: "O_TRUNC clears setuid and setgid", setup: file("f", 0o6777, 0),
			req: req("open", "f", unix.O_WRONLY|unix.O_TRUNC, 0),
			after: func(t *testing.T, dir string) {
				modeIs("f", 0o777)(t, dir)
				if got := readFile(t, dir+"/f"); len(got) != 0 {
					t.Errorf("O_TRUNC left %q", got)
				}
			}},
	}
}

// checkOtherUser runs otherUserCases as uid/gid 65534 in child processes (root only).
func checkOtherUser(t *testing.T, e *env) {
	if os.Geteuid() != 0 {
		t.Skip("acting as another user needs root")
	}
	if e.opts.NoOtherUsers {
		t.Skip("Options.NoOtherUsers: only the mounting user may use the filesystem")
	}
	for i, c := range otherUserCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := e.path(fmt.Sprintf("case%02d", i))
			must(t, os.Mkdir(dir, 0o755), "mkdir")
			must(t, os.Chmod(dir, 0o755), "chmod")
			c.setup(t, dir)
			err := runHelper(t, dir, c.req)
			if errnoName(err) != errnoName(c.want) {
				t.Errorf("uid %d: %s %q: %s, want %s", otherID, c.req.Op, c.req.Name, errnoName(err), errnoName(c.want))
			}
			if c.after != nil {
				c.after(t, dir)
			}
			if st, err := os.Lstat(dir + "/d"); err == nil && st.IsDir() {
				must(t, os.Chmod(dir+"/d", 0o755), "chmod")
			}
		})
	}
}

func ownershipChecks() []check {
	return []check{
		{"CreatorOwns", checkCreatorOwns},
		{"Chown", checkChown},
		{"Lchown", checkLchown},
		{"ChownClearsSetuid", checkChownClearsSetuid},
		{"SetgidDirectory", checkSetgidDirectory},
	}
}

// checkCreatorOwns: new entries of every kind belong to the effective uid and gid.
func checkCreatorOwns(t *testing.T, e *env) {
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	writeFile(t, e.path("f"), nil)
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	must(t, os.Symlink("f", e.path("l")), "symlink")
	must(t, unix.Mkfifo(e.path("p"), 0o644), "mkfifo")
	for _, n := range []string{"f", "d", "l", "p"} {
		if st := lstat(t, e.path(n)); st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", n, st.Uid, st.Gid, uid, gid)
		}
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing ownership needs root")
	}
}

// checkChown: chown, fchown and partial chown (-1 keeps a field) as root.
func checkChown(t *testing.T, e *env) {
	needRoot(t)
	p := e.path("f")
	writeFile(t, p, []byte("x"))
	must(t, os.Chown(p, 1234, 5678), "chown")
	if st := lstat(t, p); st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("after chown 1234:5678: %d:%d", st.Uid, st.Gid)
	}
	must(t, os.Chown(p, -1, 42), "chown -1:42")
	if st := lstat(t, p); st.Uid != 1234 || st.Gid != 42 {
		t.Errorf("after chown -1:42: %d:%d", st.Uid, st.Gid)
	}
	must(t, os.Chown(p, 7, -1), "chown 7:-1")
	if st := lstat(t, p); st.Uid != 7 || st.Gid != 42 {
		t.Errorf("after chown 7:-1: %d:%d", st.Uid, st.Gid)
	}
	f := mustOpen(t, p, unix.O_RDONLY, 0)
	must(t, unix.Fchown(fd(f), otherID, otherID), "fchown")
	if st := fstat(t, f); st.Uid != otherID || st.Gid != otherID {
		t.Errorf("after fchown: %d:%d", st.Uid, st.Gid)
	}
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	must(t, os.Chown(e.path("d"), 1, 2), "chown dir")
	if st := lstat(t, e.path("d")); st.Uid != 1 || st.Gid != 2 {
		t.Errorf("dir after chown 1:2: %d:%d", st.Uid, st.Gid)
	}
	if got := readFile(t, p); string(got) != "x" {
		t.Errorf("content after chown: %q", got)
	}
}

// checkLchown: lchown changes the symlink, chown through it the target.
func checkLchown(t *testing.T, e *env) {
	needRoot(t)
	writeFile(t, e.path("f"), nil)
	must(t, os.Symlink("f", e.path("l")), "symlink")
	must(t, os.Lchown(e.path("l"), 11, 22), "lchown")
	if st := lstat(t, e.path("l")); st.Uid != 11 || st.Gid != 22 {
		t.Errorf("symlink after lchown: %d:%d", st.Uid, st.Gid)
	}
	if st := lstat(t, e.path("f")); st.Uid != 0 || st.Gid != uint32(os.Getegid()) {
		t.Errorf("lchown changed the target to %d:%d", st.Uid, st.Gid)
	}
	must(t, os.Chown(e.path("l"), 33, 44), "chown through symlink")
	if st := lstat(t, e.path("f")); st.Uid != 33 || st.Gid != 44 {
		t.Errorf("target after chown through symlink: %d:%d", st.Uid, st.Gid)
	}
	if st := lstat(t, e.path("l")); st.Uid != 11 || st.Gid != 22 {
		t.Errorf("chown through symlink changed the symlink to %d:%d", st.Uid, st.Gid)
	}
}

// checkChownClearsSetuid: changing the owner of a regular file clears set-user-ID, and
// set-group-ID when group-executable, even for root; directories keep theirs.
func checkChownClearsSetuid(t *testing.T, e *env) {
	needRoot(t)
	cases := []struct {
		mode, want uint32
	}{
		{0o4755, 0o755},
		{0o6755, 0o755},
		{0o2755, 0o755},
		{0o2745, 0o2745}, // set-group-ID without group execute means mandatory locking: kept
		{0o1755, 0o1755},
	}
	for i, c := range cases {
		p := e.path(fmt.Sprintf("f%d", i))
		writeFile(t, p, nil)
		must(t, unix.Chmod(p, c.mode), "chmod")
		must(t, os.Chown(p, otherID, otherID), "chown")
		if got := lstat(t, p).Mode & 0o7777; got != c.want {
			t.Errorf("chown of a %04o file: mode %04o, want %04o", c.mode, got, c.want)
		}
	}
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	must(t, unix.Chmod(e.path("d"), 0o2775), "chmod")
	must(t, os.Chown(e.path("d"), otherID, otherID), "chown")
	if got := lstat(t, e.path("d")).Mode & 0o7777; got != 0o2775 {
		t.Errorf("chown of a 2775 directory: mode %04o, want 2775", got)
	}
}

// checkSetgidDirectory: in a set-group-ID directory new entries take the directory's group,
// and new subdirectories inherit the set-group-ID bit.
func checkSetgidDirectory(t *testing.T, e *env) {
	needRoot(t)
	d := e.path("sg")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	must(t, os.Chown(d, 0, 4321), "chown")
	must(t, unix.Chmod(d, 0o2775), "chmod")
	writeFile(t, d+"/f", nil)
	must(t, os.Mkdir(d+"/sub", 0o755), "mkdir")
	must(t, os.Symlink("f", d+"/l"), "symlink")
	for _, n := range []string{"f", "sub", "l"} {
		if st := lstat(t, d+"/"+n); st.Gid != 4321 {
			t.Errorf("%s in a set-group-ID directory: gid %d, want 4321", n, st.Gid)
		}
	}
	if m := lstat(t, d+"/sub").Mode; m&unix.S_ISGID == 0 {
		t.Errorf("subdirectory of a set-group-ID directory has mode %o, want set-group-ID", m)
	}
	if m := lstat(t, d+"/f").Mode; m&unix.S_ISGID != 0 {
		t.Errorf("file in a set-group-ID directory has mode %o, want no set-group-ID", m)
	}
}
