package ciphertree

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// sparseSize is the plaintext size of the sparse test file: 4 TiB.
const sparseSize = 4 << 40

// sparseWrites are the data of the sparse test file: a few short writes
// far apart, one at the very end.
var sparseWrites = []struct {
	off  uint64
	data []byte
}{
	{0, []byte("head")},
	{1 << 40, bytes.Repeat([]byte("middle"), 1000)},
	{3<<40 + 12345, []byte("three")},
	{sparseSize - 7, []byte("the end")},
}

// newSparseFile writes the 4 TiB sparse test file through the block
// engine into a new lower file and returns its descriptor and path. It
// skips the test where the lower file system cannot hold such a file.
func newSparseFile(t *testing.T, s *crypt.Suite) (int, string) {
	t.Helper()
	fd, path := openLower(t)
	c, err := OpenContent(s, fd)
	must(t, err)
	if err := c.Truncate(sparseSize); errors.Is(err, unix.EFBIG) {
		t.Skipf("skipping: the file system of %s cannot hold a %d-byte sparse file: %v", path, int64(sparseSize), err)
	} else if err != nil {
		t.Fatal(err)
	}
	for _, w := range sparseWrites {
		must(t, c.WriteAt(w.data, w.off))
	}
	return fd, path
}

// TestDataBlocksSparse: on a 4 TiB file with a few kilobytes of data,
// DataBlocks reports the few blocks around the data (and the last one),
// CheckBlocks authenticates only those and still finds a tampered one,
// and CopyTo restores the file sparse, reading the same few blocks.
func TestDataBlocksSparse(t *testing.T) {
	s := testSuite(t)
	fd, path := newSparseFile(t, s)
	var st unix.Stat_t
	must(t, unix.Fstat(fd, &st))
	want := map[uint64]bool{}
	for _, w := range sparseWrites {
		for b := w.off / crypt.BlockSize; b <= (w.off+uint64(len(w.data))-1)/crypt.BlockSize; b++ {
			want[b] = true
		}
	}
	var runs []BlockRun
	var total uint64
	must(t, DataBlocks(fd, uint64(st.Size), func(r BlockRun) error {
		if len(runs) > 0 && r.First <= runs[len(runs)-1].First+runs[len(runs)-1].N {
			t.Errorf("runs out of order or overlapping: %v after %v", r, runs)
		}
		runs = append(runs, r)
		total += r.N
		return nil
	}))
	covered := func(b uint64) bool {
		for _, r := range runs {
			if b >= r.First && b < r.First+r.N {
				return true
			}
		}
		return false
	}
	for b := range want {
		if !covered(b) {
			t.Errorf("block %d holds data but is in no run %v", b, runs)
		}
	}
	// Each write lands in at most a few file system blocks, each of
	// which overlaps at most two stored blocks.
	if total > 4*uint64(len(want)) {
		t.Errorf("%d blocks in runs %v for %d blocks of data: holes were not skipped", total, runs, len(want))
	}

	id, err := ReadHeader(fd)
	must(t, err)
	checked, err := CheckBlocks(s, fd, id, uint64(st.Size), func(b uint64, err error) { t.Errorf("block %d: %v", b, err) })
	must(t, err)
	if checked != total {
		t.Errorf("CheckBlocks checked %d blocks, DataBlocks has %d", checked, total)
	}

	// Restore it.
	dst := filepath.Join(t.TempDir(), "restored")
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	must(t, err)
	defer out.Close()
	c, err := OpenContent(s, fd)
	must(t, err)
	var progress int64
	must(t, (&File{fd: fd, c: c}).CopyTo(int(out.Fd()), func(n int64) { progress += n }))
	var ost unix.Stat_t
	must(t, unix.Fstat(int(out.Fd()), &ost))
	if ost.Size != sparseSize || progress != sparseSize {
		t.Errorf("restored size %d, progress %d; want %d", ost.Size, progress, int64(sparseSize))
	}
	if ost.Blocks*512 > 1<<20 {
		t.Errorf("restored file allocates %d bytes: not sparse", ost.Blocks*512)
	}
	for _, w := range sparseWrites {
		got := make([]byte, len(w.data))
		_, err := out.ReadAt(got, int64(w.off))
		must(t, err)
		if !bytes.Equal(got, w.data) {
			t.Errorf("restored bytes at %d: %q, want %q", w.off, got, w.data)
		}
		if w.off > 0 {
			var before [1]byte
			if _, err := out.ReadAt(before[:], int64(w.off)-1); err != nil {
				t.Fatal(err)
			}
			if before[0] != 0 {
				t.Errorf("restored byte before %d: %#x, want 0 (a hole)", w.off, before[0])
			}
		}
	}

	// A tampered block in the middle is found.
	bad := uint64(1<<40) / crypt.BlockSize
	lf, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	var b [1]byte // inverted, so that it changes whatever it was
	_, err = lf.ReadAt(b[:], int64(crypt.BlockOffset(bad))+100)
	must(t, err)
	_, err = lf.WriteAt([]byte{^b[0]}, int64(crypt.BlockOffset(bad))+100)
	lf.Close()
	must(t, err)
	var found []uint64
	_, err = CheckBlocks(s, fd, id, uint64(st.Size), func(b uint64, err error) { found = append(found, b) })
	must(t, err)
	if len(found) != 1 || found[0] != bad {
		t.Errorf("tampered block %d: CheckBlocks reported %v", bad, found)
	}
}

// TestDataBlocksDense: a file without holes is one run of every block,
// and a file whose last stored block is a hole still has it checked.
func TestDataBlocksDense(t *testing.T) {
	s := testSuite(t)
	fd, _ := openLower(t)
	c, err := OpenContent(s, fd)
	must(t, err)
	must(t, c.WriteAt(bytes.Repeat([]byte{1}, 10*crypt.BlockSize+5), 0))
	var st unix.Stat_t
	must(t, unix.Fstat(fd, &st))
	var runs []BlockRun
	must(t, DataBlocks(fd, uint64(st.Size), func(r BlockRun) error { runs = append(runs, r); return nil }))
	if len(runs) != 1 || runs[0] != (BlockRun{0, 11}) {
		t.Errorf("dense file: runs %v, want [{0 11}]", runs)
	}

	fd2, _ := openLower(t)
	c2, err := OpenContent(s, fd2)
	must(t, err)
	must(t, c2.WriteAt([]byte("x"), 0))
	must(t, c2.Truncate(100*crypt.BlockSize))
	must(t, unix.Fstat(fd2, &st))
	runs = nil
	must(t, DataBlocks(fd2, uint64(st.Size), func(r BlockRun) error { runs = append(runs, r); return nil }))
	if len(runs) == 0 || runs[len(runs)-1].First+runs[len(runs)-1].N != 100 {
		t.Errorf("file ending in a hole: runs %v do not include the last block 99", runs)
	}
}
