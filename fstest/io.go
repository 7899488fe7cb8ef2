package fstest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// boundaryOffsets are file offsets around the 4 KiB block (and page) size, the 64 KiB and
// the 1 MiB (FUSE max write) boundaries.
var boundaryOffsets = []int64{0, 1, 4095, 4096, 4097, 8191, 8192, 65536, mib - 1, mib, mib + 1}

// boundaryLengths are I/O lengths around the same boundaries.
var boundaryLengths = []int{1, 4095, 4096, 4097, 8191, 8192, 65537}

func ioChecks() []check {
	return []check{
		{"WriteAtBoundaries", checkWriteAtBoundaries},
		{"OverwriteAtBoundaries", checkOverwriteAtBoundaries},
		{"UnalignedOverwrite", checkUnalignedOverwrite},
		{"ReadAtBoundaries", checkReadAtBoundaries},
		{"PreadPwriteKeepOffset", checkPreadPwriteKeepOffset},
		{"Append", checkAppend},
		{"ConcurrentAppend", checkConcurrentAppend},
		{"OTrunc", checkOTrunc},
		{"OExcl", checkOExcl},
		{"CreateModes", checkCreateModes},
		{"ReadPastEOF", checkReadPastEOF},
		{"OtherDescriptor", checkOtherDescriptor},
		{"LargeFileHash", checkLargeFileHash},
	}
}

// checkWriteAtBoundaries writes into empty files at every boundary offset and length: the
// file must then hold zeros up to the offset and the data after it.
func checkWriteAtBoundaries(t *testing.T, e *env) {
	for i, off := range boundaryOffsets {
		for j, n := range boundaryLengths {
			p := e.path(fmt.Sprintf("w-%d-%d", off, n))
			data := randBytes(uint64(i*100+j+1), n)
			f := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
			pwrite(t, f, data, off)
			if st := fstat(t, f); st.Size != off+int64(n) {
				t.Errorf("write %d at %d: size %d, want %d", n, off, st.Size, off+int64(n))
			}
			f.Close()
			want := append(make([]byte, off), data...)
			checkBytes(t, readFile(t, p), want, "write %d bytes at %d, read back whole file", n, off)
			must(t, os.Remove(p), "remove")
		}
	}
}

// checkOverwriteAtBoundaries overwrites ranges of one existing file at every boundary offset
// and length, compares the neighbourhood of each write with a model and finally the whole
// file.
func checkOverwriteAtBoundaries(t *testing.T, e *env) {
	p := e.path("f")
	model := randBytes(1, mib+3*4096+7)
	writeFile(t, p, model)
	f := mustOpen(t, p, unix.O_RDWR, 0)
	seed := uint64(100)
	for _, off := range boundaryOffsets {
		for _, n := range boundaryLengths {
			seed++
			data := randBytes(seed, n)
			pwrite(t, f, data, off)
			if end := int(off) + n; end > len(model) {
				model = append(model, make([]byte, end-len(model))...)
			}
			copy(model[off:], data)
			lo := max(0, int(off)-8192)
			hi := min(len(model), int(off)+n+8192)
			got := pread(t, f, hi-lo, int64(lo))
			checkBytes(t, got, model[lo:hi], "after writing %d bytes at %d: bytes %d..%d", n, off, lo, hi)
		}
	}
	if st := fstat(t, f); st.Size != int64(len(model)) {
		t.Errorf("size %d, want %d", st.Size, len(model))
	}
	f.Close()
	checkBytes(t, readFile(t, p), model, "whole file through a new descriptor")
}

// checkUnalignedOverwrite overwrites small unaligned ranges in the middle of existing data.
func checkUnalignedOverwrite(t *testing.T, e *env) {
	cases := []struct {
		name string
		off  int64
		n    int
	}{
		{"one byte mid block", 5000, 1},
		{"straddles first block boundary", 4090, 12},
		{"almost two blocks from byte 2", 2, 8190},
		{"last byte of a block", 8191, 1},
		{"first byte of a block", 8192, 1},
		{"three blocks unaligned", 1234, 3 * 4096},
		{"tail of file", 5*4096 + 100, 50},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.path(fmt.Sprintf("u%d", i))
			model := randBytes(uint64(i+1), 5*4096+150)
			writeFile(t, p, model)
			f := mustOpen(t, p, unix.O_RDWR, 0)
			data := bytes.Repeat([]byte{0xA5}, c.n)
			pwrite(t, f, data, c.off)
			copy(model[c.off:], data)
			checkBytes(t, readAt(t, f, len(model), 0), model, "same descriptor")
			f.Close()
			checkBytes(t, readFile(t, p), model, "after close")
			must(t, os.Remove(p), "remove")
		})
	}
}

// checkReadAtBoundaries reads ranges of a known file at boundary offsets and lengths,
// including ranges that cross or start past the end of the file. One pread(2) on a regular
// file must return everything up to the end of the file.
func checkReadAtBoundaries(t *testing.T, e *env) {
	p := e.path("f")
	size := int64(mib + 4096 + 5)
	model := randBytes(7, int(size))
	writeFile(t, p, model)
	f := mustOpen(t, p, unix.O_RDONLY, 0)
	offs := append(append([]int64{}, boundaryOffsets...), size-4097, size-1, size, size+1, size+4096)
	for _, off := range offs {
		for _, n := range append([]int{0}, boundaryLengths...) {
			got := pread(t, f, n, off)
			var want []byte
			if off < size {
				want = model[off:min(size, off+int64(n))]
			}
			if d := diffBytes(got, want); d != "" {
				t.Errorf("pread %d bytes at %d: %s", n, off, d)
			}
		}
	}
}

// checkPreadPwriteKeepOffset: pread and pwrite do not move the file offset; read and write
// do, and start where the offset is.
func checkPreadPwriteKeepOffset(t *testing.T, e *env) {
	f := mustOpen(t, e.path("f"), unix.O_RDWR|unix.O_CREAT, 0o644)
	offset := func() int64 {
		t.Helper()
		o, err := unix.Seek(fd(f), 0, io.SeekCurrent)
		must(t, err, "lseek")
		return o
	}
	_, err := f.Write([]byte("0123456789"))
	must(t, err, "write")
	if o := offset(); o != 10 {
		t.Fatalf("offset after writing 10 bytes: %d", o)
	}
	pwrite(t, f, []byte("abc"), 20000)
	if o := offset(); o != 10 {
		t.Errorf("pwrite moved the offset to %d, want 10", o)
	}
	_ = pread(t, f, 5, 2)
	if o := offset(); o != 10 {
		t.Errorf("pread moved the offset to %d, want 10", o)
	}
	_, err = f.Write([]byte("XY"))
	must(t, err, "write")
	_, err = unix.Seek(fd(f), 4, io.SeekStart)
	must(t, err, "lseek")
	b := make([]byte, 8)
	n, err := f.Read(b)
	must(t, err, "read")
	if got := string(b[:n]); got != "456789XY" {
		t.Errorf("read after lseek(4): %q, want %q", got, "456789XY")
	}
	want := append([]byte("0123456789XY"), make([]byte, 20000-12)...)
	want = append(want, "abc"...)
	checkBytes(t, readAt(t, f, len(want), 0), want, "whole file")
}

// checkAppend: with O_APPEND every write goes to the end of the file whatever the offset,
// and on Linux even pwrite appends (see pwrite(2), BUGS).
func checkAppend(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, []byte("start"))
	f := mustOpen(t, p, unix.O_WRONLY|unix.O_APPEND, 0)
	_, err := f.Write([]byte("-one"))
	must(t, err, "append")
	_, err = unix.Seek(fd(f), 0, io.SeekStart)
	must(t, err, "lseek")
	_, err = f.Write([]byte("-two"))
	must(t, err, "append after lseek(0)")
	_, err = retry(func() (int, error) { return unix.Pwrite(fd(f), []byte("-three"), 1) })
	must(t, err, "pwrite on O_APPEND descriptor")
	// Another descriptor extends the file; the appender must write after that data.
	g := mustOpen(t, p, unix.O_WRONLY, 0)
	pwrite(t, g, []byte("|other|"), int64(len("start-one-two-three")))
	_, err = f.Write([]byte("-four"))
	must(t, err, "append after extension by another descriptor")
	want := "start-one-two-three|other|-four"
	checkBytes(t, readFile(t, p), []byte(want), "content")
}

// checkConcurrentAppend: two goroutines append fixed-size records through their own
// O_APPEND descriptors; every record must arrive whole, none lost, each writer's in order.
func checkConcurrentAppend(t *testing.T, e *env) {
	const (
		writers = 2
		records = 150
		recSize = 3001 // not a divisor of the block size, so records straddle blocks
	)
	p := e.path("log")
	writeFile(t, p, nil)
	record := func(w, i int) []byte {
		r := bytes.Repeat([]byte{byte('a' + w)}, recSize)
		copy(r, fmt.Sprintf("%c%06d:", 'A'+w, i))
		r[recSize-1] = '\n'
		return r
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		f := mustOpen(t, p, unix.O_WRONLY|unix.O_APPEND, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range records {
				if _, err := f.Write(record(w, i)); err != nil {
					errs <- fmt.Errorf("writer %d record %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	data := readFile(t, p)
	if len(data) != writers*records*recSize {
		t.Fatalf("size %d, want %d", len(data), writers*records*recSize)
	}
	next := make([]int, writers)
	for k := 0; k < len(data); k += recSize {
		r := data[k : k+recSize]
		w := int(r[0]) - 'A'
		if w < 0 || w >= writers {
			t.Fatalf("record at %d: bad writer byte %q", k, r[0])
		}
		if want := record(w, next[w]); !bytes.Equal(r, want) {
			t.Fatalf("record at %d: %q..., want %q... (%s)", k, r[:10], want[:10], diffBytes(r, want))
		}
		next[w]++
	}
}

// checkOTrunc: O_TRUNC empties an existing file; old data never reappears, neither when
// reading nor when the file is extended again.
func checkOTrunc(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, randBytes(3, 3*4096+10))
	f := mustOpen(t, p, unix.O_RDWR|unix.O_TRUNC, 0)
	if st := fstat(t, f); st.Size != 0 {
		t.Errorf("size after O_TRUNC: %d", st.Size)
	}
	if got := pread(t, f, 100, 0); len(got) != 0 {
		t.Errorf("read after O_TRUNC returned %d bytes", len(got))
	}
	pwrite(t, f, []byte("abc"), 0)
	must(t, f.Truncate(2*4096+5), "ftruncate up")
	want := append([]byte("abc"), make([]byte, 2*4096+2)...)
	checkBytes(t, readAt(t, f, len(want), 0), want, "after O_TRUNC, write and extend")
	f.Close()
	checkBytes(t, readFile(t, p), want, "through a new descriptor")
	// O_TRUNC together with O_CREAT on an existing file truncates too.
	g := mustOpen(t, p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
	if st := fstat(t, g); st.Size != 0 {
		t.Errorf("size after O_CREAT|O_TRUNC: %d", st.Size)
	}
}

// checkOExcl: O_CREAT|O_EXCL fails with EEXIST on every existing name, including a dangling
// symlink (which it must not follow), and creates a new file otherwise.
func checkOExcl(t *testing.T, e *env) {
	writeFile(t, e.path("file"), []byte("x"))
	must(t, os.Mkdir(e.path("dir"), 0o755), "mkdir")
	must(t, os.Symlink("missing", e.path("dangling")), "symlink")
	must(t, os.Symlink("file", e.path("link")), "symlink")
	for _, name := range []string{"file", "dir", "dangling", "link"} {
		_, err := openFile(e.path(name), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		wantErrno(t, err, unix.EEXIST, "O_CREAT|O_EXCL on existing %s", name)
	}
	if exists(t, e.path("missing")) {
		t.Errorf("O_CREAT|O_EXCL followed the dangling symlink and created its target")
	}
	if got := readFile(t, e.path("file")); string(got) != "x" {
		t.Errorf("existing file changed to %q", got)
	}
	f := mustOpen(t, e.path("new"), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	if st := fstat(t, f); fileType(st.Mode) != unix.S_IFREG || st.Size != 0 {
		t.Errorf("new file: mode %o size %d", st.Mode, st.Size)
	}
}

// checkCreateModes: the mode given to open(O_CREAT) and mkdir, minus the umask, becomes the
// new entry's mode, special bits of files included; an existing file's mode is left alone.
func checkCreateModes(t *testing.T, e *env) {
	umask := processUmask(t)
	modes := []uint32{0, 0o400, 0o600, 0o644, 0o640, 0o755, 0o777, 0o1777, 0o2755, 0o4755}
	for _, m := range modes {
		name := fmt.Sprintf("f%04o", m)
		f := mustOpen(t, e.path(name), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, m)
		want := m &^ umask
		if got := lstat(t, e.path(name)).Mode & 0o7777; got != want {
			t.Errorf("open(O_CREAT, %04o) with umask %03o: mode %04o, want %04o", m, umask, got, want)
		}
		// The descriptor is writable even when the new mode forbids writing. (A write by
		// a process without CAP_FSETID clears set-ID bits, so only the permission bits
		// are compared afterwards; Permissions/OtherUser checks the clearing.)
		_, err := f.Write([]byte("data"))
		must(t, err, "write through the creating descriptor of mode %04o", m)
		f.Close()
		if got := lstat(t, e.path(name)).Mode & 0o777; got != want&0o777 {
			t.Errorf("open(O_CREAT, %04o) and write: mode %04o, want %04o", m, got, want&0o777)
		}
		dname := fmt.Sprintf("d%04o", m)
		must(t, unix.Mkdir(e.path(dname), m), "mkdir %04o", m)
		// mkdir ignores the set-user-ID and set-group-ID bits (the latter is inherited
		// from a set-group-ID parent only, see Ownership/SetgidDirectory).
		want = m & 0o1777 &^ umask
		if got := lstat(t, e.path(dname)).Mode & 0o7777; got != want {
			t.Errorf("mkdir(%04o) with umask %03o: mode %04o, want %04o", m, umask, got, want)
		}
		must(t, os.Chmod(e.path(dname), 0o755), "chmod")
	}
	f := mustOpen(t, e.path("f0640"), unix.O_RDWR|unix.O_CREAT, 0o777)
	f.Close()
	if got, want := lstat(t, e.path("f0640")).Mode&0o7777, 0o640&^umask; got != want {
		t.Errorf("open(O_CREAT, 0777) of an existing file changed its mode to %04o, want %04o", got, want)
	}
}

// checkReadPastEOF: reads at or past the end of file return 0 bytes and no error.
func checkReadPastEOF(t *testing.T, e *env) {
	p := e.path("f")
	writeFile(t, p, []byte("hello"))
	f := mustOpen(t, p, unix.O_RDONLY, 0)
	for _, off := range []int64{5, 6, 4096, 1 << 32} {
		if got := pread(t, f, 10, off); len(got) != 0 {
			t.Errorf("pread at %d (size 5): %d bytes", off, len(got))
		}
	}
	b := make([]byte, 10)
	n, err := retry(func() (int, error) { return unix.Read(fd(f), b) })
	must(t, err, "read")
	if string(b[:n]) != "hello" {
		t.Errorf("first read: %q", b[:n])
	}
	n, err = retry(func() (int, error) { return unix.Read(fd(f), b) })
	if n != 0 || err != nil {
		t.Errorf("read at EOF: %d bytes, err %v; want 0, nil", n, err)
	}
	empty := mustOpen(t, e.path("empty"), unix.O_RDWR|unix.O_CREAT, 0o644)
	if got := pread(t, empty, 10, 0); len(got) != 0 {
		t.Errorf("read of an empty file: %d bytes", len(got))
	}
}

// checkOtherDescriptor: data written through one descriptor is visible at once through
// another that was opened before the write, and through a new one, without closing the
// writer.
func checkOtherDescriptor(t *testing.T, e *env) {
	p := e.path("f")
	w := mustOpen(t, p, unix.O_RDWR|unix.O_CREAT, 0o644)
	before := mustOpen(t, p, unix.O_RDONLY, 0)
	data := randBytes(5, 3*4096+17)
	pwrite(t, w, data, 0)
	checkBytes(t, readAt(t, before, len(data), 0), data, "descriptor opened before the write")
	after := mustOpen(t, p, unix.O_RDWR, 0)
	checkBytes(t, readAt(t, after, len(data), 0), data, "descriptor opened after the write")
	// And the other way round, in the middle of a block.
	pwrite(t, after, []byte("XYZ"), 4097)
	copy(data[4097:], "XYZ")
	checkBytes(t, readAt(t, w, len(data), 0), data, "first descriptor after a write through the second")
	if st := fstat(t, before); st.Size != int64(len(data)) {
		t.Errorf("fstat of the other descriptor: size %d, want %d", st.Size, len(data))
	}
}

// checkLargeFileHash writes a pseudo-random file of several MiB in randomly sized chunks and
// reads it back through another descriptor in differently sized chunks, comparing hashes.
func checkLargeFileHash(t *testing.T, e *env) {
	const size = 8*mib + 12345
	data := randBytes(99, size)
	want := sha256.Sum256(data)
	rng := rand.New(rand.NewPCG(1, 2))
	p := e.path("big")
	f := mustOpen(t, p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(300*kib))
		_, err := f.Write(rest[:n])
		must(t, err, "write")
		rest = rest[n:]
	}
	must(t, f.Close(), "close")
	r := mustOpen(t, p, unix.O_RDONLY, 0)
	h := sha256.New()
	buf := make([]byte, 256*kib)
	total := 0
	for {
		n, err := retry(func() (int, error) { return unix.Read(fd(r), buf[:1+rng.IntN(len(buf))]) })
		must(t, err, "read")
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		total += n
	}
	if total != size {
		t.Fatalf("read %d bytes, want %d", total, size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("sha256 %x, want %x", got, want)
	}
}
