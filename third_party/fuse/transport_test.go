//go:build linux

package fuse_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// transports are the ways of serving that every test runs with.
var transports = []serverOptions{
	{Transport: "dev"},
	{Transport: "dev", Poll: true},
	{Transport: "uring"},
}

func forEachTransport(t *testing.T, f func(t *testing.T, opts serverOptions)) {
	for _, opts := range transports {
		name := opts.Transport
		if opts.Poll {
			name += "+poll"
		}
		t.Run(name, func(t *testing.T) {
			if opts.Transport == "uring" {
				requireFUSE(t)
				setEnableURing(t, true)
			}
			f(t, opts)
		})
	}
}

// onCPU runs f on a thread pinned to cpu and waits for it. The thread is
// discarded afterwards (the goroutine exits locked to it).
func onCPU(cpu int, f func() error) error {
	done := make(chan error, 1)
	go func() {
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

func cpus(t *testing.T) []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var out []int
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			out = append(out, i)
		}
	}
	return out
}

// Lookup, getattr, read, write, create, unlink and readdir work and see
// what the file system holds.
func TestBasicOps(t *testing.T) {
	forEachTransport(t, func(t *testing.T, opts serverOptions) {
		s := startServer(t, opts)
		if s.status["transport"] != map[bool]string{true: "uring", false: "dev"}[opts.Transport == "uring"] || s.status["polling"] != opts.Poll {
			t.Fatalf("status %v for %+v", s.status, opts)
		}

		fi, err := os.Stat(s.path(noteName))
		if err != nil || fi.Size() != 4 {
			t.Fatalf("stat note: %v, %v", fi, err)
		}
		if got, err := os.ReadFile(s.path(noteName)); err != nil || string(got) != "old1" {
			t.Fatalf("read note: %q, %v", got, err)
		}
		big, err := os.ReadFile(s.path(bigName))
		if err != nil || len(big) != bigSize {
			t.Fatalf("read big: %d bytes, %v", len(big), err)
		}
		for i := range big {
			if big[i] != byte(i*7+i/4096) {
				t.Fatalf("big[%d] = %d, want %d", i, big[i], byte(i*7+i/4096))
			}
		}

		data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: several WRITEs
		f := s.path("created")
		if err := os.WriteFile(f, data, 0o640); err != nil {
			t.Fatalf("create and write: %v", err)
		}
		if fi, err := os.Stat(f); err != nil || fi.Size() != int64(len(data)) || fi.Mode().Perm() != 0o640 {
			t.Fatalf("stat created: %v, %v", fi, err)
		}
		if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read created: %d bytes, %v", len(got), err)
		}
		names, err := os.ReadDir(s.dir)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, n := range names {
			listed = append(listed, n.Name())
		}
		if fmt.Sprint(listed) != "[big created note slow]" {
			t.Fatalf("listing: %v", listed)
		}
		if err := os.Remove(f); err != nil {
			t.Fatalf("unlink: %v", err)
		}
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat after unlink: %v", err)
		}
		if err := s.unmount(); err != nil {
			t.Fatal(err)
		}
	})
}

// Many requests at once from every CPU, each client pinned to one, all get
// the right answers.
func TestConcurrentFromEveryCPU(t *testing.T) {
	forEachTransport(t, func(t *testing.T, opts serverOptions) {
		s := startServer(t, opts)
		const perCPU, rounds = 4, 50
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for _, cpu := range cpus(t) {
			for g := 0; g < perCPU; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- onCPU(cpu, func() error {
						for r := 0; r < rounds; r++ {
							name := s.path(fmt.Sprintf("c%d-%d-%d", cpu, g, r))
							want := []byte(fmt.Sprintf("cpu %d client %d round %d", cpu, g, r))
							if err := os.WriteFile(name, want, 0o600); err != nil {
								return err
							}
							var st unix.Stat_t
							if err := unix.Stat(name, &st); err != nil || st.Size != int64(len(want)) {
								return fmt.Errorf("stat %s: size %d, %v", name, st.Size, err)
							}
							got, err := os.ReadFile(name)
							if err != nil || !bytes.Equal(got, want) {
								return fmt.Errorf("read %s: %q, %v", name, got, err)
							}
							if err := os.Remove(name); err != nil {
								return err
							}
						}
						return nil
					})
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if err := s.unmount(); err != nil {
			t.Fatal(err)
		}
	})
}

// A read(2) that the file system does not answer is interrupted by a
// signal: the kernel sends FUSE_INTERRUPT, the op's context is cancelled,
// the file system answers EINTR, and read(2) returns it.
func TestInterrupt(t *testing.T) {
	forEachTransport(t, func(t *testing.T, opts serverOptions) {
		s := startServer(t, opts)
		tids := make(chan int, 1)
		result := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // the signal goes to this thread; never unlocked
			fd, err := unix.Open(s.path(slowName), unix.O_RDONLY, 0)
			if err != nil {
				tids <- 0
				result <- err
				return
			}
			tids <- unix.Gettid()
			_, err = unix.Read(fd, make([]byte, 4096))
			unix.Close(fd)
			result <- err
		}()
		tid := <-tids
		if tid == 0 {
			t.Fatal(<-result)
		}
		deadline := time.Now().Add(10 * time.Second)
		for s.stats().SlowWaiting == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the READ of slow never reached the file system")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := unix.Tgkill(os.Getpid(), tid, unix.SIGURG); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-result:
			if err != unix.EINTR {
				t.Fatalf("interrupted read returned %v, want EINTR", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the interrupted read did not return within 10 s (the interrupt was lost)")
		}
		if st := s.stats(); st.SlowInterrupted != 1 {
			t.Fatalf("the file system saw %d interrupted reads, want 1", st.SlowInterrupted)
		}
		if err := s.unmount(); err != nil {
			t.Fatal(err)
		}
	})
}

// A notification from the file system (Notifier.InvalidateInode) drops the
// kernel's cached data: without it the kernel keeps serving the old content.
func TestNotification(t *testing.T) {
	forEachTransport(t, func(t *testing.T, opts serverOptions) {
		s := startServer(t, opts)
		read := func() string {
			t.Helper()
			b, err := os.ReadFile(s.path(noteName))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		if got := read(); got != "old1" {
			t.Fatalf("note: %q", got)
		}
		s.command("swapquiet %s new2", noteName)
		if got := read(); got != "old1" {
			t.Fatalf("without a notification the kernel's cache gave %q, want old1 (the test cannot tell a notification's effect)", got)
		}
		s.command("swap %s new3", noteName)
		if got := read(); got != "new3" {
			t.Fatalf("after InvalidateInode: %q, want new3", got)
		}
		if err := s.unmount(); err != nil {
			t.Fatal(err)
		}
	})
}

// Unmounting ends the serving process cleanly; aborting the connection
// (fusectl) does too, and the mount point then reports ENOTCONN.
func TestUnmountAndAbort(t *testing.T) {
	forEachTransport(t, func(t *testing.T, opts serverOptions) {
		t.Run("unmount", func(t *testing.T) {
			s := startServer(t, opts)
			if _, err := os.Stat(s.path(noteName)); err != nil {
				t.Fatal(err)
			}
			if err := s.unmount(); err != nil {
				t.Fatalf("serving process after unmount: %v", err)
			}
			if mounted(s.dir) {
				t.Fatal("still mounted")
			}
		})
		t.Run("abort", func(t *testing.T) {
			s := startServer(t, opts)
			if _, err := os.Stat(s.path(noteName)); err != nil {
				t.Fatal(err)
			}
			if err := s.abort(); err != nil {
				t.Fatalf("abort: %v", err)
			}
			if err := s.wait(10 * time.Second); err != nil {
				t.Fatalf("serving process after abort: %v", err)
			}
			if _, err := os.Stat(s.path(noteName)); !errors.Is(err, unix.ENOTCONN) {
				t.Fatalf("stat after abort: %v, want ENOTCONN", err)
			}
			if err := unix.Unmount(s.dir, 0); err != nil {
				t.Fatalf("unmount after abort: %v", err)
			}
		})
	})
}
