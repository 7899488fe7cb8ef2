//go:build linux

package fuse_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func startURing(t testing.TB, opts serverOptions) *testServer {
	t.Helper()
	requireFUSE(t)
	setEnableURing(t, true)
	if opts.Transport == "" {
		opts.Transport = "uring"
	}
	return startServer(t, opts)
}

// Every possible CPU has a queue with its thread pinned to it; a request
// is served from the queue of the CPU its caller runs on; FORGETs come
// through /dev/fuse.
func TestURingSameCPU(t *testing.T) {
	s := startURing(t, serverOptions{})
	if s.status["transport"] != "uring" {
		t.Fatalf("status %v", s.status)
	}
	possible, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("possible CPUs %s, status %v", strings.TrimSpace(string(possible)), s.status["summary"])
	online := cpus(t)
	if q := int(s.status["queues"].(float64)); q < len(online) {
		t.Fatalf("%d queues for %d CPUs", q, len(online))
	}
	if p := int(s.status["pinned"].(float64)); p < len(online) {
		t.Fatalf("%d queue threads pinned, %d CPUs online", p, len(online))
	}

	const n = 50
	for _, cpu := range online {
		before := s.stats().Ops[fmt.Sprintf("q%d", cpu)]["GETATTR"]
		if err := onCPU(cpu, func() error {
			fd, err := unix.Open(s.path(bigName), unix.O_RDONLY, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			var st unix.Stat_t
			for i := 0; i < n; i++ {
				if err := unix.Fstat(fd, &st); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		ops := s.stats().Ops
		if got := ops[fmt.Sprintf("q%d", cpu)]["GETATTR"] - before; got < n {
			t.Errorf("CPU %d: %d fstats, %d GETATTRs on queue %d (ops %v)", cpu, n, got, cpu, ops)
		}
	}
	// Drop the kernel's dentries: their FORGETs come through /dev/fuse.
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ops := s.stats().Ops
		forgets := ops["dev"]["FORGET"] + ops["dev"]["BATCH_FORGET"]
		ringForgets := 0
		for src, m := range ops {
			if src != "dev" {
				ringForgets += m["FORGET"] + m["BATCH_FORGET"]
			}
		}
		if ringForgets != 0 {
			t.Fatalf("FORGET over io_uring: %v", ops)
		}
		if forgets > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no FORGET through /dev/fuse after dropping dentries: %v", ops)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.unmount(); err != nil {
		t.Fatal(err)
	}
}

// Where io_uring cannot be used, TransportAuto mounts over /dev/fuse and
// says why, and TransportURing refuses to mount, leaving nothing behind.
func TestURingFallback(t *testing.T) {
	requireFUSE(t)
	check := func(t *testing.T, opts serverOptions, reason string, mountsFirst bool) {
		t.Helper()
		opts.Transport = "auto"
		s := startServer(t, opts)
		if s.status["transport"] != "dev" || !strings.Contains(s.status["fallback"].(string), reason) {
			t.Fatalf("status %v, want dev with a fallback reason containing %q", s.status, reason)
		}
		if got, err := os.ReadFile(s.path(noteName)); err != nil || string(got) != "old1" {
			t.Fatalf("read over the fallback: %q, %v", got, err)
		}
		if err := os.WriteFile(s.path("f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.unmount(); err != nil {
			t.Fatal(err)
		}

		opts.Transport = "uring"
		s, err := launch(t, opts)
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Fatalf("forced io_uring: %v, want a refusal containing %q", err, reason)
		}
		if err := s.wait(10 * time.Second); err == nil {
			t.Fatal("the serving process exited 0 after failing to mount")
		}
		if !mountsFirst && mounted(s.dir) {
			t.Fatal("mounted before finding out that io_uring cannot be used")
		}
		unix.Unmount(s.dir, unix.MNT_DETACH) // a dead mount where mount(2) came first
		if mounted(s.dir) {
			t.Fatal("still mounted")
		}
	}
	t.Run("enable_uring=N", func(t *testing.T) {
		setEnableURing(t, false)
		check(t, serverOptions{}, "enable_uring is N", false)
	})
	t.Run("io_uring_disabled", func(t *testing.T) {
		setEnableURing(t, true)
		const knob = "/proc/sys/kernel/io_uring_disabled"
		old, err := os.ReadFile(knob)
		if err != nil {
			t.Skipf("no %s: %v", knob, err)
		}
		if err := os.WriteFile(knob, []byte("2"), 0); err != nil {
			t.Skipf("cannot set %s: %v", knob, err)
		}
		t.Cleanup(func() {
			if err := os.WriteFile(knob, old, 0); err != nil {
				t.Errorf("restore %s: %v", knob, err)
			}
		})
		check(t, serverOptions{}, "io_uring_setup: operation not permitted", true)
	})
	t.Run("register refused", func(t *testing.T) {
		setEnableURing(t, true)
		check(t, serverOptions{Env: []string{"FUSETEST_SHORT_PAYLOAD=1"}}, "REGISTER: invalid argument", true)
	})
}

// Queue threads that are not pinned (a CPU outside the allowed set) still
// serve their CPU's requests.
func TestURingUnpinned(t *testing.T) {
	s := startURing(t, serverOptions{Env: []string{"FUSETEST_NOPIN=1"}})
	if s.status["pinned"].(float64) != 0 {
		t.Fatalf("status %v, want no queue pinned", s.status)
	}
	for _, cpu := range cpus(t) {
		if err := onCPU(cpu, func() error {
			for i := 0; i < 20; i++ {
				name := s.path(fmt.Sprintf("u%d-%d", cpu, i))
				if err := os.WriteFile(name, []byte(name), 0o600); err != nil {
					return err
				}
				if got, err := os.ReadFile(name); err != nil || string(got) != name {
					return fmt.Errorf("read %s: %q, %v", name, got, err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.unmount(); err != nil {
		t.Fatal(err)
	}
}
