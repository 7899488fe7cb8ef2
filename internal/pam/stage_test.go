package pam

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/internal/home"
)

func TestRunMisuse(t *testing.T) {
	var out bytes.Buffer
	if code := Run("mount", "alice", strings.NewReader(""), &out, ""); code != 2 || !strings.HasPrefix(out.String(), "error unknown stage") {
		t.Errorf("unknown stage: exit %d, %q", code, out.String())
	}
	if os.Geteuid() != 0 {
		out.Reset()
		if code := Run("open", "alice", strings.NewReader(""), &out, ""); code != 2 || !strings.Contains(out.String(), "must run as root") {
			t.Errorf("as a user: exit %d, %q", code, out.String())
		}
		return
	}
	out.Reset()
	if code := Run("open", "../etc", strings.NewReader(""), &out, ""); code != 2 || !strings.HasPrefix(out.String(), "error ") {
		t.Errorf("invalid user name: exit %d, %q", code, out.String())
	}
}

// TestRunNoHome: for a user without a registry entry every stage does
// nothing, says nothing and succeeds (the module never even runs it, but
// the command must be as harmless).
func TestRunNoHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the stages run as root")
	}
	defer func(r, s string) { home.RegistryDir, home.RunDir = r, s }(home.RegistryDir, home.RunDir)
	dir := t.TempDir()
	home.RegistryDir = filepath.Join(dir, "etc", "home")
	home.RunDir = filepath.Join(dir, "run", "sessions")
	for stage, in := range map[string]string{"open": "pw\x00", "close": "", "passwd": "old\x00new\x00"} {
		var out bytes.Buffer
		if code := Run(stage, "root", strings.NewReader(in), &out, ""); code != 0 || out.Len() != 0 {
			t.Errorf("%s: exit %d, output %q", stage, code, out.String())
		}
	}
	if _, err := os.Stat(home.RunDir); err == nil {
		t.Errorf("session state written for a user without an encrypted home")
	}
}

// TestLoggerLines: one message is one "LEVEL MESSAGE" line, whatever it
// holds.
func TestLoggerLines(t *testing.T) {
	var out bytes.Buffer
	log := NewLogger(&out, "no-such-user-here", "open")
	log(home.Warning, "two\nlines")
	log(home.Info, "three")
	if got, want := out.String(), "warning two lines\ninfo three\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
