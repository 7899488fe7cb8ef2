package config

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

func randomKey(t testing.TB) []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// stripKey removes the dashes of a canonical recovery key.
func stripKey(k string) string { return strings.ReplaceAll(k, "-", "") }

// regroup inserts dashes every 8 characters.
func regroup(s string) string {
	var parts []string
	for len(s) > 8 {
		parts = append(parts, s[:8])
		s = s[8:]
	}
	return strings.Join(append(parts, s), "-")
}

func TestRecoveryKeyRoundTrip(t *testing.T) {
	keys := [][]byte{make([]byte, 32), bytes.Repeat([]byte{0xff}, 32), seq(0, 32)}
	for range 200 {
		keys = append(keys, randomKey(t))
	}
	for _, k := range keys {
		s := RecoveryKey(k)
		if len(s) != 71 || strings.Count(s, "-") != 7 {
			t.Fatalf("recovery key %q has the wrong shape", s)
		}
		for i, g := range strings.Split(s, "-") {
			if len(g) != 8 || strings.Trim(g, recoveryAlphabet) != "" {
				t.Fatalf("group %d %q", i, g)
			}
		}
		got, err := ParseRecoveryKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Fatalf("ParseRecoveryKey(RecoveryKey(%x)) = %x, %v", k, got, err)
		}
	}
}

func TestRecoveryKeyLenientInput(t *testing.T) {
	k := seq(0, 32) // its key contains 0 and 1, so the aliases matter
	canon := RecoveryKey(k)
	if !strings.ContainsAny(canon, "01") {
		t.Fatal("test key has no 0 or 1")
	}
	inputs := []string{
		strings.ToLower(canon),
		stripKey(canon),
		strings.ReplaceAll(canon, "-", " "),
		"  " + strings.ReplaceAll(canon, "-", "\n") + "\n",
		strings.ReplaceAll(strings.ReplaceAll(canon, "0", "O"), "1", "I"),
		strings.ReplaceAll(strings.ReplaceAll(canon, "0", "o"), "1", "l"),
		strings.ReplaceAll(stripKey(canon), "", "-"),
		"\t" + canon[:20] + "--" + canon[20:],
	}
	for _, in := range inputs {
		got, err := ParseRecoveryKey(in)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseRecoveryKey(%q) = %x, %v", in, got, err)
		}
	}
}

func groupErr(t *testing.T, in string, group int) {
	t.Helper()
	_, err := ParseRecoveryKey(in)
	if !errors.Is(err, ErrRecoveryKeyTypo) {
		t.Fatalf("ParseRecoveryKey(%q): %v, want ErrRecoveryKeyTypo", in, err)
	}
	if !strings.Contains(err.Error(), "mistyped") {
		t.Fatalf("error %q does not say the key was mistyped", err)
	}
	if group > 0 && !strings.Contains(err.Error(), fmt.Sprintf("group %d ", group)) && !strings.Contains(err.Error(), fmt.Sprintf("group %d)", group)) {
		t.Fatalf("error %q does not name group %d", err, group)
	}
	for _, g := range strings.Split(regroup(stripKey(strings.ToUpper(in))), "-") {
		if len(g) >= 4 && strings.Contains(err.Error(), g) {
			t.Fatalf("error %q contains key material %q", err, g)
		}
	}
}

// TestRecoveryKeySingleSubstitution: every single changed character, to
// every other character of the alphabet and to characters outside it, is
// a typo naming its group.
func TestRecoveryKeySingleSubstitution(t *testing.T) {
	for range 5 {
		s := stripKey(RecoveryKey(randomKey(t)))
		for i := range len(s) {
			for _, c := range recoveryAlphabet + "U!é" {
				if string(c) == s[i:i+1] {
					continue
				}
				groupErr(t, regroup(s[:i]+string(c)+s[i+1:]), i/8+1)
			}
		}
	}
}

// TestRecoveryKeyAdjacentSwap: every swap of two adjacent different
// characters, within a group or across a group boundary, is a typo.
func TestRecoveryKeyAdjacentSwap(t *testing.T) {
	swaps := 0
	for range 50 {
		s := []byte(stripKey(RecoveryKey(randomKey(t))))
		for i := 0; i+1 < len(s); i++ {
			if s[i] == s[i+1] {
				continue
			}
			b := bytes.Clone(s)
			b[i], b[i+1] = b[i+1], b[i]
			group := i/8 + 1
			if i%8 == 7 {
				group = 0 // across groups: both are wrong
			}
			groupErr(t, regroup(string(b)), group)
			swaps++
		}
	}
	if swaps < 1000 {
		t.Fatalf("only %d swaps tested", swaps)
	}
}

func TestRecoveryKeyMissingOrExtra(t *testing.T) {
	s := stripKey(RecoveryKey(randomKey(t)))
	for i := range len(s) {
		groupErr(t, regroup(s[:i]+s[i+1:]), 0)
		groupErr(t, regroup(s[:i]+"X"+s[i:]), 0)
	}
	groupErr(t, "", 0)
	groupErr(t, strings.Repeat("0", 2000), 0)
}

// TestRecoveryKeyMultipleTypos: random 2..4-character errors are never
// accepted (the group checks and the 24-bit checksum catch them).
func TestRecoveryKeyMultipleTypos(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 20000 {
		s := []byte(stripKey(RecoveryKey(randomKey(t))))
		orig := string(s)
		for range 2 + r.IntN(3) {
			s[r.IntN(len(s))] = recoveryAlphabet[r.IntN(32)]
		}
		if string(s) == orig {
			continue
		}
		if _, err := ParseRecoveryKey(string(s)); !errors.Is(err, ErrRecoveryKeyTypo) {
			t.Fatalf("%q (from %q): %v, want ErrRecoveryKeyTypo", s, orig, err)
		}
	}
}

// TestRecoveryKeyChecksumOnly: a change that keeps every group check valid
// (two compensating changes in one group) is still caught by the checksum.
func TestRecoveryKeyChecksumOnly(t *testing.T) {
	found := 0
	for range 200 {
		s := []byte(stripKey(RecoveryKey(randomKey(t))))
		// Change data symbol 0 of group 2 and fix the check symbol.
		d := make([]byte, 7)
		for i := range d {
			d[i] = byte(strings.IndexByte(recoveryAlphabet, s[8+i]))
		}
		d[0] ^= 1
		s[8] = recoveryAlphabet[d[0]]
		s[15] = recoveryAlphabet[groupCheck(1, d)]
		_, err := ParseRecoveryKey(string(s))
		if !errors.Is(err, ErrRecoveryKeyTypo) || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("%v, want a checksum typo error", err)
		}
		found++
	}
	if found == 0 {
		t.Fatal("nothing tested")
	}
}

func TestRecoveryKeyPanicsOnBadLength(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("RecoveryKey of a 31-byte key did not panic")
		}
	}()
	RecoveryKey(make([]byte, 31))
}

func TestGFMul(t *testing.T) {
	// alpha = x generates all 31 non-zero elements (x^5+x^2+1 is primitive).
	seen := map[byte]bool{}
	w := byte(1)
	for range 31 {
		seen[w] = true
		w = gfMul(w, 2)
	}
	if len(seen) != 31 || w != 1 {
		t.Fatalf("alpha has order != 31: %d elements", len(seen))
	}
	for a := range byte(32) {
		for b := range byte(32) {
			if gfMul(a, b) != gfMul(b, a) || gfMul(a, 1) != a || gfMul(a, 0) != 0 {
				t.Fatalf("gfMul(%d,%d)", a, b)
			}
		}
	}
}
