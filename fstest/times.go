package fstest

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func timestampChecks() []check {
	return []check{
		{"Nanoseconds", checkTimesNanoseconds},
		{"Omit", checkTimesOmit},
		{"Now", checkTimesNow},
		{"Futimens", checkFutimens},
		{"WriteUpdatesMtime", checkWriteUpdatesMtime},
		{"TruncateUpdatesMtime", checkTruncateUpdatesMtime},
		{"ReadKeepsMtime", checkReadKeepsMtime},
		{"ChangeUpdatesCtime", checkChangeUpdatesCtime},
		{"DirectoryMtime", checkDirectoryMtime},
	}
}

// utimens sets the times of path; flags may hold AT_SYMLINK_NOFOLLOW.
func utimens(path string, atime, mtime unix.Timespec, flags int) error {
	return retry0(func() error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{atime, mtime}, flags)
	})
}

// checkTimes reports an error unless path's atime and mtime are exactly the given ones.
func checkTimes(t *testing.T, path string, atime, mtime unix.Timespec, what string) {
	t.Helper()
	st := lstat(t, path)
	if st.Atim != atime || st.Mtim != mtime {
		t.Errorf("%s: atime %s mtime %s, want %s and %s", what,
			tsString(st.Atim), tsString(st.Mtim), tsString(atime), tsString(mtime))
	}
}

// checkTimesNanoseconds: utimensat stores atime and mtime with full nanosecond precision on
// files, directories and (with AT_SYMLINK_NOFOLLOW) symlinks, including times before 1970
// and after 2038; setting a symlink's times leaves its target alone.
func checkTimesNanoseconds(t *testing.T, e *env) {
	writeFile(t, e.path("f"), []byte("x"))
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	must(t, os.Symlink("f", e.path("l")), "symlink")
	type timePair struct {
		name         string
		atime, mtime unix.Timespec
	}
	times := []timePair{
		{"nanoseconds", ts(1234567890, 123456789), ts(1500000000, 987654321)},
		{"one nanosecond", ts(1, 1), ts(0, 999999999)},
		{"epoch", ts(0, 0), ts(0, 0)},
		{"after 2038", ts(1<<31+12345, 999999999), ts(4102444800, 1)}, // 2100-01-01
	}
	if !e.opts.NegativeTimesUnreliable {
		times = append(times, timePair{"before 1970", ts(-86400*365*5, 500), ts(-1, 1)})
	}
	fileTimes := ts(1111111111, 111111111)
	for _, kind := range []struct {
		name  string
		flags int
	}{{"f", 0}, {"d", 0}, {"l", unix.AT_SYMLINK_NOFOLLOW}} {
		for _, c := range times {
			must(t, utimens(e.path("f"), fileTimes, fileTimes, 0), "utimens f")
			must(t, utimens(e.path(kind.name), c.atime, c.mtime, kind.flags), "utimens %s %s", kind.name, c.name)
			checkTimes(t, e.path(kind.name), c.atime, c.mtime, kind.name+" "+c.name)
			if kind.name == "l" {
				checkTimes(t, e.path("f"), fileTimes, fileTimes, "symlink target after lutimes")
			}
		}
	}
	// Without AT_SYMLINK_NOFOLLOW the target is changed. (Following the link may update its
	// atime, so only its mtime is compared.)
	link := lstat(t, e.path("l"))
	must(t, utimens(e.path("l"), ts(5, 5), ts(6, 6), 0), "utimens through symlink")
	checkTimes(t, e.path("f"), ts(5, 5), ts(6, 6), "target after utimens through symlink")
	if m := lstat(t, e.path("l")).Mtim; m != link.Mtim {
		t.Errorf("utimens through a symlink changed the symlink's mtime to %s", tsString(m))
	}
}

// checkTimesOmit: UTIME_OMIT leaves the one timestamp alone and sets the other.
func checkTimesOmit(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, []byte("x"))
	a0, m0 := ts(1000000001, 1), ts(1000000002, 2)
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
	must(t, utimens(p, a0, m0, 0), "utimens")
	must(t, utimens(p, omit, ts(1300000000, 3), 0), "utimens atime omitted")
	checkTimes(t, p, a0, ts(1300000000, 3), "atime omitted")
	must(t, utimens(p, ts(1400000000, 4), omit, 0), "utimens mtime omitted")
	checkTimes(t, p, ts(1400000000, 4), ts(1300000000, 3), "mtime omitted")
	must(t, utimens(p, omit, omit, 0), "utimens both omitted")
	checkTimes(t, p, ts(1400000000, 4), ts(1300000000, 3), "both omitted")
}

// checkTimesNow: UTIME_NOW sets the current time (within a generous margin that only
// catches garbage) on one timestamp and leaves the other alone if omitted.
func checkTimesNow(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, []byte("x"))
	must(t, utimens(p, pastTime, pastTime, 0), "utimens")
	before := time.Now()
	must(t, utimens(p, unix.Timespec{Nsec: unix.UTIME_OMIT}, unix.Timespec{Nsec: unix.UTIME_NOW}, 0), "utimens mtime now")
	after := time.Now()
	st := lstat(t, p)
	if m := time.Unix(st.Mtim.Unix()); m.Before(before.Add(-2*time.Second)) || m.After(after.Add(2*time.Second)) {
		t.Errorf("UTIME_NOW set mtime %v, want about %v", m, before)
	}
	if st.Atim != pastTime {
		t.Errorf("atime changed to %s though omitted", tsString(st.Atim))
	}
	must(t, utimens(p, unix.Timespec{Nsec: unix.UTIME_NOW}, unix.Timespec{Nsec: unix.UTIME_OMIT}, 0), "utimens atime now")
	st2 := lstat(t, p)
	if a := time.Unix(st2.Atim.Unix()); a.Before(before.Add(-2 * time.Second)) {
		t.Errorf("UTIME_NOW set atime %v, want about %v", a, before)
	}
	if st2.Mtim != st.Mtim {
		t.Errorf("mtime changed to %s though omitted", tsString(st2.Mtim))
	}
	// utimes(NULL) sets both to now.
	must(t, utimens(p, pastTime, pastTime, 0), "utimens")
	must(t, retry0(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, p, nil, 0) }), "utimensat(NULL)")
	st3 := lstat(t, p)
	if st3.Atim == pastTime || st3.Mtim == pastTime {
		t.Errorf("utimensat(NULL) left atime %s mtime %s", tsString(st3.Atim), tsString(st3.Mtim))
	}
}

// checkFutimens: setting times through a descriptor (futimens) works like by path.
func checkFutimens(t *testing.T, e *env) {
	p := e.path("f")
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT, 0o644)
	pwrite(t, f, []byte("data"), 0)
	a, m := ts(1600000000, 111), ts(1600000001, 222)
	must(t, retry0(func() error {
		return unix.UtimesNanoAt(fd(f), "", []unix.Timespec{a, m}, unix.AT_EMPTY_PATH)
	}), "futimens")
	checkTimes(t, p, a, m, "after futimens")
	f.Close()
	checkTimes(t, p, a, m, "after futimens and close")
}

// checkWriteUpdatesMtime: a write moves mtime and ctime forward, observed both before and
// after close.
func checkWriteUpdatesMtime(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, []byte("0123456789"))
	for _, how := range []string{"write", "write and close"} {
		f := mustOpen(t, p, unix.O_WRONLY, 0)
		must(t, utimens(p, pastTime, pastTime, 0), "utimens")
		st0 := lstat(t, p)
		waitClockPast(t, e, st0.Ctim)
		pwrite(t, f, []byte("x"), 3)
		if how == "write and close" {
			f.Close()
		}
		st := lstat(t, p)
		if !tsLess(pastTime, st.Mtim) {
			t.Errorf("%s: mtime %s not moved forward from %s", how, tsString(st.Mtim), tsString(pastTime))
		}
		if !tsLess(st0.Ctim, st.Ctim) {
			t.Errorf("%s: ctime %s not after %s", how, tsString(st.Ctim), tsString(st0.Ctim))
		}
		// atime is not compared: whether anything updates it depends on the mount's atime
		// policy, and a stacked filesystem reads its lower file to rewrite a block.
		f.Close()
	}
}

// checkTruncateUpdatesMtime: truncate, ftruncate and O_TRUNC that change the size move mtime
// and ctime forward.
func checkTruncateUpdatesMtime(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, randBytes(1, 10000))
	ops := []struct {
		name string
		fn   func() error
	}{
		{"truncate down", func() error { return unix.Truncate(p, 5000) }},
		{"truncate up", func() error { return unix.Truncate(p, 9000) }},
		{"ftruncate", func() error {
			f, err := openFile(p, unix.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			return unix.Ftruncate(fd(f), 100)
		}},
		{"O_TRUNC", func() error {
			f, err := openFile(p, unix.O_WRONLY|unix.O_TRUNC, 0)
			if err != nil {
				return err
			}
			return f.Close()
		}},
	}
	for _, op := range ops {
		must(t, utimens(p, pastTime, pastTime, 0), "utimens")
		st0 := lstat(t, p)
		waitClockPast(t, e, st0.Ctim)
		must(t, op.fn(), "%s", op.name)
		st := lstat(t, p)
		if !tsLess(pastTime, st.Mtim) || !tsLess(st0.Ctim, st.Ctim) {
			t.Errorf("%s: mtime %s ctime %s, want both moved forward from %s and %s", op.name,
				tsString(st.Mtim), tsString(st.Ctim), tsString(pastTime), tsString(st0.Ctim))
		}
	}
}

// checkReadKeepsMtime: reading a file changes neither mtime nor ctime.
func checkReadKeepsMtime(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, randBytes(2, 10000))
	must(t, utimens(p, pastTime, pastTime, 0), "utimens")
	st0 := lstat(t, p)
	waitClockPast(t, e, st0.Ctim)
	_ = readFile(t, p)
	st := lstat(t, p)
	if st.Mtim != pastTime || st.Ctim != st0.Ctim {
		t.Errorf("read changed mtime to %s or ctime to %s (were %s and %s)",
			tsString(st.Mtim), tsString(st.Ctim), tsString(pastTime), tsString(st0.Ctim))
	}
}

// checkChangeUpdatesCtime: inode changes (chmod, chown, link, unlink of another name,
// rename, setxattr) move ctime forward and leave mtime alone.
func checkChangeUpdatesCtime(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, []byte("x"))
	ops := []struct {
		name string
		root bool
		fn   func() error
	}{
		{"chmod", false, func() error { return unix.Chmod(p, 0o600) }},
		{"chown", true, func() error { return unix.Chown(p, otherID, otherID) }},
		{"link", false, func() error { return unix.Link(p, e.path("g")) }},
		{"unlink other name", false, func() error { return unix.Unlink(e.path("g")) }},
		{"setxattr", false, func() error { return unix.Setxattr(p, "user.ctime", []byte("v"), 0) }},
		{"removexattr", false, func() error { return unix.Removexattr(p, "user.ctime") }},
	}
	for _, op := range ops {
		if op.root && os.Geteuid() != 0 {
			continue
		}
		must(t, utimens(p, pastTime, pastTime, 0), "utimens")
		st0 := lstat(t, p)
		waitClockPast(t, e, st0.Ctim)
		must(t, op.fn(), "%s", op.name)
		st := lstat(t, p)
		if !tsLess(st0.Ctim, st.Ctim) {
			t.Errorf("%s: ctime %s not after %s", op.name, tsString(st.Ctim), tsString(st0.Ctim))
		}
		if st.Mtim != pastTime {
			t.Errorf("%s: mtime changed to %s", op.name, tsString(st.Mtim))
		}
	}
}

// checkDirectoryMtime: creating, removing and renaming entries moves the directory's mtime
// and ctime forward.
func checkDirectoryMtime(t *testing.T, e *env) {
	d := e.path("d")
	must(t, os.Mkdir(d, 0o755), "mkdir")
	must(t, os.Mkdir(e.path("other"), 0o755), "mkdir")
	ops := []struct {
		name string
		fn   func() error
	}{
		{"create file", func() error { return os.WriteFile(d+"/f", nil, 0o644) }},
		{"mkdir", func() error { return unix.Mkdir(d+"/sub", 0o755) }},
		{"symlink", func() error { return unix.Symlink("f", d+"/l") }},
		{"mkfifo", func() error { return unix.Mkfifo(d+"/p", 0o644) }},
		{"link", func() error { return unix.Link(d+"/f", d+"/h") }},
		{"rename within", func() error { return unix.Rename(d+"/h", d+"/h2") }},
		{"rename out", func() error { return unix.Rename(d+"/h2", e.path("other", "h")) }},
		{"rename in", func() error { return unix.Rename(e.path("other", "h"), d+"/h3") }},
		{"unlink", func() error { return unix.Unlink(d + "/h3") }},
		{"rmdir", func() error { return unix.Rmdir(d + "/sub") }},
	}
	for _, op := range ops {
		must(t, utimens(d, pastTime, pastTime, 0), "utimens")
		st0 := lstat(t, d)
		waitClockPast(t, e, st0.Ctim)
		must(t, op.fn(), "%s", op.name)
		st := lstat(t, d)
		if !tsLess(pastTime, st.Mtim) || !tsLess(st0.Ctim, st.Ctim) {
			t.Errorf("%s: directory mtime %s ctime %s, want both moved forward from %s and %s", op.name,
				tsString(st.Mtim), tsString(st.Ctim), tsString(pastTime), tsString(st0.Ctim))
		}
	}
}
