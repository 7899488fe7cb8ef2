package main

import (
	"context"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testLogger logs through t.
func testLogger(t *testing.T) *log.Logger { return log.New(testWriter{t}, "", 0) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// requireRootFUSE skips unless the test can mount FUSE file systems.
func requireRootFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

// testSystems returns the systems this machine can run: native always,
// cryptfs when CRYPTFS_BIN names a binary (make test sets it), gocryptfs
// when installed.
func testSystems(t *testing.T, lower, pass string) []system {
	systems := []system{&native{dir: filepath.Join(lower, "native")}}
	if bin := os.Getenv("CRYPTFS_BIN"); bin != "" {
		systems = append(systems, newCryptfs(bin, "kernel-cache", lower, pass), newCryptfs(bin, "off", lower, pass))
	} else {
		t.Log("CRYPTFS_BIN not set: cryptfs not tested (make test sets it)")
	}
	if _, err := exec.LookPath("gocryptfs"); err == nil {
		systems = append(systems, newGocryptfs(lower, pass))
	} else {
		t.Log("gocryptfs not installed: not tested")
	}
	return systems
}

// TestSystems mounts each system, writes through it, checks the daemon's
// figures move, remounts cold and reads the data back, and checks that
// teardown leaves neither a mount nor a daemon behind.
func TestSystems(t *testing.T) {
	requireRootFUSE(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pass := filepath.Join(dir, "password")
	if err := os.WriteFile(pass, []byte("test password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &bench{self: self, work: dir}
	for _, s := range testSystems(t, dir, pass) {
		t.Run(s.ID(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := s.Setup(ctx); err != nil {
				s.Teardown(context.Background())
				t.Fatal(err)
			}
			defer s.Teardown(context.Background())
			fuse := s.ID() != "native"
			if fuse != (s.PID() > 0) {
				t.Fatalf("daemon pid %d for %s", s.PID(), s.ID())
			}

			file := filepath.Join(s.Root(), "f")
			u0, err := s.Upcalls(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.helper(ctx, "write", "-file", file, "-size", "3000000"); err != nil {
				t.Fatal(err)
			}
			u1, err := s.Upcalls(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := u1.sub(u0); fuse && d["WRITE"].Upcalls == 0 {
				t.Errorf("writing 3 MB counted no WRITE upcall: %v", d)
			} else if !fuse && d != nil {
				t.Errorf("native counted upcalls %v", d)
			}

			before := s.PID()
			if err := s.Remount(ctx, true); err != nil {
				t.Fatal(err)
			}
			if fuse {
				if s.PID() == before || s.PID() <= 0 {
					t.Errorf("remount kept daemon %d (now %d)", before, s.PID())
				}
				if !waitGone(before, 10*time.Second) {
					t.Errorf("old daemon %d still runs after the remount", before)
				}
				if _, err := readProc(s.PID()); err != nil {
					t.Errorf("new daemon: %v", err)
				}
			}
			m, err := b.helper(ctx, "read", "-file", file)
			if err != nil {
				t.Fatal(err)
			}
			if m.Bytes != 3000000 {
				t.Errorf("read back %d bytes, want 3000000", m.Bytes)
			}

			pid := s.PID()
			if err := s.Teardown(ctx); err != nil {
				t.Fatal(err)
			}
			if fuse {
				if left := mountsUnder(s.Root()); len(left) > 0 {
					t.Errorf("still mounted after teardown: %v", left)
				}
				if !waitGone(pid, 10*time.Second) {
					t.Errorf("daemon %d still runs after teardown", pid)
				}
			}
			if err := s.Teardown(ctx); err != nil {
				t.Errorf("second teardown: %v", err)
			}
		})
	}
}

// TestAbort checks that Abort frees a mount whose daemon is stopped (as a
// hung daemon would be) and that its processes can then return.
func TestAbort(t *testing.T) {
	requireRootFUSE(t)
	bin := os.Getenv("CRYPTFS_BIN")
	if bin == "" {
		t.Skip("CRYPTFS_BIN not set (make test sets it)")
	}
	dir := t.TempDir()
	pass := filepath.Join(dir, "password")
	if err := os.WriteFile(pass, []byte("test password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newCryptfs(bin, "off", dir, pass)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Setup(ctx); err != nil {
		s.Teardown(context.Background())
		t.Fatal(err)
	}
	pid := s.PID()
	// Freeze the daemon: a stat in a child now hangs.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stat := exec.Command("stat", filepath.Join(s.Root(), "nothing-here"))
	if err := stat.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- stat.Wait() }()
	select {
	case <-done:
		t.Fatalf("stat returned although the daemon is stopped")
	case <-time.After(300 * time.Millisecond):
	}
	s.Abort()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("stat still hangs after Abort")
	}
	if left := mountsUnder(s.Root()); len(left) > 0 {
		t.Errorf("still mounted after Abort: %v", left)
	}
	if !waitGone(pid, 10*time.Second) {
		t.Errorf("daemon %d still runs after Abort", pid)
	}
	if err := s.Teardown(ctx); err != nil {
		t.Errorf("teardown after Abort: %v", err)
	}
}

func TestLowerLoop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices and mounts need root")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("no mkfs.ext4 (e2fsprogs)")
	}
	work := t.TempDir()
	l, err := setupLower(context.Background(), work, "loop", 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	lg := testLogger(t)
	defer l.teardown(lg)
	if got := mountsUnder(l.dir); len(got) != 1 || got[0] != l.dir {
		t.Fatalf("mounts under %s: %v", l.dir, got)
	}
	if !strings.HasPrefix(l.loop, "/dev/loop") {
		t.Errorf("loop device %q", l.loop)
	}
	if dio, err := os.ReadFile("/sys/block/" + filepath.Base(l.loop) + "/loop/dio"); err != nil || strings.TrimSpace(string(dio)) != "1" {
		t.Errorf("direct I/O of %s: %q, %v", l.loop, dio, err)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.teardown(lg)
	if got := mountsUnder(l.dir); len(got) != 0 {
		t.Errorf("still mounted after teardown: %v", got)
	}
	out, _ := exec.Command("losetup", "--associated", l.img, "--noheadings").Output()
	if len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("loop device still attached: %s", out)
	}
	// removeWork removes the lot.
	removeWork(work, lg)
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work directory still there: %v", err)
	}
}
