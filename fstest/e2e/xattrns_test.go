package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// TestUnsupportedXattrNamespaces: names outside user.* are unsupported
// (EOPNOTSUPP for get, set and remove, in every tier), user.* attributes
// still work, and so GNU ls -l, which stops asking a device for SELinux
// labels and ACLs once it says EOPNOTSUPP, sends a handful of GETXATTR
// requests for a directory of 300 files instead of two per file.
func TestUnsupportedXattrNamespaces(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	const files = 300
	unsupported := []string{"security.selinux", "security.capability", "system.posix_acl_access",
		"system.posix_acl_default", "trusted.x", "user", "nonamespace"}
	for _, tier := range []string{"off", "kernel-cache"} {
		t.Run(tier, func(t *testing.T) {
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--fast-path=" + tier}})
			dir := filepath.Join(m.Dir, "d")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range files {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(dir, "f000")
			if err := unix.Setxattr(p, "user.kept", []byte("v"), 0); err != nil {
				t.Fatalf("setxattr user.kept: %v", err)
			}
			for _, name := range unsupported {
				for _, path := range []string{p, dir} {
					if _, err := unix.Getxattr(path, name, make([]byte, 256)); !errors.Is(err, unix.EOPNOTSUPP) {
						t.Errorf("getxattr %s %s: %v, want EOPNOTSUPP", path, name, err)
					}
					if _, err := unix.Getxattr(path, name, nil); !errors.Is(err, unix.EOPNOTSUPP) {
						t.Errorf("getxattr size query %s %s: %v, want EOPNOTSUPP", path, name, err)
					}
				}
				if err := unix.Setxattr(p, name, []byte("v"), 0); !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
					t.Errorf("setxattr %s: %v, want EOPNOTSUPP (or the VFS's own refusal)", name, err)
				}
				if name == "system.posix_acl_default" {
					// Removing a default ACL of a file: the VFS says
					// "done" without asking (set_posix_acl).
					continue
				}
				if err := unix.Removexattr(p, name); !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
					t.Errorf("removexattr %s: %v, want EOPNOTSUPP (or the VFS's own refusal)", name, err)
				}
			}
			buf := make([]byte, 16)
			if n, err := unix.Getxattr(p, "user.kept", buf); err != nil || string(buf[:n]) != "v" {
				t.Errorf("getxattr user.kept: %q, %v", buf[:max(n, 0)], err)
			}
			if _, err := unix.Getxattr(p, "user.missing", buf); !errors.Is(err, unix.ENODATA) {
				t.Errorf("getxattr user.missing: %v, want ENODATA", err)
			}
			if n, err := unix.Listxattr(p, make([]byte, 256)); err != nil || n != len("user.kept\x00") {
				t.Errorf("listxattr: %d bytes, %v; want user.kept only", n, err)
			}

			ls, err := exec.LookPath("ls")
			if err != nil {
				t.Skipf("skipping the ls -l count: %v", err)
			}
			col := requestCollector(t, m.Dir)
			defer col.Close()
			before, err := col.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(ls, "-l", dir).CombinedOutput()
			if err != nil {
				t.Fatalf("ls -l: %v\n%s", err, out)
			}
			after, err := col.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if lines := strings.Count(string(out), "\n"); lines != files+1 {
				t.Errorf("ls -l printed %d lines, want %d", lines, files+1)
			}
			if strings.Contains(string(out), "+ ") {
				t.Errorf("ls -l shows an ACL mark:\n%s", out)
			}
			got := after.Sub(before).Ops[fuseop.Getxattr].Sent
			t.Logf("%s: ls -l of %d files sent %d GETXATTR", tier, files, got)
			if got > 10 {
				t.Errorf("ls -l of %d files sent %d GETXATTR, want at most 10 (it stops asking after EOPNOTSUPP)", files, got)
			}
		})
	}
}

// TestOneCapabilityQueryPerFile: the kernel asks whether a file has a
// security.capability before a write may clear it, and FUSE mounts never
// remember the answer unless the daemon takes over clearing set-ID bits
// (FUSE_HANDLE_KILLPRIV_V2, which makes the mount SB_NOSEC). Then it asks
// once per file, not once per write(2): 64 writes send one GETXATTR. Not in
// the off tier: there every write(2) refreshes the attributes (none are
// cached), and each refresh makes the kernel forget the answer.
func TestOneCapabilityQueryPerFile(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	const writes = 64
	for _, tier := range []string{"kernel-cache"} {
		t.Run(tier, func(t *testing.T) {
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--fast-path=" + tier}})
			p := filepath.Join(m.Dir, "f")
			col := requestCollector(t, m.Dir)
			defer col.Close()
			before, err := col.Snapshot()
			mustDo(t, err)
			f, err := os.Create(p)
			mustDo(t, err)
			chunk := make([]byte, 4096)
			for i := range writes {
				chunk[0] = byte(i)
				if _, err := f.Write(chunk); err != nil {
					f.Close()
					t.Fatal(err)
				}
			}
			mustDo(t, f.Close())
			after, err := col.Snapshot()
			mustDo(t, err)
			got := after.Sub(before).Ops[fuseop.Getxattr].Sent
			t.Logf("%s: %d writes sent %d GETXATTR", tier, writes, got)
			if got > 2 {
				t.Errorf("%d write(2) calls sent %d GETXATTR, want at most 2 (one security.capability query per file)", writes, got)
			}
			data, err := os.ReadFile(p)
			mustDo(t, err)
			if len(data) != writes*len(chunk) || data[len(chunk)*(writes-1)] != writes-1 {
				t.Errorf("read back %d bytes, want %d with the last chunk marked", len(data), writes*len(chunk))
			}
		})
	}
}
