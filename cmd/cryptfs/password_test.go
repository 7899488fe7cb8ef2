package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretSizeLimit: a password source whose first line is longer than
// maxSecret (a --passfile, standard input, --extpass output) is refused at
// once with a usage error, after reading at most maxSecret+1 bytes; a line
// at the limit is read.
func TestSecretSizeLimit(t *testing.T) {
	dir := t.TempDir()
	cipher := filepath.Join(dir, "cipher")
	var out bytes.Buffer
	e := env{stdin: strings.NewReader("pw\n"), stdout: &out, stderr: &out}
	if code := run([]string{"init", "--insecure-kdf", cipher}, e); code != 0 {
		t.Fatalf("init: %d %s", code, out.String())
	}
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, bytes.Repeat([]byte("a"), 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	atLimit := filepath.Join(dir, "at-limit")
	if err := os.WriteFile(atLimit, append(bytes.Repeat([]byte("a"), maxSecret), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		args  []string
		stdin string
		code  int
	}{
		{"passfile", []string{"--passfile", huge}, "", exitUsage},
		{"stdin", nil, strings.Repeat("a", 8<<20), exitUsage},
		{"extpass", []string{"--extpass", "head -c 8388608 /dev/zero | tr '\\0' a"}, "", exitUsage},
		{"passfile at the limit", []string{"--passfile", atLimit}, "", exitWrongPassword},
	} {
		t.Run(c.name, func(t *testing.T) {
			out.Reset()
			args := append(append([]string{"fsck", "--insecure-kdf"}, c.args...), cipher)
			e := env{stdin: strings.NewReader(c.stdin), stdout: &out, stderr: &out}
			if code := run(args, e); code != c.code {
				t.Errorf("cryptfs %s: exit %d, want %d: %s", strings.Join(args, " "), code, c.code, out.String())
			}
			if c.code == exitUsage && !strings.Contains(out.String(), "no line end in the first 4096 bytes") {
				t.Errorf("the message does not say why: %s", out.String())
			}
		})
	}
}
