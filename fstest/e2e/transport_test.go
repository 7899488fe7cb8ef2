package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// onCPU runs f on a thread pinned to cpu and returns its error: with FUSE
// over io_uring the kernel queues a request on the queue of the CPU its
// caller runs on, so pinning the caller picks the queue.
func onCPU(cpu int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with the goroutine, and its
		// affinity with it.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- fmt.Errorf("pin to CPU %d: %w", cpu, err)
			return
		}
		done <- f()
	}()
	return <-done
}

// transportOf mounts with --transport=asked and returns the mount and what
// cryptfs status says of its transport (text and JSON); the mount must
// work: a file written through it reads back.
func transportOf(t *testing.T, asked string) (m *cryptfstest.Mount, name, reason, text string) {
	t.Helper()
	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--transport=" + asked}})
	st, err := m.Status(t.Context())
	mustDo(t, err)
	out, code := cryptfstest.Run(t, "", "status", m.Dir)
	if code != 0 {
		t.Fatalf("cryptfs status: exit code %d\n%s", code, out)
	}
	want := []byte(strings.Repeat("transport ", 1000))
	p := filepath.Join(m.Dir, "f")
	mustDo(t, os.WriteFile(p, want, 0o644))
	got, err := os.ReadFile(p)
	mustDo(t, err)
	if !bytes.Equal(got, want) {
		t.Fatalf("--transport=%s: read back %d bytes, not what was written", asked, len(got))
	}
	return m, st.Transport, st.TransportReason, out
}

// TestTransport: --transport=dev, auto and uring mount with the transport
// they promise, cryptfs status says which and why, and --transport=uring
// fails with exit code 16 and the reason where the kernel does not offer
// FUSE over io_uring.
func TestTransport(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	t.Run("dev", func(t *testing.T) {
		_, name, reason, text := transportOf(t, "dev")
		if name != "dev" || reason != "requested" {
			t.Errorf("--transport=dev: status says %q (%s)", name, reason)
		}
		if !strings.Contains(text, "Transport:   dev (requested)") {
			t.Errorf("cryptfs status does not show the transport:\n%s", text)
		}
	})
	t.Run("not-offered", func(t *testing.T) {
		if _, err := os.Stat(cryptfstest.URingParam); err != nil {
			// A kernel without it: auto falls back, uring is refused.
		} else if ok, _ := cryptfstest.URingOffered(); ok {
			// Turning it off would fail the mounts of other test
			// processes that force io_uring (make test-uring).
			t.Skipf("skipping: %s is Y (make test-uring sets it); the refusal is tested where it is N", cryptfstest.URingParam)
		}
		_, name, reason, _ := transportOf(t, "auto")
		if name != "dev" || !strings.Contains(reason, "auto: no FUSE over io_uring") {
			t.Errorf("--transport=auto without io_uring: status says %q (%s), want dev and why", name, reason)
		}
		cipher := cryptfstest.Init(t)
		mnt := filepath.Join(t.TempDir(), "mnt")
		mustDo(t, os.Mkdir(mnt, 0o755))
		out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", "mount", "--insecure-kdf", "--transport=uring", cipher, mnt)
		if code != 16 || !strings.Contains(out, "FUSE over io_uring") || !strings.Contains(out, "--transport=auto or dev") {
			t.Errorf("--transport=uring without io_uring: exit code %d, want 16 with the reason and what to do:\n%s", code, out)
		}
		if cryptfstest.IsMounted(mnt) {
			cryptfstest.Detach(mnt)
			t.Errorf("--transport=uring without io_uring left a mount behind")
		}
		_, code = cryptfstest.Run(t, "", "mount", "--transport=carrier-pigeon", cipher, mnt)
		if code != 2 {
			t.Errorf("--transport=carrier-pigeon: exit code %d, want 2", code)
		}
	})
	t.Run("uring", func(t *testing.T) {
		cryptfstest.EnableURing(t)
		for _, asked := range []string{"uring", "auto"} {
			_, name, reason, text := transportOf(t, asked)
			if name != "uring" || !strings.HasPrefix(reason, asked+": ") || !strings.Contains(reason, " queues of ") {
				t.Errorf("--transport=%s with io_uring offered: status says %q (%s), want uring and its queues", asked, name, reason)
			}
			if !strings.Contains(text, "Transport:   uring (") {
				t.Errorf("cryptfs status does not show the transport:\n%s", text)
			}
		}
	})
}

// TestTransportURingSuite runs the POSIX suite on a mount served over
// FUSE over io_uring (kernel-cache tier; make test-uring runs every suite
// that way).
func TestTransportURingSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the io_uring suite run in -short mode")
	}
	cryptfstest.RequireFUSE(t)
	cryptfstest.EnableURing(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Transport: "uring", Args: []string{"--fast-path=kernel-cache", "--allow-other"}})
	fstest.Run(t, m.Dir, cryptfsOptions())
	cryptfstest.Unmount(t, m)
	if strings.Contains(m.Log(), `"level":"error"`) {
		t.Errorf("the daemon logged errors during the suite:\n%s", m.Log())
	}
	fsck(t, m.Cipher, 0)
}
