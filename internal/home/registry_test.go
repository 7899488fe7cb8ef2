package home

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want Entry
		err  string // substring; "" for success
	}{
		{name: "minimal", in: "cipher = /home/.cryptfs/alice\nmountpoint = /home/alice\n",
			want: Entry{Cipher: "/home/.cryptfs/alice", Mountpoint: "/home/alice"}},
		{name: "all keys, comments, blank lines", in: "# c\n\ncipher=/c/alice\nmountpoint = /home/alice\n  idle = 30m\nfast-path = kernel-cache\n",
			want: Entry{Cipher: "/c/alice", Mountpoint: "/home/alice", Idle: 30 * time.Minute, FastPath: "kernel-cache"}},
		{name: "transport and poll", in: "cipher = /c\nmountpoint = /m\ntransport = dev\npoll = adaptive\n",
			want: Entry{Cipher: "/c", Mountpoint: "/m", Transport: "dev", Poll: "adaptive"}},
		{name: "bad transport", in: "cipher = /c\nmountpoint = /m\ntransport = tcp\n", err: "transport"},
		{name: "bad poll", in: "cipher = /c\nmountpoint = /m\npoll = always\n", err: "poll"},
		{name: "idle zero", in: "cipher = /c\nmountpoint = /m\nidle = 0\n", want: Entry{Cipher: "/c", Mountpoint: "/m"}},
		{name: "missing mountpoint", in: "cipher = /c\n", err: "required"},
		{name: "relative path", in: "cipher = c\nmountpoint = /m\n", err: "absolute"},
		{name: "unclean path", in: "cipher = /c/../d\nmountpoint = /m\n", err: "clean"},
		{name: "root path", in: "cipher = /\nmountpoint = /m\n", err: "other than /"},
		{name: "unknown key", in: "cipher = /c\nmountpoint = /m\nowner = bob\n", err: "unknown key"},
		{name: "repeated key", in: "cipher = /c\ncipher = /d\nmountpoint = /m\n", err: "twice"},
		{name: "no value", in: "cipher =\nmountpoint = /m\n", err: "key = value"},
		{name: "no equals", in: "cipher /c\n", err: "key = value"},
		{name: "bad idle", in: "cipher = /c\nmountpoint = /m\nidle = soon\n", err: "duration"},
		{name: "negative idle", in: "cipher = /c\nmountpoint = /m\nidle = -1s\n", err: "duration"},
		{name: "bad fast path", in: "cipher = /c\nmountpoint = /m\nfast-path = fast\n", err: "fast-path"},
		{name: "cipher inside the mountpoint", in: "cipher = /home/alice/.c\nmountpoint = /home/alice\n", err: "contain"},
		{name: "mountpoint inside the cipher", in: "cipher = /c\nmountpoint = /c/m\n", err: "contain"},
		{name: "same", in: "cipher = /c\nmountpoint = /c\n", err: "contain"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse([]byte(c.in))
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("Parse = %+v, %v; want an error containing %q", got, err, c.err)
			case c.err == "" && got != c.want:
				t.Fatalf("Parse = %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestMarshalParse: what Marshal writes, Parse reads back.
func TestMarshalParse(t *testing.T) {
	for _, e := range []Entry{
		{User: "alice", Cipher: "/home/.cryptfs/alice", Mountpoint: "/home/alice"},
		{User: "bob", Cipher: "/srv/c/bob", Mountpoint: "/home/bob", Idle: 90 * time.Second, FastPath: "off"},
		{User: "carol", Cipher: "/srv/c/carol", Mountpoint: "/home/carol", Transport: "uring", Poll: "off"},
	} {
		got, err := Parse(e.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		got.User = e.User
		if got != e {
			t.Errorf("round trip of %+v gave %+v", e, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("cipher = /home/.cryptfs/alice\nmountpoint = /home/alice\nidle = 30m\nfast-path = auto\n"))
	f.Add([]byte("# x\ncipher=/a\nmountpoint=/b\n"))
	f.Add([]byte("cipher = /a\ncipher = /a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses is sane and survives a round trip.
		if !filepath.IsAbs(e.Cipher) || !filepath.IsAbs(e.Mountpoint) || e.Idle < 0 {
			t.Fatalf("Parse accepted %+v", e)
		}
		if within(e.Cipher, e.Mountpoint) || within(e.Mountpoint, e.Cipher) {
			t.Fatalf("Parse accepted nested directories %+v", e)
		}
		again, err := Parse(e.Marshal())
		if err != nil || again != e {
			t.Fatalf("round trip of %+v: %+v, %v", e, again, err)
		}
	})
}

func TestValidUser(t *testing.T) {
	for name, want := range map[string]bool{
		"alice": true, "a": true, "Bob_2.x-y": true, strings.Repeat("a", 32): true,
		"": false, strings.Repeat("a", 33): false, "-x": false, ".x": false, "..": false,
		"a/b": false, "../etc/passwd": false, "a b": false, "a\x00": false, "é": false, "a$": false,
	} {
		if got := ValidUser(name); got != want {
			t.Errorf("ValidUser(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestLoadTrust: an entry is used only when it and the directories above
// it are root's alone; otherwise it is as if there were none, with the
// reason.
func TestLoadTrust(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the trust checks need files owned by root (run as root)")
	}
	base := t.TempDir()
	defer func(d string) { RegistryDir = d }(RegistryDir)
	RegistryDir = filepath.Join(base, "cryptfs", "home")
	good := Entry{User: "alice", Cipher: "/home/.cryptfs/alice", Mountpoint: "/home/alice"}

	if _, err := Load("alice"); !errors.Is(err, ErrNoEntry) {
		t.Fatalf("Load without a registry: %v, want ErrNoEntry", err)
	}
	if err := Save(good); err != nil {
		t.Fatal(err)
	}
	e, err := Load("alice")
	if err != nil || e != good {
		t.Fatalf("Load = %+v, %v; want %+v", e, err, good)
	}
	if _, err := Load("bob"); !errors.Is(err, ErrNoEntry) {
		t.Errorf("Load of another user: %v, want ErrNoEntry", err)
	}
	if _, err := Load("../alice"); !errors.Is(err, ErrNoEntry) {
		t.Errorf("Load of an invalid name: %v, want ErrNoEntry", err)
	}

	path := EntryPath("alice")
	for _, c := range []struct {
		name        string
		spoil, mend func() error
	}{
		{"file writable by others", func() error { return os.Chmod(path, 0o666) }, func() error { return os.Chmod(path, 0o644) }},
		{"file of another user", func() error { return os.Chown(path, 1000, 0) }, func() error { return os.Chown(path, 0, 0) }},
		{"directory writable by group", func() error { return os.Chmod(RegistryDir, 0o775) }, func() error { return os.Chmod(RegistryDir, 0o755) }},
		{"parent of another user", func() error { return os.Chown(filepath.Dir(RegistryDir), 1000, 0) }, func() error { return os.Chown(filepath.Dir(RegistryDir), 0, 0) }},
		{"symlink", func() error {
			if err := os.Rename(path, path+".real"); err != nil {
				return err
			}
			return os.Symlink(path+".real", path)
		}, func() error {
			os.Remove(path)
			return os.Rename(path+".real", path)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.spoil(); err != nil {
				t.Fatal(err)
			}
			_, err := Load("alice")
			if err := c.mend(); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(err, ErrUntrusted) {
				t.Errorf("Load = %v, want ErrUntrusted", err)
			}
			if _, err := Load("alice"); err != nil {
				t.Errorf("after mending: %v", err)
			}
		})
	}
	if err := Remove("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("alice"); !errors.Is(err, ErrNoEntry) {
		t.Errorf("Load after Remove: %v", err)
	}
}
