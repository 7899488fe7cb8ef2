package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMountHelperName(t *testing.T) {
	for argv0, want := range map[string]string{
		"/sbin/mount.fuse.cryptfs":     "mount.fuse.cryptfs",
		"mount.fuse.cryptfs":           "mount.fuse.cryptfs",
		"/usr/sbin/mount.cryptfs":      "mount.cryptfs",
		"/usr/local/bin/cryptfs":       "",
		"cryptfs":                      "",
		"/sbin/mount.fuse":             "",
		"/tmp/mount.fuse.cryptfs/x":    "",
		"/sbin/mount.fuse.cryptfs.old": "",
	} {
		if got := mountHelperName(argv0); got != want {
			t.Errorf("mountHelperName(%q) = %q, want %q", argv0, got, want)
		}
	}
}

// TestParseHelperArgs: the command lines mount(8) builds (libmount's
// exec_helper: source, target, then -s -f -n -v -o -t) and getopt's
// variants of them.
func TestParseHelperArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want helperArgs
		err  string
	}{
		{name: "mount(8) plain", args: []string{"/c", "/m", "-o", "rw,passfile=/p"},
			want: helperArgs{source: "/c", target: "/m", options: []string{"rw,passfile=/p"}}},
		{name: "mount(8) all flags", args: []string{"/c", "/m", "-s", "-f", "-n", "-v", "-o", "ro", "-t", "fuse.cryptfs"},
			want: helperArgs{source: "/c", target: "/m", options: []string{"ro"}, sloppy: true, fake: true, verbose: true, fstype: "fuse.cryptfs"}},
		{name: "grouped flags before", args: []string{"-nsv", "/c", "/m"},
			want: helperArgs{source: "/c", target: "/m", sloppy: true, verbose: true}},
		{name: "attached values", args: []string{"-oallow_other", "-tcryptfs", "/c", "/m", "-o", "debug"},
			want: helperArgs{source: "/c", target: "/m", options: []string{"allow_other", "debug"}, fstype: "cryptfs"}},
		{name: "-r and -w", args: []string{"-r", "/c", "/m", "-w"},
			want: helperArgs{source: "/c", target: "/m", options: []string{"ro", "rw"}}},
		{name: "double dash", args: []string{"-v", "--", "-c", "/m"},
			want: helperArgs{source: "-c", target: "/m", verbose: true}},
		{name: "help", args: []string{"--help"}, want: helperArgs{help: true}},
		{name: "one directory", args: []string{"/c", "-o", "ro"}, err: "needs 2 arguments"},
		{name: "three directories", args: []string{"/c", "/m", "/x"}, err: "needs 2 arguments"},
		{name: "other type", args: []string{"-t", "ext4", "/c", "/m"}, err: "type ext4 is not cryptfs"},
		{name: "namespace", args: []string{"/c", "/m", "-N", "/proc/1/ns/mnt"}, err: "-N (mount in another mount namespace) is not supported"},
		{name: "-o without value", args: []string{"/c", "/m", "-o"}, err: "option -o needs a value"},
		{name: "unknown short", args: []string{"-x", "/c", "/m"}, err: "unknown option -x"},
		{name: "unknown long", args: []string{"--bogus", "/c", "/m"}, err: "unknown option --bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHelperArgs(tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				if code := exitCode(err); code != exitUsage {
					t.Errorf("exit code %d, want %d", code, exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.source != tt.want.source || got.target != tt.want.target || !slices.Equal(got.options, tt.want.options) ||
				got.sloppy != tt.want.sloppy || got.fake != tt.want.fake || got.verbose != tt.want.verbose ||
				got.fstype != tt.want.fstype || got.help != tt.want.help {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestParseMountOptions: every kind of option the helper meets in an
// fstab line, on the command line and from systemd, and what it makes of
// it.
func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		name     string
		opts     []string
		sloppy   bool
		flags    []string // the cryptfs mount flags
		set, clr uint64   // MOUNT_ATTR_* set on the mount afterwards
		ignored  []string
		password bool
		err      string
	}{
		{name: "typical fstab line", opts: []string{"passfile=/etc/cryptfs/p,allow_other,ro,fast_path=off"},
			flags: []string{"--passfile=/etc/cryptfs/p", "--allow-other", "--ro", "--fast-path=off"}, password: true},
		{name: "hyphenated names", opts: []string{"fast-path=kernel-cache,allow-other"},
			flags: []string{"--fast-path=kernel-cache", "--allow-other"}},
		{name: "transport and polling", opts: []string{"transport=dev,poll=adaptive"},
			flags: []string{"--transport=dev", "--poll=adaptive"}},
		{name: "mount(8) adds rw", opts: []string{"rw,nosuid,nodev,passfile=/p"},
			flags: []string{"--ro=false", "--passfile=/p"}, password: true},
		{name: "last of ro and rw wins", opts: []string{"ro", "rw"}, flags: []string{"--ro=false"}},
		{name: "repeated option keeps its first place, last value", opts: []string{"fast_path=off,debug,fast_path=ebpf"},
			flags: []string{"--fast-path=ebpf", "--debug"}},
		{name: "systemd and fstab vocabulary", opts: []string{"defaults,auto,noauto,nofail,_netdev,nouser,x-systemd.automount,x-systemd.device-timeout=10s,X-mount.mkdir,comment=systemd.automount,async,exec,atime,relatime,default_permissions"}},
		{name: "empty items", opts: []string{",,", ""}},
		{name: "per-mount flags", opts: []string{"noexec,nodiratime,nosymfollow"},
			set: unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW},
		{name: "noatime clears the atime mode", opts: []string{"noatime"},
			set: unix.MOUNT_ATTR_NOATIME, clr: unix.MOUNT_ATTR__ATIME},
		{name: "last atime mode wins", opts: []string{"noatime,strictatime"},
			set: unix.MOUNT_ATTR_STRICTATIME, clr: unix.MOUNT_ATTR__ATIME},
		{name: "extpass", opts: []string{"extpass=/usr/local/bin/getpw"}, flags: []string{"--extpass=/usr/local/bin/getpw"}, password: true},
		{name: "quoted value with commas", opts: []string{`extpass="pass show a,b",ro`}, flags: []string{"--extpass=pass show a,b", "--ro"}, password: true},
		{name: "recovery key", opts: []string{"recovery_key"}, flags: []string{"--recovery-key"}, password: true},
		{name: "shared storage", opts: []string{"passfile=/p,shared_storage"}, flags: []string{"--passfile=/p", "--shared-storage"}, password: true},
		{name: "bool with value", opts: []string{"allow_other=false"}, flags: []string{"--allow-other=false"}},
		{name: "config and log file", opts: []string{"config=/etc/cryptfs/c.conf,log_file=/var/log/c.log"},
			flags: []string{"--config=/etc/cryptfs/c.conf", "--log-file=/var/log/c.log"}},
		{name: "sloppy ignores unknown", opts: []string{"bogus,uid=1000,ro"}, sloppy: true, flags: []string{"--ro"}, ignored: []string{"bogus", "uid=1000"}},

		{name: "unknown", opts: []string{"ro,bogus"}, err: `unknown mount option "bogus"`},
		{name: "unknown with value", opts: []string{"uid=1000"}, err: `unknown mount option "uid"`},
		{name: "hidden flag", opts: []string{"insecure_kdf"}, err: `unknown mount option "insecure_kdf"`},
		{name: "internal flag", opts: []string{"internal_daemon"}, err: `unknown mount option "internal_daemon"`},
		{name: "password", opts: []string{"password=hunter2"}, err: "a password never goes in the mount options"},
		{name: "password even when sloppy", opts: []string{"pass=hunter2"}, sloppy: true, err: "a password never goes in the mount options"},
		{name: "user", opts: []string{"user"}, err: "mounting by users through fstab is not supported"},
		{name: "user=name", opts: []string{"user=alice"}, err: "mounting by users through fstab is not supported"},
		{name: "users", opts: []string{"users"}, err: "mounting by users through fstab is not supported"},
		{name: "suid", opts: []string{"suid"}, err: "always nosuid"},
		{name: "dev", opts: []string{"dev"}, err: "always nodev"},
		{name: "sync", opts: []string{"sync"}, err: "not supported"},
		{name: "remount", opts: []string{"remount,ro"}, err: "unmount and mount again"},
		{name: "foreground", opts: []string{"foreground"}, err: "cryptfs@.service"},
		{name: "help", opts: []string{"help"}, err: `unknown mount option "help"`},
		{name: "flag without value", opts: []string{"passfile"}, err: "option passfile needs a value (passfile=FILE)"},
		{name: "flag with empty value", opts: []string{"fast_path="}, err: "option fast_path has an empty value"},
		{name: "bad bool", opts: []string{"allow_other=maybe"}, err: `option allow_other: bad value "maybe"`},
		{name: "value on a generic option", opts: []string{"noauto=1"}, err: "option noauto takes no value"},
		{name: "unbalanced quote", opts: []string{`extpass="a,b`}, err: "unbalanced quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := newMount(env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}).Flags()
			p, err := parseMountOptions(tt.opts, flags, tt.sloppy)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				if code := exitCode(err); code != exitUsage {
					t.Errorf("exit code %d, want %d", code, exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.flags, tt.flags) {
				t.Errorf("flags %q, want %q", p.flags, tt.flags)
			}
			if p.attrSet != tt.set || p.attrClr != tt.clr {
				t.Errorf("attributes set %#x clear %#x, want %#x %#x", p.attrSet, p.attrClr, tt.set, tt.clr)
			}
			if !slices.Equal(p.ignored, tt.ignored) {
				t.Errorf("ignored %q, want %q", p.ignored, tt.ignored)
			}
			if p.password != tt.password {
				t.Errorf("password source %v, want %v", p.password, tt.password)
			}
		})
	}
}

// TestMountOptionFlagsExist: every flag the options name is a flag of
// cryptfs mount, so that the helper and the command cannot drift apart.
func TestMountOptionFlagsExist(t *testing.T) {
	flags := newMount(env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}).Flags()
	for _, name := range []string{"passfile", "extpass", "config", "fast-path", "allow-other", "ro", "debug", "log-file", "recovery-key", "foreground"} {
		if flags.Lookup(name) == nil {
			t.Errorf("cryptfs mount has no --%s", name)
		}
	}
}

// TestMountHelperNoPassword: at boot standard input is /dev/null; without
// passfile= the helper says so instead of failing on an empty password.
func TestMountHelperNoPassword(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	var stderr bytes.Buffer
	code := runMountHelper("mount.fuse.cryptfs", []string{"-f", "/c", "/m", "-o", "allow_other"}, env{stdin: null, stdout: io.Discard, stderr: &stderr})
	if code != exitUsage || !strings.Contains(stderr.String(), "no password: add passfile=FILE") {
		t.Errorf("exit code %d, stderr %q; want %d and the hint", code, stderr.String(), exitUsage)
	}
	// A pipe is a password source (echo pw | mount ...).
	stderr.Reset()
	code = runMountHelper("mount.fuse.cryptfs", []string{"-f", "/c", "/m"}, env{stdin: strings.NewReader("pw\n"), stdout: io.Discard, stderr: &stderr})
	if code != 0 {
		t.Errorf("with a password on standard input: exit code %d: %s", code, stderr.String())
	}
}

// TestCheckPassfile: a password file root reads at boot must not be open
// to other users.
func TestCheckPassfile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		mode os.FileMode
		err  string
	}{
		{0o600, ""}, {0o400, ""}, {0o640, ""},
		{0o644, "open to other users (mode 0644)"},
		{0o660, "open to other users (mode 0660)"},
		{0o602, "open to other users (mode 0602)"},
	} {
		p := filepath.Join(dir, tt.mode.String())
		if err := os.WriteFile(p, []byte("pw\n"), tt.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tt.mode); err != nil {
			t.Fatal(err)
		}
		err := checkPassfile(p)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("mode %04o: %v, want %q", tt.mode, err, tt.err)
		}
	}
	if err := checkPassfile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if err := checkPassfile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file passed")
	}
}
