package fstest

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func unlinkedOpenChecks() []check {
	return []check{
		{"ReadWrite", checkUnlinkedReadWrite},
		{"NameReused", checkUnlinkedNameReused},
		{"Attributes", checkUnlinkedAttributes},
	}
}

// checkUnlinkedReadWrite: after unlink, an open descriptor keeps reading and writing the
// file, fstat works with link count 0, and the name is gone.
func checkUnlinkedReadWrite(t *testing.T, e *env) {
	p := e.path("f")
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT, 0o644)
	data := randBytes(1, 3*4096+5)
	pwrite(t, f, data, 0)
	r := mustOpen(t, p, unix.O_RDONLY, 0)
	must(t, os.Remove(p), "unlink")
	if exists(t, p) {
		t.Fatalf("name still exists after unlink")
	}
	checkNames(t, listDir(t, e.dir), nil, "listing after unlink")
	st := fstat(t, f)
	if st.Nlink != 0 || st.Size != int64(len(data)) {
		t.Errorf("fstat after unlink: link count %d size %d, want 0 and %d", st.Nlink, st.Size, len(data))
	}
	checkBytes(t, readAt(t, f, len(data), 0), data, "read after unlink")
	more := randBytes(2, 10000)
	pwrite(t, f, more, int64(len(data))+100)
	want := append(append(append([]byte{}, data...), make([]byte, 100)...), more...)
	checkBytes(t, readAt(t, f, len(want), 0), want, "write after unlink, same descriptor")
	checkBytes(t, readAt(t, r, len(want), 0), want, "write after unlink, other descriptor")
	must(t, f.Truncate(4096), "ftruncate after unlink")
	checkBytes(t, pread(t, r, len(want), 0), want[:4096], "after ftruncate of the unlinked file")
	must(t, unix.Fsync(fd(f)), "fsync after unlink")
	if st := fstat(t, r); st.Size != 4096 || st.Nlink != 0 {
		t.Errorf("fstat of the other descriptor: size %d link count %d", st.Size, st.Nlink)
	}
}

// checkUnlinkedNameReused: a new file under the name of an unlinked open file is separate.
func checkUnlinkedNameReused(t *testing.T, e *env) {
	p := e.path("f")
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT, 0o644)
	pwrite(t, f, []byte("old file"), 0)
	oldIno := fstat(t, f).Ino
	must(t, os.Remove(p), "unlink")
	writeFile(t, p, []byte("new"))
	pwrite(t, f, []byte("OLD"), 0)
	if got := readFile(t, p); string(got) != "new" {
		t.Errorf("new file reads %q after writing to the unlinked one", got)
	}
	if got := pread(t, f, 100, 0); string(got) != "OLD file" {
		t.Errorf("unlinked file reads %q", got)
	}
	if ino := lstat(t, p).Ino; ino == oldIno {
		t.Errorf("new file has the inode number %d of the still open unlinked file", ino)
	}
}

// checkUnlinkedAttributes: fchmod, fchown (root) and xattrs work on an unlinked open file.
func checkUnlinkedAttributes(t *testing.T, e *env) {
	p := e.path("f")
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT, 0o644)
	must(t, os.Remove(p), "unlink")
	must(t, unix.Fchmod(fd(f), 0o600), "fchmod after unlink")
	if m := fstat(t, f).Mode & 0o7777; m != 0o600 {
		t.Errorf("mode after fchmod %o", m)
	}
	if os.Geteuid() == 0 {
		must(t, unix.Fchown(fd(f), otherID, otherID), "fchown after unlink")
		if st := fstat(t, f); st.Uid != otherID || st.Gid != otherID {
			t.Errorf("owner after fchown %d:%d", st.Uid, st.Gid)
		}
	}
	must(t, unix.Fsetxattr(fd(f), "user.u", []byte("v"), 0), "fsetxattr after unlink")
	buf := make([]byte, 8)
	n, err := unix.Fgetxattr(fd(f), "user.u", buf)
	must(t, err, "fgetxattr after unlink")
	if string(buf[:n]) != "v" {
		t.Errorf("fgetxattr after unlink: %q", buf[:n])
	}
	must(t, unix.UtimesNanoAt(fd(f), "", []unix.Timespec{pastTime, pastTime}, unix.AT_EMPTY_PATH), "futimens after unlink")
	if st := fstat(t, f); st.Mtim != pastTime {
		t.Errorf("mtime after futimens %s", tsString(st.Mtim))
	}
}

func miscChecks() []check {
	return []check{
		{"Statfs", checkStatfs},
		{"Fsync", checkFsync},
		{"Mmap", checkMmap},
	}
}

// checkStatfs: statfs and fstatfs report sane, consistent values and the name length limit.
func checkStatfs(t *testing.T, e *env) {
	var st unix.Statfs_t
	must(t, unix.Statfs(e.dir, &st), "statfs")
	if st.Bsize <= 0 || st.Blocks == 0 || st.Bfree > st.Blocks || st.Bavail > st.Bfree {
		t.Errorf("statfs: bsize %d blocks %d bfree %d bavail %d", st.Bsize, st.Blocks, st.Bfree, st.Bavail)
	}
	if st.Files != 0 && st.Ffree > st.Files {
		t.Errorf("statfs: files %d ffree %d", st.Files, st.Ffree)
	}
	if int(st.Namelen) != e.opts.MaxNameLen {
		t.Errorf("statfs: namelen %d, want MaxNameLen %d", st.Namelen, e.opts.MaxNameLen)
	}
	if st.Frsize <= 0 {
		t.Errorf("statfs: frsize %d", st.Frsize)
	}
	writeFile(t, e.path("f"), []byte("x"))
	f := mustOpen(t, e.path("f"), unix.O_RDONLY, 0)
	var fst unix.Statfs_t
	must(t, unix.Fstatfs(fd(f), &fst), "fstatfs")
	if fst.Type != st.Type || fst.Bsize != st.Bsize || fst.Blocks != st.Blocks || fst.Namelen != st.Namelen {
		t.Errorf("fstatfs of a file disagrees with statfs of its directory: %+v vs %+v", fst, st)
	}
}

// checkFsync: fsync and fdatasync succeed on files (also read-only descriptors) and
// directories, and syncfs on the filesystem; the data is intact afterwards.
func checkFsync(t *testing.T, e *env) {
	p := e.path("f")
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT, 0o644)
	data := randBytes(3, 100000)
	pwrite(t, f, data, 0)
	must(t, retry0(func() error { return unix.Fsync(fd(f)) }), "fsync")
	pwrite(t, f, []byte("more"), 50000)
	copy(data[50000:], "more")
	must(t, retry0(func() error { return unix.Fdatasync(fd(f)) }), "fdatasync")
	r := mustOpen(t, p, unix.O_RDONLY, 0)
	must(t, retry0(func() error { return unix.Fsync(fd(r)) }), "fsync of a read-only descriptor")
	d := mustOpen(t, e.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, retry0(func() error { return unix.Fsync(fd(d)) }), "fsync of a directory")
	must(t, retry0(func() error { return unix.Syncfs(fd(d)) }), "syncfs")
	must(t, f.Close(), "close")
	checkBytes(t, readFile(t, p), data, "after fsync")
}

// checkMmap: a shared writable mapping writes through to the file (msync), a read-only
// mapping sees data written with write(2), and both agree with pread.
func checkMmap(t *testing.T, e *env) {
	p := e.path("f")
	const size = 3*4096 + 100
	data := randBytes(4, size)
	writeFile(t, p, data)
	f := mustOpen(t, p, unix.O_RDWR, 0)
	m, err := unix.Mmap(fd(f), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	must(t, err, "mmap")
	checkBytes(t, m, data, "mapping of existing data")
	// Write across the page boundaries and into the last, partial page.
	patch := randBytes(5, 5000)
	copy(m[4000:], patch)
	copy(data[4000:], patch)
	m[size-1] = 0xEE
	data[size-1] = 0xEE
	must(t, unix.Msync(m, unix.MS_SYNC), "msync")
	must(t, unix.Munmap(m), "munmap")
	checkBytes(t, readAt(t, f, size, 0), data, "pread after msync")
	if st := fstat(t, f); st.Size != size {
		t.Errorf("size after mmap write %d, want %d", st.Size, size)
	}
	f.Close()
	checkBytes(t, readFile(t, p), data, "new descriptor after munmap and close")

	// write(2) then a read-only mapping through another descriptor.
	g := mustOpen(t, p, unix.O_RDWR, 0)
	pwrite(t, g, []byte("written"), 8190)
	copy(data[8190:], "written")
	r := mustOpen(t, p, unix.O_RDONLY, 0)
	ro, err := unix.Mmap(fd(r), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	must(t, err, "mmap read-only")
	checkBytes(t, ro, data, "read-only mapping after write")
	must(t, unix.Munmap(ro), "munmap")

	// A private mapping's changes never reach the file.
	pm, err := unix.Mmap(fd(g), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	must(t, err, "mmap private")
	copy(pm, "private")
	must(t, unix.Munmap(pm), "munmap")
	checkBytes(t, readFile(t, p), data, "after writing a private mapping")
}
