package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"github.com/cryptfs/cryptfs/crypt"
)

// Recovery key format (docs/format.md, "Recovery key"):
//
//	payload  = master key (32 bytes) || first 3 bytes of
//	           SHA-256("cryptfs recovery key v1" || master key)
//	symbols  = payload as 56 five-bit values, most significant bit first
//	group g  = 7 symbols d0..d6, then a check symbol
//	           c = g XOR sum over i of alpha^(i+1) * d_i  in GF(32)
//	text     = each symbol in Crockford's base32 alphabet, 8 groups of 8
//	           characters joined by '-'
//
// The check symbol of a group detects every single wrong character and
// every swap of two adjacent different characters in that group, so such
// typos are reported with the group's number; the 24-bit checksum catches
// most multi-character typos; and the filesystem's key check tells a
// well-formed key of another filesystem apart.
const (
	recoveryAlphabet  = "0123456789ABCDEFGHJKMNPQRSTVWXYZ" // Crockford base32
	recoveryGroups    = 8
	recoveryGroupData = 7
	recoveryGroupLen  = recoveryGroupData + 1
	recoveryChars     = recoveryGroups * recoveryGroupLen // 64
	recoverySumLen    = 3
	recoveryDomain    = "cryptfs recovery key v1"
	maxRecoveryInput  = 1024
)

// gfMul multiplies in GF(32) = GF(2)[x]/(x^5 + x^2 + 1).
func gfMul(a, b byte) byte {
	var p byte
	for range 5 {
		if b&1 != 0 {
			p ^= a
		}
		b >>= 1
		a <<= 1
		if a&0x20 != 0 {
			a ^= 0x25
		}
	}
	return p
}

// groupCheck returns the check symbol of group g with data symbols d.
func groupCheck(g int, d []byte) byte {
	c := byte(g)
	w := byte(1)
	for _, s := range d {
		w = gfMul(w, 2) // alpha^(i+1)
		c ^= gfMul(w, s)
	}
	return c
}

func recoverySum(master []byte) []byte {
	h := sha256.New()
	h.Write([]byte(recoveryDomain))
	h.Write(master)
	return h.Sum(nil)[:recoverySumLen]
}

// RecoveryKey returns the human-friendly form of master (crypt.KeyLen
// bytes; it panics otherwise): 8 dash-separated groups of 8 Crockford
// base32 characters, for example
// "4QMX2Z1R-...". Show it once; it replaces the password.
func RecoveryKey(master []byte) string {
	if len(master) != crypt.KeyLen {
		panic(fmt.Sprintf("config: RecoveryKey of a %d-byte key", len(master)))
	}
	payload := append(append(make([]byte, 0, crypt.KeyLen+recoverySumLen), master...), recoverySum(master)...)
	syms := toSymbols(payload)
	var b strings.Builder
	for g := range recoveryGroups {
		if g > 0 {
			b.WriteByte('-')
		}
		d := syms[g*recoveryGroupData : (g+1)*recoveryGroupData]
		for _, s := range d {
			b.WriteByte(recoveryAlphabet[s])
		}
		b.WriteByte(recoveryAlphabet[groupCheck(g, d)])
	}
	crypt.Wipe(payload)
	crypt.Wipe(syms)
	return b.String()
}

// toSymbols splits b (35 bytes) into 5-bit values, most significant first.
func toSymbols(b []byte) []byte {
	out := make([]byte, 0, len(b)*8/5)
	var acc uint32
	bits := 0
	for _, x := range b {
		acc = acc<<8 | uint32(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>bits)&31)
		}
	}
	return out
}

// fromSymbols is the inverse of toSymbols for 56 symbols.
func fromSymbols(s []byte) []byte {
	out := make([]byte, 0, len(s)*5/8)
	var acc uint32
	bits := 0
	for _, x := range s {
		acc = acc<<5 | uint32(x)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	return out
}

// recoverySymbol maps a character to its symbol value: case-insensitive,
// with Crockford's aliases O=0 and I=L=1. It returns false for anything
// else.
func recoverySymbol(c rune) (byte, bool) {
	switch c {
	case 'o', 'O':
		c = '0'
	case 'i', 'I', 'l', 'L':
		c = '1'
	}
	if 'a' <= c && c <= 'z' {
		c -= 'a' - 'A'
	}
	if c > 0x7f {
		return 0, false
	}
	i := strings.IndexByte(recoveryAlphabet, byte(c))
	if i < 0 {
		return 0, false
	}
	return byte(i), true
}

// ParseRecoveryKey parses a recovery key typed by a human: case does not
// matter, spaces, tabs, newlines and dashes are ignored, O reads as 0 and I
// and L as 1. Any error wraps ErrRecoveryKeyTypo and says which group to
// re-check where it can.
func ParseRecoveryKey(s string) ([]byte, error) {
	if len(s) > maxRecoveryInput {
		return nil, fmt.Errorf("%w: %d characters is far too long (a recovery key has %d)", ErrRecoveryKeyTypo, len(s), recoveryChars)
	}
	syms := make([]byte, 0, recoveryChars)
	defer crypt.Wipe(syms[:cap(syms)])
	n := 0
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\r', '-':
			continue
		}
		v, ok := recoverySymbol(r)
		if !ok {
			return nil, fmt.Errorf("%w: character %d (in group %d) is not a recovery key character (0-9 and A-Z without I, L, O, U)",
				ErrRecoveryKeyTypo, n+1, n/recoveryGroupLen+1)
		}
		if n < recoveryChars {
			syms = append(syms, v)
		}
		n++
	}
	if n != recoveryChars {
		return nil, fmt.Errorf("%w: it has %d characters, a recovery key has %d (%d groups of %d): a character is missing or extra",
			ErrRecoveryKeyTypo, n, recoveryChars, recoveryGroups, recoveryGroupLen)
	}
	var bad []string
	data := make([]byte, 0, recoveryGroups*recoveryGroupData)
	defer crypt.Wipe(data[:cap(data)])
	for g := range recoveryGroups {
		grp := syms[g*recoveryGroupLen : (g+1)*recoveryGroupLen]
		if groupCheck(g, grp[:recoveryGroupData]) != grp[recoveryGroupData] {
			bad = append(bad, fmt.Sprint(g+1))
		}
		data = append(data, grp[:recoveryGroupData]...)
	}
	switch len(bad) {
	case 0:
	case 1:
		return nil, fmt.Errorf("%w: group %s (of %d) is wrong: re-check that group", ErrRecoveryKeyTypo, bad[0], recoveryGroups)
	default:
		return nil, fmt.Errorf("%w: groups %s (of %d) are wrong: re-check those groups", ErrRecoveryKeyTypo, strings.Join(bad, ", "), recoveryGroups)
	}
	payload := fromSymbols(data)
	master := payload[:crypt.KeyLen]
	if subtle.ConstantTimeCompare(recoverySum(master), payload[crypt.KeyLen:]) != 1 {
		crypt.Wipe(payload)
		return nil, fmt.Errorf("%w: the checksum does not match; two or more characters are wrong: re-check every group", ErrRecoveryKeyTypo)
	}
	crypt.Wipe(payload[crypt.KeyLen:])
	return master[:crypt.KeyLen:crypt.KeyLen], nil
}
