package fstest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func sparseChecks() []check {
	return []check{
		{"Hole100MiB", func(t *testing.T, e *env) { checkSparseAt(t, e, 100*mib+3) }},
		{"HoleBeyond4GiB", func(t *testing.T, e *env) { checkSparseAt(t, e, 1<<32+5) }},
		{"Across4GiB", checkAcross4GiB},
		{"HoleBetweenData", checkHoleBetweenData},
	}
}

// checkSparseAt writes a few blocks at off into an empty file: the size must be exact, the
// hole must read as zeros everywhere (sampled at boundaries), the data after it must be
// intact, and (unless SparseBlocksUnreliable) the hole must not be allocated.
func checkSparseAt(t *testing.T, e *env, off int64) {
	p := e.path("sparse")
	data := randBytes(uint64(off), 2*4096+1)
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	pwrite(t, f, data, off)
	size := off + int64(len(data))
	if st := fstat(t, f); st.Size != size {
		t.Errorf("size %d, want %d", st.Size, size)
	}
	f.Close()

	r := mustOpen(t, p, unix.O_RDONLY, 0)
	if st := fstat(t, r); st.Size != size {
		t.Errorf("size after reopen %d, want %d", st.Size, size)
	}
	for _, at := range []int64{0, 1, 4095, 4096, mib, off / 2, off/2 + 4095, off - 8192} {
		n := int(min(8192, off-at))
		got := pread(t, r, n, at)
		checkBytes(t, got, make([]byte, n), "hole at %d", at)
	}
	// A read that starts in the hole and ends in the data.
	got := pread(t, r, 4096+100, off-4096)
	want := append(make([]byte, 4096), data[:100]...)
	checkBytes(t, got, want, "read across the end of the hole")
	checkBytes(t, pread(t, r, len(data)+10, off), data, "data after the hole")
	if !e.opts.SparseBlocksUnreliable {
		st := fstat(t, r)
		if used := st.Blocks * 512; used > 4*mib {
			t.Errorf("st_blocks says %d bytes allocated for %d bytes of data: the hole is allocated", used, len(data))
		}
	}
}

// checkAcross4GiB writes a few bytes straddling the 4 GiB offset, where 32-bit offset or
// block-number arithmetic breaks.
func checkAcross4GiB(t *testing.T, e *env) {
	p := e.path("f")
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	data := randBytes(4, 3*4096)
	off := int64(1<<32 - 4096 - 7)
	pwrite(t, f, data, off)
	if st := fstat(t, f); st.Size != off+int64(len(data)) {
		t.Errorf("size %d, want %d", st.Size, off+int64(len(data)))
	}
	checkBytes(t, pread(t, f, len(data), off), data, "data across 4 GiB")
	// Offsets truncated to 32 bits would put the bytes past 4 GiB at the start of the file.
	checkBytes(t, pread(t, f, 4*4096, 0), make([]byte, 4*4096), "start of the file")
}

// checkHoleBetweenData: data, a hole, data; writing the second part must not disturb the
// first, the hole reads as zeros, and filling part of the hole later works.
func checkHoleBetweenData(t *testing.T, e *env) {
	p := e.path("f")
	head := randBytes(1, 5000)
	tail := randBytes(2, 5000)
	const tailOff = 20*mib + 77
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	pwrite(t, f, head, 0)
	pwrite(t, f, tail, tailOff)
	mid := randBytes(3, 3000)
	const midOff = 10*mib - 1000
	pwrite(t, f, mid, midOff)
	f.Close()
	got := readFile(t, p)
	want := make([]byte, tailOff+len(tail))
	copy(want, head)
	copy(want[midOff:], mid)
	copy(want[tailOff:], tail)
	checkBytes(t, got, want, "whole file")
}

func truncateChecks() []check {
	return []check{
		{"Up", checkTruncateUp},
		{"DownThenUp", checkTruncateDownThenUp},
		{"DownThenWriteBeyond", checkTruncateDownThenWriteBeyond},
		{"Ftruncate", checkFtruncate},
		{"SeenByOtherDescriptor", checkTruncateSeenByOther},
		{"Errors", checkTruncateErrors},
	}
}

// truncaters are the two ways to truncate: by path and through an open descriptor.
var truncaters = []struct {
	name string
	fn   func(path string, size int64) error
}{
	{"truncate", func(p string, size int64) error { return retry0(func() error { return unix.Truncate(p, size) }) }},
	{"ftruncate", func(p string, size int64) error {
		f, err := openFile(p, unix.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		return retry0(func() error { return unix.Ftruncate(fd(f), size) })
	}},
}

// checkTruncateUp: extending a file by truncate reads as zeros after the old end.
func checkTruncateUp(t *testing.T, e *env) {
	for _, tr := range truncaters {
		for _, c := range []struct{ from, to int64 }{{0, 1}, {100, 10000}, {4096, 8193}, {5000, 3 * mib}} {
			p := e.path(fmt.Sprintf("%s-%d-%d", tr.name, c.from, c.to))
			data := randBytes(uint64(c.from), int(c.from))
			writeFile(t, p, data)
			must(t, tr.fn(p, c.to), "%s %s to %d", tr.name, p, c.to)
			if st := lstat(t, p); st.Size != c.to {
				t.Errorf("%s %d -> %d: size %d", tr.name, c.from, c.to, st.Size)
			}
			want := append(data, make([]byte, c.to-c.from)...)
			checkBytes(t, readFile(t, p), want, "%s %d -> %d", tr.name, c.from, c.to)
			must(t, os.Remove(p), "remove")
		}
	}
}

// cutPoints are sizes to truncate a 3-block file down to.
var cutPoints = []int64{0, 1, 100, 4095, 4096, 4097, 6000, 8191, 8192, 12000}

// checkTruncateDownThenUp: after cutting a file inside a block and extending it again, the
// cut-off bytes read as zeros, not as the old data.
func checkTruncateDownThenUp(t *testing.T, e *env) {
	const orig = 3*4096 + 100
	for _, tr := range truncaters {
		for _, cut := range cutPoints {
			p := e.path(fmt.Sprintf("%s-%d", tr.name, cut))
			data := randBytes(uint64(cut)+1, orig)
			writeFile(t, p, data)
			must(t, tr.fn(p, cut), "%s to %d", tr.name, cut)
			checkBytes(t, readFile(t, p), data[:cut], "%s to %d", tr.name, cut)
			must(t, tr.fn(p, orig), "%s back to %d", tr.name, orig)
			want := append(append([]byte{}, data[:cut]...), make([]byte, orig-cut)...)
			checkBytes(t, readFile(t, p), want, "%s to %d and back to %d", tr.name, cut, orig)
			must(t, os.Remove(p), "remove")
		}
	}
}

// checkTruncateDownThenWriteBeyond: after a cut, a write past the new end leaves a gap that
// must read as zeros, not as the old data that once was there.
func checkTruncateDownThenWriteBeyond(t *testing.T, e *env) {
	const orig = 3*4096 + 100
	for _, cut := range cutPoints {
		p := e.path(fmt.Sprintf("f-%d", cut))
		data := randBytes(uint64(cut)+7, orig)
		writeFile(t, p, data)
		f := mustOpen(t, p, unix.O_RDWR, 0)
		must(t, f.Truncate(cut), "ftruncate to %d", cut)
		pwrite(t, f, []byte("Z"), orig+10)
		want := append(append([]byte{}, data[:cut]...), make([]byte, orig+10-cut)...)
		want = append(want, 'Z')
		checkBytes(t, readAt(t, f, len(want), 0), want, "cut to %d, write at %d", cut, orig+10)
		f.Close()
		checkBytes(t, readFile(t, p), want, "cut to %d, write at %d, after close", cut, orig+10)
		must(t, os.Remove(p), "remove")
	}
}

// checkFtruncate: ftruncate on an open descriptor; the file offset is not changed, so a
// write after a cut leaves a hole.
func checkFtruncate(t *testing.T, e *env) {
	p := e.path("f")
	f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT, 0o644)
	data := randBytes(9, 10000)
	_, err := f.Write(data)
	must(t, err, "write")
	must(t, f.Truncate(3000), "ftruncate")
	if st := fstat(t, f); st.Size != 3000 {
		t.Errorf("size after ftruncate: %d", st.Size)
	}
	checkBytes(t, readAt(t, f, 3000, 0), data[:3000], "after ftruncate")
	_, err = f.Write([]byte("end"))
	must(t, err, "write at the old offset")
	want := append(append([]byte{}, data[:3000]...), make([]byte, 7000)...)
	want = append(want, "end"...)
	checkBytes(t, readAt(t, f, len(want), 0), want, "write at the old offset after ftruncate")
	if st := lstat(t, p); st.Size != int64(len(want)) {
		t.Errorf("size by path %d, want %d", st.Size, len(want))
	}
}

// checkTruncateSeenByOther: a descriptor that has read the data sees a truncation done
// through a path or another descriptor.
func checkTruncateSeenByOther(t *testing.T, e *env) {
	p := e.path("f")
	data := randBytes(11, 3*4096)
	writeFile(t, p, data)
	r := mustOpen(t, p, unix.O_RDONLY, 0)
	checkBytes(t, readAt(t, r, len(data), 0), data, "initial read")
	must(t, unix.Truncate(p, 5000), "truncate")
	checkBytes(t, pread(t, r, len(data), 0), data[:5000], "old descriptor after truncate")
	if st := fstat(t, r); st.Size != 5000 {
		t.Errorf("fstat of old descriptor: size %d", st.Size)
	}
	must(t, unix.Truncate(p, 3*4096), "truncate up")
	want := append(append([]byte{}, data[:5000]...), make([]byte, 3*4096-5000)...)
	checkBytes(t, pread(t, r, len(data), 0), want, "old descriptor after truncate up")
}

// checkTruncateErrors: truncating a directory, a read-only descriptor, or to a negative
// size fails with the Linux errors.
func checkTruncateErrors(t *testing.T, e *env) {
	must(t, os.Mkdir(e.path("d"), 0o755), "mkdir")
	wantErrno(t, unix.Truncate(e.path("d"), 0), unix.EISDIR, "truncate a directory")
	writeFile(t, e.path("f"), []byte("data"))
	r := mustOpen(t, e.path("f"), unix.O_RDONLY, 0)
	wantErrno(t, unix.Ftruncate(fd(r), 0), unix.EINVAL, "ftruncate of a read-only descriptor")
	wantErrno(t, unix.Truncate(e.path("f"), -1), unix.EINVAL, "truncate to -1")
	wantErrno(t, unix.Truncate(e.path("missing"), 0), unix.ENOENT, "truncate a missing file")
	if got := readFile(t, e.path("f")); string(got) != "data" {
		t.Errorf("failed truncates changed the file to %q", got)
	}
}
