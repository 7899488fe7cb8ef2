package home

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadSecrets(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want []string
		err  bool
	}{
		{"pw\x00", 1, []string{"pw"}, false},
		{"pw", 1, []string{"pw"}, false},               // no final NUL
		{"", 1, []string{""}, false},                   // no password (key-based login)
		{"\x00new\x00", 2, []string{"", "new"}, false}, // no old password (root's passwd)
		{"old\x00new\x00", 2, []string{"old", "new"}, false},
		{"old\x00", 2, []string{"old", ""}, false},
		{"a\x00b\x00c\x00", 2, []string{"a", "b"}, false}, // the rest is not read
		{"p w\nx\x00", 1, []string{"p w\nx"}, false},      // any byte but NUL
		{strings.Repeat("x", maxSecret) + "\x00", 1, []string{strings.Repeat("x", maxSecret)}, false},
		{strings.Repeat("x", maxSecret+1), 1, nil, true},
	} {
		got, err := ReadSecrets(strings.NewReader(c.in), c.n)
		if (err != nil) != c.err {
			t.Errorf("ReadSecrets(%q, %d): %v", c.in, c.n, err)
			continue
		}
		if c.err {
			continue
		}
		for i := range c.want {
			if string(got[i]) != c.want[i] {
				t.Errorf("ReadSecrets(%q, %d)[%d] = %q, want %q", c.in, c.n, i, got[i], c.want[i])
			}
		}
	}
}

func FuzzReadSecrets(f *testing.F) {
	f.Add([]byte("old\x00new\x00"), 2)
	f.Add([]byte(""), 1)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		n = n%4 + 1
		if n < 1 {
			n = -n + 1
		}
		got, err := ReadSecrets(bytes.NewReader(data), n)
		if err != nil {
			return
		}
		if len(got) != n {
			t.Fatalf("%d secrets, want %d", len(got), n)
		}
		for _, s := range got {
			if len(s) > maxSecret || bytes.IndexByte(s, 0) >= 0 {
				t.Fatalf("secret %q: too long or holds a NUL", s)
			}
		}
	})
}
