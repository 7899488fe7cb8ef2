package crypt

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets use the fixed test key. Their seeds are built
// deterministically (fixed nonces) so the committed corpus stays valid;
// TestFuzzCorpusIsCurrent checks it and -update rewrites it.

var fuzzFileID = FileID(seq(0xf0, FileIDLen))

// fuzzBlocks returns the valid stored blocks the seeds contain, by block
// number.
func fuzzBlocks(tb testing.TB, s *Suite) map[uint64][]byte {
	m := map[uint64][]byte{}
	for i, n := range []int{1, 33, BlockSize} {
		b, err := s.sealBlockNonce(nil, seq(byte(i), nonceLen), pattern(n), fuzzFileID, uint64(i))
		if err != nil {
			tb.Fatal(err)
		}
		m[uint64(i)] = b
	}
	return m
}

func fuzzXattrs(tb testing.TB, s *Suite) map[string][]byte {
	m := map[string][]byte{}
	for i, name := range []string{"user.a", "user.comment", "user." + strings.Repeat("x", MaxXattrName-5)} {
		lower, err := s.EncryptXattrName(name)
		if err != nil {
			tb.Fatal(err)
		}
		m[lower], err = s.sealXattrValueNonce(seq(byte(i), nonceLen), lower, []byte(name[5:]))
		if err != nil {
			tb.Fatal(err)
		}
	}
	return m
}

func fuzzSymlinks(tb testing.TB, s *Suite) []string {
	var out []string
	for i, target := range []string{"a", "../target", strings.Repeat("p/", 40)} {
		st, err := s.encryptSymlinkNonce(seq(byte(i), nonceLen), target)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

var fuzzNames = []string{"a", "hello.txt", strings.Repeat("n", 15), strings.Repeat("n", 16), strings.Repeat("n", 159), strings.Repeat("l", 160), strings.Repeat("l", 255)}

// fuzzSeeds returns each target's seed inputs.
func fuzzSeeds(tb testing.TB) map[string][][]any {
	s := fixedSuite(tb, Options{})
	seeds := map[string][][]any{}
	blocks := fuzzBlocks(tb, s)
	for i := range uint64(len(blocks)) {
		seeds["FuzzOpenBlock"] = append(seeds["FuzzOpenBlock"], []any{blocks[i], i})
	}
	seeds["FuzzOpenBlock"] = append(seeds["FuzzOpenBlock"], []any{make([]byte, 100), uint64(9)}, []any{[]byte{}, uint64(0)})
	for _, n := range fuzzNames {
		enc, _ := s.EncryptName(vecDirIV, n)
		seeds["FuzzDecryptName"] = append(seeds["FuzzDecryptName"], []any{enc})
		if lower, long := LowerName(enc); long {
			seeds["FuzzParseSidecar"] = append(seeds["FuzzParseSidecar"], []any{lower, []byte(enc)})
		}
	}
	seeds["FuzzDecryptName"] = append(seeds["FuzzDecryptName"], []any{""}, []any{"not base64!"})
	seeds["FuzzParseSidecar"] = append(seeds["FuzzParseSidecar"], []any{"longname.x", []byte("x")})
	for _, lower := range sortedKeys(fuzzXattrs(tb, s)) {
		seeds["FuzzDecryptXattr"] = append(seeds["FuzzDecryptXattr"], []any{lower, fuzzXattrs(tb, s)[lower]})
	}
	seeds["FuzzDecryptXattr"] = append(seeds["FuzzDecryptXattr"], []any{"security.selinux", []byte("x")})
	for _, st := range fuzzSymlinks(tb, s) {
		seeds["FuzzDecryptSymlink"] = append(seeds["FuzzDecryptSymlink"], []any{st})
	}
	seeds["FuzzDecryptSymlink"] = append(seeds["FuzzDecryptSymlink"], []any{"AAAA"})
	return seeds
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func addSeeds(f *testing.F, name string) {
	for _, args := range fuzzSeeds(f)[name] {
		f.Add(args...)
	}
}

func FuzzOpenBlock(f *testing.F) {
	addSeeds(f, "FuzzOpenBlock")
	s := fixedSuite(f, Options{})
	valid := fuzzBlocks(f, s)
	f.Fuzz(func(t *testing.T, stored []byte, block uint64) {
		dst := make([]byte, 3, 3+BlockSize)
		out, err := s.OpenBlock(dst, stored, fuzzFileID, block)
		if err != nil {
			if len(out) != 3 {
				t.Fatal("failed OpenBlock changed dst")
			}
			return
		}
		if len(out) != 3+len(stored)-BlockOverhead {
			t.Fatalf("plaintext of %d bytes from %d stored", len(out)-3, len(stored))
		}
		if bytes.Equal(stored, make([]byte, len(stored))) {
			return // a hole
		}
		if !bytes.Equal(stored, valid[block]) {
			t.Fatalf("OpenBlock accepted a block it did not produce (block %d)", block)
		}
	})
}

func FuzzDecryptName(f *testing.F) {
	addSeeds(f, "FuzzDecryptName")
	s := fixedSuite(f, Options{})
	f.Fuzz(func(t *testing.T, encoded string) {
		name, err := s.DecryptName(vecDirIV, encoded)
		if err != nil {
			return
		}
		if again, err := s.EncryptName(vecDirIV, name); err != nil || again != encoded {
			t.Fatalf("DecryptName accepted %q, which EncryptName does not produce (%v)", encoded, err)
		}
	})
}

func FuzzParseSidecar(f *testing.F) {
	addSeeds(f, "FuzzParseSidecar")
	f.Fuzz(func(t *testing.T, lower string, content []byte) {
		enc, err := ParseSidecar(lower, content)
		if err != nil {
			return
		}
		if l, long := LowerName(enc); !long || l != lower || enc != string(content) {
			t.Fatalf("ParseSidecar accepted content that does not belong to %q", lower)
		}
	})
}

func FuzzDecryptXattr(f *testing.F) {
	addSeeds(f, "FuzzDecryptXattr")
	s := fixedSuite(f, Options{})
	valid := fuzzXattrs(f, s)
	f.Fuzz(func(t *testing.T, lower string, sealed []byte) {
		if name, err := s.DecryptXattrName(lower); err == nil {
			if again, err := s.EncryptXattrName(name); err != nil || again != lower {
				t.Fatalf("DecryptXattrName accepted %q, which EncryptXattrName does not produce", lower)
			}
		}
		if _, err := s.OpenXattrValue(lower, sealed); err == nil {
			if v, ok := valid[lower]; !ok || !bytes.Equal(v, sealed) {
				t.Fatalf("OpenXattrValue accepted a value it did not produce")
			}
		}
	})
}

func FuzzDecryptSymlink(f *testing.F) {
	addSeeds(f, "FuzzDecryptSymlink")
	s := fixedSuite(f, Options{})
	valid := fuzzSymlinks(f, s)
	f.Fuzz(func(t *testing.T, stored string) {
		target, err := s.DecryptSymlink(stored)
		if err != nil {
			return
		}
		for _, v := range valid {
			if v == stored {
				if target == "" {
					t.Fatal("empty target")
				}
				return
			}
		}
		t.Fatalf("DecryptSymlink accepted %q, which it did not produce", stored)
	})
}

// marshalCorpusEntry writes one seed in the go test fuzz v1 format.
func marshalCorpusEntry(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
		case uint64:
			fmt.Fprintf(&b, "uint64(%d)\n", v)
		default:
			panic(fmt.Sprintf("corpus type %T", a))
		}
	}
	return []byte(b.String())
}

// checkFuzzCorpus compares (or with -update rewrites) testdata/fuzz.
func checkFuzzCorpus(t *testing.T, seeds map[string][][]any) {
	for target, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
			os.RemoveAll(dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i, args := range list {
			file := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			want := marshalCorpusEntry(args)
			if *update {
				if err := os.WriteFile(file, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is missing or stale (%v); run go test -run TestFuzzCorpusIsCurrent -update", file, err)
			}
		}
	}
}

func TestFuzzCorpusIsCurrent(t *testing.T) { checkFuzzCorpus(t, fuzzSeeds(t)) }
