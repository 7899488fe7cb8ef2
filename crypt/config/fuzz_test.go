package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/crypt"
)

// fuzzSeeds returns each target's seeds (see TestFuzzCorpusIsCurrent).
func fuzzSeeds(tb testing.TB) map[string][][]any {
	file := vectorFileBytes(tb)
	plain := &Config{Version: crypt.FormatVersion, Features: []string{}, KDF: InsecureTestKDF()}
	if err := plain.wrapWith(vectorMaster(), []byte(vectorPassword), seq(0x50, SaltLen), seq(0x70, 24)); err != nil {
		tb.Fatal(err)
	}
	key := RecoveryKey(vectorMaster())
	return map[string][][]any{
		"FuzzParse": {
			{file}, {plain.marshal()},
			{bytes.Replace(file, []byte(`"version": 2`), []byte(`"version": 3`), 1)},
			{bytes.Replace(file, []byte(`"version": 2`), []byte(`"version": 1`), 1)},
			{[]byte(`{"version": 2}`)}, {[]byte("")},
		},
		"FuzzParseRecoveryKey": {
			{key}, {strings.ToLower(stripKey(key))}, {key[:40]}, {"0"},
		},
	}
}

// produced returns the configs the tests produce; Parse may accept only
// those (when it can also unlock them with the test password).
func produced(tb testing.TB) [][]byte {
	var out [][]byte
	for _, args := range fuzzSeeds(tb)["FuzzParse"][:2] {
		out = append(out, args[0].([]byte))
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, args := range fuzzSeeds(f)["FuzzParse"] {
		f.Add(args[0].([]byte))
	}
	valid := produced(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, LoadOptions{AllowWeakKDF: true})
		if err != nil {
			return
		}
		if !bytes.Equal(c.marshal(), data) {
			t.Fatal("Parse accepted a non-canonical file")
		}
		if uint64(c.KDF.Time)*uint64(c.KDF.MemoryKiB) > 4096 {
			return // too slow to unlock in a fuzz loop
		}
		if _, err := c.Unlock([]byte(vectorPassword)); err != nil {
			return
		}
		for _, v := range valid {
			if bytes.Equal(v, data) {
				return
			}
		}
		t.Fatalf("a config the tests did not produce unlocked:\n%s", data)
	})
}

func FuzzParseRecoveryKey(f *testing.F) {
	for _, args := range fuzzSeeds(f)["FuzzParseRecoveryKey"] {
		f.Add(args[0].(string))
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseRecoveryKey(s)
		if err != nil {
			return
		}
		if len(k) != 32 {
			t.Fatalf("%d-byte key", len(k))
		}
		// The input must be the canonical key up to case, separators and
		// the O/I/L aliases.
		norm := strings.Map(func(r rune) rune {
			switch r {
			case ' ', '\t', '\n', '\r', '-':
				return -1
			case 'o', 'O':
				return '0'
			case 'i', 'I', 'l', 'L':
				return '1'
			}
			if 'a' <= r && r <= 'z' {
				return r - 'a' + 'A'
			}
			return r
		}, s)
		if norm != stripKey(RecoveryKey(k)) {
			t.Fatalf("ParseRecoveryKey(%q) accepted a non-equivalent form of %s", s, RecoveryKey(k))
		}
	})
}

func marshalCorpusEntry(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
		default:
			panic(fmt.Sprintf("corpus type %T", a))
		}
	}
	return []byte(b.String())
}

func TestFuzzCorpusIsCurrent(t *testing.T) {
	for target, list := range fuzzSeeds(t) {
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
