package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	id, err := NewFileID()
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte("prefix")
	h := EncodeHeader(prefix, id)
	if len(h) != len(prefix)+HeaderLen || !bytes.HasPrefix(h, prefix) {
		t.Fatalf("EncodeHeader = %x", h)
	}
	if h[6] != 0 || h[7] != 2 {
		t.Fatalf("version bytes %x, want 0002", h[6:8])
	}
	got, err := ParseHeader(h[len(prefix):])
	if err != nil || got != id {
		t.Fatalf("ParseHeader = %x, %v; want %x", got, err, id)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := EncodeHeader(nil, FileID{1, 2, 3})
	tests := []struct {
		name    string
		in      []byte
		want    error
		message string
	}{
		{"empty", nil, ErrAuth, "0 bytes"},
		{"short", good[:17], ErrAuth, "17 bytes"},
		{"long", append(bytes.Clone(good), 0), ErrAuth, "19 bytes"},
		{"version 0", append([]byte{0, 0}, good[2:]...), ErrUnsupportedVersion, "version 0"},
		{"version 1 (pre-release)", append([]byte{0, 1}, good[2:]...), ErrUnsupportedVersion, "version 1, written by a pre-release cryptfs"},
		{"version 3", append([]byte{0, 3}, good[2:]...), ErrUnsupportedVersion, "version 3"},
		{"version 256", append([]byte{1, 0}, good[2:]...), ErrUnsupportedVersion, "version 256"},
		{"all zero", make([]byte, HeaderLen), ErrUnsupportedVersion, "version 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHeader(tc.in)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("ParseHeader: %v, want %v mentioning %q", err, tc.want, tc.message)
			}
		})
	}
}

func TestCipherPlainSize(t *testing.T) {
	tests := []struct{ plain, cipher uint64 }{
		{0, 0},
		{1, 18 + 41},
		{4095, 18 + 4135},
		{4096, 18 + 4136},
		{4097, 18 + 4136 + 41},
		{2 * 4096, 18 + 2*4136},
		{1 << 40, 18 + (1<<40)/4096*4136},
	}
	for _, tc := range tests {
		if got := CipherSize(tc.plain); got != tc.cipher {
			t.Errorf("CipherSize(%d) = %d, want %d", tc.plain, got, tc.cipher)
		}
		if got, err := PlainSize(tc.cipher); err != nil || got != tc.plain {
			t.Errorf("PlainSize(%d) = %d, %v; want %d", tc.cipher, got, err, tc.plain)
		}
	}
	if got, err := PlainSize(HeaderLen); err != nil || got != 0 {
		t.Errorf("PlainSize(header only) = %d, %v; want 0, nil", got, err)
	}
	for p := uint64(0); p < 3*BlockSize+2; p++ {
		if got, err := PlainSize(CipherSize(p)); err != nil || got != p {
			t.Fatalf("PlainSize(CipherSize(%d)) = %d, %v", p, got, err)
		}
	}
}

func TestPlainSizeImpossible(t *testing.T) {
	tests := []struct{ cipher, bestEffort uint64 }{
		{1, 0}, {17, 0},
		{18 + 1, 0}, {18 + 40, 0},
		{18 + 4136 + 1, 4096}, {18 + 4136 + 40, 4096},
		{18 + 2*4136 + 7, 8192},
	}
	for _, tc := range tests {
		got, err := PlainSize(tc.cipher)
		if !errors.Is(err, ErrAuth) || got != tc.bestEffort {
			t.Errorf("PlainSize(%d) = %d, %v; want %d and ErrAuth", tc.cipher, got, err, tc.bestEffort)
		}
	}
}

func TestBlockOffset(t *testing.T) {
	for _, b := range []uint64{0, 1, 2, 1000} {
		if got, want := BlockOffset(b), HeaderLen+b*CipherBlockSize; got != want {
			t.Errorf("BlockOffset(%d) = %d, want %d", b, got, want)
		}
	}
	// The last block of a file starts at BlockOffset and ends at CipherSize.
	if BlockOffset(1)+100+BlockOverhead != CipherSize(BlockSize+100) {
		t.Error("BlockOffset and CipherSize disagree")
	}
}

func TestBlockRoundTrip(t *testing.T) {
	s := fixedSuite(t, Options{})
	id, _ := NewFileID()
	for _, n := range []int{1, 2, 31, 32, 33, 1000, BlockSize - 1, BlockSize} {
		for _, block := range []uint64{0, 1, 7, 1 << 40, ^uint64(0)} {
			plain := pattern(n)
			stored, err := s.SealBlock(nil, plain, id, block)
			if err != nil {
				t.Fatal(err)
			}
			if len(stored) != n+BlockOverhead {
				t.Fatalf("stored len %d for %d bytes", len(stored), n)
			}
			if bytes.Contains(stored, plain[:min(n, 16)]) && n >= 16 {
				t.Fatalf("plaintext visible in ciphertext")
			}
			got, err := s.OpenBlock(nil, stored, id, block)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("OpenBlock(%d bytes, block %d): %v", n, block, err)
			}
		}
	}
}

func TestBlockZeroPlaintextIsNotHole(t *testing.T) {
	// A sealed block of zeros is an ordinary authenticated block.
	s := fixedSuite(t, Options{})
	var id FileID
	stored, err := s.SealBlock(nil, make([]byte, BlockSize), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(stored, make([]byte, len(stored))) {
		t.Fatal("sealed zeros are all zero")
	}
	if _, err := s.OpenBlock(nil, stored, id, 1); !errors.Is(err, ErrAuth) {
		t.Fatalf("sealed zero block opened at another position: %v", err)
	}
}

func TestBlockAppendsToDst(t *testing.T) {
	s := fixedSuite(t, Options{})
	var id FileID
	prefix := []byte("keep me")
	stored, err := s.SealBlock(bytes.Clone(prefix), []byte("data"), id, 3)
	if err != nil || !bytes.HasPrefix(stored, prefix) {
		t.Fatalf("SealBlock did not append: %v", err)
	}
	plain, err := s.OpenBlock(bytes.Clone(prefix), stored[len(prefix):], id, 3)
	if err != nil || string(plain) != "keep medata" {
		t.Fatalf("OpenBlock = %q, %v", plain, err)
	}
	// On failure dst comes back unchanged.
	out, err := s.OpenBlock(bytes.Clone(prefix), stored[len(prefix):], id, 4)
	if err == nil || !bytes.Equal(out, prefix) {
		t.Fatalf("failed OpenBlock returned %q, %v", out, err)
	}
}

func TestSealBlockRejectsSizes(t *testing.T) {
	s := fixedSuite(t, Options{})
	for _, n := range []int{0, BlockSize + 1, 2 * BlockSize} {
		if _, err := s.SealBlock(nil, make([]byte, n), FileID{}, 0); err == nil {
			t.Errorf("SealBlock of %d bytes succeeded", n)
		}
	}
}

func TestSealBlockFreshNonces(t *testing.T) {
	s := fixedSuite(t, Options{})
	a, _ := s.SealBlock(nil, []byte("same"), FileID{}, 0)
	b, _ := s.SealBlock(nil, []byte("same"), FileID{}, 0)
	if bytes.Equal(a[:nonceLen], b[:nonceLen]) || bytes.Equal(a, b) {
		t.Fatal("two seals of the same block are equal")
	}
}

func TestBlockTamperEveryByte(t *testing.T) {
	s := fixedSuite(t, Options{})
	id := FileID{9}
	for _, n := range []int{1, 100, BlockSize} {
		stored, err := s.SealBlock(nil, pattern(n), id, 5)
		if err != nil {
			t.Fatal(err)
		}
		for i := range stored {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				bad := bytes.Clone(stored)
				bad[i] ^= x
				_, err := s.OpenBlock(nil, bad, id, 5)
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("%d-byte block, byte %d ^ %#x: %v, want ErrAuth", n, i, x, err)
				}
				if !strings.Contains(err.Error(), "block 5") {
					t.Fatalf("error %q does not name the block", err)
				}
			}
		}
	}
}

func TestBlockSwapAndMove(t *testing.T) {
	s := fixedSuite(t, Options{})
	idA, idB := FileID{1}, FileID{2}
	b0, _ := s.SealBlock(nil, fillBytes(BlockSize, 'a'), idA, 0)
	b1, _ := s.SealBlock(nil, fillBytes(BlockSize, 'b'), idA, 1)
	tests := []struct {
		name   string
		stored []byte
		id     FileID
		block  uint64
	}{
		{"block 0 read as block 1", b0, idA, 1},
		{"block 1 read as block 0", b1, idA, 0},
		{"block 0 moved to another file", b0, idB, 0},
		{"block 1 moved to another file and position", b1, idB, 0},
		{"block number high bits", b0, idA, 1 << 63},
	}
	for _, tc := range tests {
		if _, err := s.OpenBlock(nil, tc.stored, tc.id, tc.block); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v, want ErrAuth", tc.name, err)
		}
	}
}

func TestBlockTruncatedOrExtended(t *testing.T) {
	s := fixedSuite(t, Options{})
	var id FileID
	for _, n := range []int{1, 500, BlockSize} {
		stored, _ := s.SealBlock(nil, pattern(n), id, 0)
		for cut := 1; cut <= len(stored); cut++ {
			if _, err := s.OpenBlock(nil, stored[:len(stored)-cut], id, 0); !errors.Is(err, ErrAuth) {
				t.Fatalf("%d-byte block truncated by %d: %v", n, cut, err)
			}
		}
		if _, err := s.OpenBlock(nil, append(bytes.Clone(stored), 0), id, 0); !errors.Is(err, ErrAuth) {
			t.Fatalf("%d-byte block extended by one byte: %v", n, err)
		}
	}
}

func TestBlockHoles(t *testing.T) {
	s := fixedSuite(t, Options{})
	var id FileID
	for _, n := range []int{BlockOverhead + 1, 100, CipherBlockSize} {
		dst := []byte("junk")[:0:4] // capacity holding garbage must be cleared
		got, err := s.OpenBlock(dst, make([]byte, n), id, 3)
		if err != nil || !bytes.Equal(got, make([]byte, n-BlockOverhead)) {
			t.Fatalf("hole of %d stored bytes: %q, %v", n, got, err)
		}
	}
	for _, n := range []int{0, 1, BlockOverhead, CipherBlockSize + 1} {
		if _, err := s.OpenBlock(nil, make([]byte, n), id, 3); !errors.Is(err, ErrAuth) {
			t.Errorf("zero block of impossible length %d: %v, want ErrAuth", n, err)
		}
	}
	// Almost-zero is not a hole.
	for _, i := range []int{0, 23, 24, 99} {
		b := make([]byte, 100)
		b[i] = 1
		if _, err := s.OpenBlock(nil, b, id, 3); !errors.Is(err, ErrAuth) {
			t.Errorf("zero block with byte %d set: %v, want ErrAuth", i, err)
		}
	}
}

func TestBlockConcurrent(t *testing.T) {
	s := fixedSuite(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := FileID{byte(g)}
			plain := fillBytes(BlockSize, byte(g))
			buf := make([]byte, 0, CipherBlockSize)
			out := make([]byte, 0, BlockSize)
			for i := range 200 {
				stored, err := s.SealBlock(buf[:0], plain, id, uint64(i))
				if err != nil {
					errs <- err
					return
				}
				got, err := s.OpenBlock(out[:0], stored, id, uint64(i))
				if err != nil || !bytes.Equal(got, plain) {
					errs <- fmt.Errorf("goroutine %d block %d: %v", g, i, err)
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
}

func TestBlockZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("-race: sync.Pool drops items on purpose under the race detector, so allocations are not counted; run without -race")
	}
	s := fixedSuite(t, Options{})
	id := FileID{1}
	plain := pattern(BlockSize)
	stored := make([]byte, 0, CipherBlockSize)
	out := make([]byte, 0, BlockSize)
	var err error
	stored, err = s.SealBlock(stored, plain, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() {
		stored, err = s.SealBlock(stored[:0], plain, id, 1)
	}); n != 0 || err != nil {
		t.Errorf("SealBlock: %v allocations per block (err %v), want 0", n, err)
	}
	if n := testing.AllocsPerRun(200, func() {
		out, err = s.OpenBlock(out[:0], stored, id, 1)
	}); n != 0 || err != nil {
		t.Errorf("OpenBlock: %v allocations per block (err %v), want 0", n, err)
	}
	hole := make([]byte, CipherBlockSize)
	if n := testing.AllocsPerRun(200, func() {
		out, err = s.OpenBlock(out[:0], hole, id, 1)
	}); n != 0 || err != nil {
		t.Errorf("OpenBlock of a hole: %v allocations per block (err %v), want 0", n, err)
	}
}
