package ciphertree

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

func testSuite(t testing.TB) *crypt.Suite {
	t.Helper()
	key := bytes.Repeat([]byte{7}, crypt.KeyLen)
	s, err := crypt.New(key, crypt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Wipe)
	return s
}

func openLower(t testing.TB) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lower")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, path
}

// writtenLower returns a lower file (descriptor and path) holding data
// written through the content engine: a header and data's blocks.
func writtenLower(t testing.TB, s *crypt.Suite, data []byte) (int, string) {
	t.Helper()
	fd, path := openLower(t)
	c, err := OpenContent(s, fd)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	return fd, path
}

// TestContentModel applies random writes, truncates and allocations to a
// real lower file through the block engine and to a byte slice, and
// compares every read, the plaintext size and the lower size after each
// step. Offsets cluster around block boundaries.
func TestContentModel(t *testing.T) {
	s := testSuite(t)
	for seed := int64(1); seed <= 20; seed++ {
		fd, _ := openLower(t)
		rng := rand.New(rand.NewSource(seed))
		var model []byte
		offset := func() uint64 {
			switch rng.Intn(4) {
			case 0:
				return uint64(rng.Intn(5*crypt.BlockSize + 1))
			case 1, 2: // a block boundary, one before or one after it
				b := uint64(rng.Intn(40)+1) * crypt.BlockSize
				return b + uint64(rng.Intn(3)) - 1
			default:
				return uint64(rng.Intn(300 * crypt.BlockSize))
			}
		}
		for step := 0; step < 300; step++ {
			c, err := OpenContent(s, fd)
			if err != nil {
				t.Fatalf("seed %d step %d: load: %v", seed, step, err)
			}
			if c.size != uint64(len(model)) {
				t.Fatalf("seed %d step %d: size %d, model %d", seed, step, c.size, len(model))
			}
			switch op := rng.Intn(10); {
			case op < 5: // write
				off := offset()
				data := make([]byte, rng.Intn(3*crypt.BlockSize+2)+1)
				rng.Read(data)
				if err := c.WriteAt(data, off); err != nil {
					t.Fatalf("seed %d step %d: write %d@%d: %v", seed, step, len(data), off, err)
				}
				if end := int(off) + len(data); end > len(model) {
					model = append(model, make([]byte, end-len(model))...)
				}
				copy(model[off:], data)
			case op < 7: // truncate
				size := offset()
				if err := c.Truncate(size); err != nil {
					t.Fatalf("seed %d step %d: truncate %d: %v", seed, step, size, err)
				}
				if int(size) < len(model) {
					model = model[:size]
				} else {
					model = append(model, make([]byte, int(size)-len(model))...)
				}
			case op < 8: // fallocate
				off, n := offset(), uint64(rng.Intn(2*crypt.BlockSize)+1)
				keep := rng.Intn(2) == 0
				if err := c.Allocate(off, n, keep); err != nil {
					t.Fatalf("seed %d step %d: allocate: %v", seed, step, err)
				}
				if end := int(off + n); !keep && end > len(model) {
					model = append(model, make([]byte, end-len(model))...)
				}
			default: // read
				off := offset()
				buf := make([]byte, rng.Intn(4*crypt.BlockSize)+1)
				n, err := c.ReadAt(buf, off)
				if err != nil {
					t.Fatalf("seed %d step %d: read: %v", seed, step, err)
				}
				var want []byte
				if int(off) < len(model) {
					want = model[off:min(int(off)+len(buf), len(model))]
				}
				if !bytes.Equal(buf[:n], want) {
					t.Fatalf("seed %d step %d: read %d@%d differs from the model", seed, step, len(buf), off)
				}
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				t.Fatal(err)
			}
			if got, want := uint64(st.Size), crypt.CipherSize(uint64(len(model))); got != want && !(len(model) == 0 && got == crypt.HeaderLen) {
				t.Fatalf("seed %d step %d: lower size %d, want %d", seed, step, got, want)
			}
		}
	}
}

// TestContentTamper: a flipped byte in any block fails that block only.
func TestContentTamper(t *testing.T) {
	s := testSuite(t)
	fd, path := writtenLower(t, s, bytes.Repeat([]byte("abcdefgh"), 3*crypt.BlockSize/8+100))
	raw, _ := os.ReadFile(path)
	raw[crypt.BlockOffset(1)+50] ^= 0x80
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := OpenContent(s, fd)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, crypt.BlockSize)
	if _, err := c.ReadAt(buf, 0); err != nil {
		t.Errorf("block 0: %v", err)
	}
	if _, err := c.ReadAt(buf, crypt.BlockSize); !errors.Is(err, crypt.ErrAuth) {
		t.Errorf("tampered block 1: %v, want ErrAuth", err)
	}
	if _, err := c.ReadAt(buf, 2*crypt.BlockSize); err != nil {
		t.Errorf("block 2: %v", err)
	}
	// A partial write into the tampered block must not launder it.
	if err := c.WriteAt([]byte("x"), crypt.BlockSize+10); !errors.Is(err, crypt.ErrAuth) {
		t.Errorf("read-modify-write of a tampered block: %v, want ErrAuth", err)
	}
}

// TestSparseStaysSparse: growing a file leaves holes in the lower file.
func TestSparseStaysSparse(t *testing.T) {
	s := testSuite(t)
	fd, _ := openLower(t)
	c, _ := OpenContent(s, fd)
	if err := c.WriteAt([]byte("end"), 1<<30); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	if st.Blocks*512 > 1<<20 {
		t.Errorf("a 1 GiB sparse file allocates %d bytes in the lower file", st.Blocks*512)
	}
	buf := make([]byte, 8192)
	c, _ = OpenContent(s, fd)
	if n, err := c.ReadAt(buf, 1<<29); err != nil || n != len(buf) || !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Errorf("hole read: %d %v", n, err)
	}
}

func BenchmarkWrite1MiB(b *testing.B) {
	s := testSuite(b)
	fd, _ := openLower(b)
	c, _ := OpenContent(s, fd)
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if err := c.WriteAt(data, uint64(i%64)<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead1MiB(b *testing.B) {
	s := testSuite(b)
	fd, _ := openLower(b)
	c, _ := OpenContent(s, fd)
	data := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		c.WriteAt(data, uint64(i)<<20)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.ReadAt(data, uint64(i%64)<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFullDiskLosesNothing fills a small lower file system: every write
// that fails with ENOSPC leaves the file as it was (size, content, last
// partial block), and what was written before stays readable.
func TestFullDiskLosesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("skipping: cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	s := testSuite(t)
	for seed := int64(1); seed <= 8; seed++ {
		fillUp(t, s, filepath.Join(dir, "f"), seed)
	}
}

func fillUp(t *testing.T, s *crypt.Suite, path string, seed int64) {
	os.Remove(path)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	rng := rand.New(rand.NewSource(seed))
	var model []byte
	full := 0
	for i := 0; i < 400 && full < 20; i++ {
		c, err := OpenContent(s, fd)
		if err != nil {
			t.Fatalf("seed %d step %d: load: %v", seed, i, err)
		}
		var werr error
		switch rng.Intn(3) {
		case 0: // append an odd amount, so the last block is often partial
			data := make([]byte, rng.Intn(3000)+1)
			rng.Read(data)
			if werr = c.WriteAt(data, uint64(len(model))); werr == nil {
				model = append(model, data...)
			}
		case 1: // grow with a hole
			size := uint64(len(model) + rng.Intn(9000) + 1)
			if werr = c.Truncate(size); werr == nil {
				model = append(model, make([]byte, int(size)-len(model))...)
			}
		default: // allocate past the end
			n := uint64(rng.Intn(9000) + 1)
			if werr = c.Allocate(uint64(len(model)), n, false); werr == nil {
				model = append(model, make([]byte, n)...)
			}
		}
		if werr != nil {
			if errors.Is(werr, ErrUndo) {
				t.Fatalf("seed %d step %d: %v: undoing the failed growth failed", seed, i, werr)
			}
			if !errors.Is(werr, unix.ENOSPC) {
				t.Fatalf("seed %d step %d: %v, want ENOSPC or success", seed, i, werr)
			}
			full++
		}
		c, err = OpenContent(s, fd)
		if err != nil {
			t.Fatalf("seed %d step %d (after %v): the file no longer loads: %v", seed, i, werr, err)
		}
		if c.size != uint64(len(model)) {
			t.Fatalf("seed %d step %d (after %v): size %d, want %d", seed, i, werr, c.size, len(model))
		}
		got := make([]byte, len(model))
		if n, err := c.ReadAt(got, 0); err != nil || n != len(model) || !bytes.Equal(got, model) {
			t.Fatalf("seed %d step %d (after %v): content lost: read %d, %v", seed, i, werr, n, err)
		}
	}
	if full == 0 {
		t.Fatal("the lower file system never filled up: the test checked nothing")
	}
}

// TestFailedUndoIsReported: when a growth fails and putting the file back
// fails too, the error says so (ErrUndo) and still carries the growth's
// own errno first. The lower file is opened read-only, so the growth's
// write fails (EBADF) and so does the ftruncate that would undo it.
func TestFailedUndoIsReported(t *testing.T) {
	s := testSuite(t)
	_, path := writtenLower(t, s, bytes.Repeat([]byte{1}, 100))
	ro, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ro)
	c, err := OpenContent(s, ro)
	if err != nil {
		t.Fatal(err)
	}
	err = c.WriteAt([]byte("past the end"), 3*crypt.BlockSize)
	if !errors.Is(err, ErrUndo) {
		t.Errorf("growth on a read-only descriptor: %v, want an error wrapping ErrUndo", err)
	}
	var errno unix.Errno
	if !errors.As(err, &errno) || errno != unix.EBADF {
		t.Errorf("first errno in %v is %v, want the growth's own EBADF", err, errno)
	}
	if err := c.Truncate(10 * crypt.BlockSize); !errors.Is(err, ErrUndo) {
		t.Errorf("truncate up on a read-only descriptor: %v, want an error wrapping ErrUndo", err)
	}
	if c.Size() != 100 {
		t.Errorf("size after the failed growths: %d, want 100", c.Size())
	}
}
