package ciphertree

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// TestHeaderCache: LoadContentCached takes the file ID from the cache only
// for the stat it was read at. Each case plants a bogus ID in the cache
// for the file's stat before some event, so that the ID loaded afterwards
// says where it came from: the bogus one from the cache, the real one
// from the header.
func TestHeaderCache(t *testing.T) {
	s := testSuite(t)
	bogus := crypt.FileID{0xba, 0xd0}
	for _, tc := range []struct {
		name      string
		event     func(t *testing.T, c *Content, hc *HeaderCache) int // returns the fd to load next
		fromCache bool
	}{
		{"unchanged file", func(t *testing.T, c *Content, hc *HeaderCache) int { return c.fd }, true},
		{"written since", func(t *testing.T, c *Content, hc *HeaderCache) int {
			if err := c.WriteAt([]byte("more"), c.Size()); err != nil {
				t.Fatal(err)
			}
			return c.fd
		}, false},
		{"times set since", func(t *testing.T, c *Content, hc *HeaderCache) int {
			ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(1e9)}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, ProcFd(c.fd), ts, 0); err != nil {
				t.Fatal(err)
			}
			return c.fd
		}, false},
		{"forgotten", func(t *testing.T, c *Content, hc *HeaderCache) int { hc.Forget(); return c.fd }, false},
		{"another lower file", func(t *testing.T, c *Content, hc *HeaderCache) int {
			fd, _ := writtenLower(t, s, []byte("other file"))
			return fd
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd, _ := openLower(t)
			var hc HeaderCache
			var c Content
			if err := LoadContentCached(&c, s, fd, &hc); err != nil {
				t.Fatal(err)
			}
			if _, ok := hc.lookup(statOf(t, fd)); ok {
				t.Fatal("an empty file (no header) left something in the cache")
			}
			if err := c.WriteAt([]byte("hello"), 0); err != nil {
				t.Fatal(err)
			}
			hc.store(statOf(t, fd), bogus)
			next := tc.event(t, &c, &hc)
			var got Content
			if err := LoadContentCached(&got, s, next, &hc); err != nil {
				t.Fatal(err)
			}
			id, _ := got.ID()
			real, err := ReadHeader(next)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.fromCache && id != bogus:
				t.Fatalf("ID %x, want the cached %x: the header was read again", id, bogus)
			case !tc.fromCache && id != real:
				t.Fatalf("ID %x, want the header's %x", id, real)
			}
			if cached, ok := hc.lookup(statOf(t, next)); !ok || cached != id {
				t.Fatalf("cache after the load: %x, %v; want %x", cached, ok, id)
			}
		})
	}
}

func statOf(t *testing.T, fd int) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// TestHeaderCacheZeroAllocs: a READ's load through a warm cache does not
// allocate, and a refill after Forget allocates nothing beyond what
// reading the header allocates by itself (nothing, except under -race,
// whose instrumentation moves ReadHeader's buffer to the heap).
func TestHeaderCacheZeroAllocs(t *testing.T) {
	s := testSuite(t)
	fd, _ := writtenLower(t, s, []byte("hello"))
	header := testing.AllocsPerRun(100, func() {
		if _, err := ReadHeader(fd); err != nil {
			t.Fatal(err)
		}
	})
	var hc HeaderCache
	var got Content
	for _, tc := range []struct {
		name   string
		forget bool
		max    float64
	}{
		{"warm", false, 0},
		{"after Forget", true, header},
	} {
		allocs := testing.AllocsPerRun(100, func() {
			if tc.forget {
				hc.Forget()
			}
			if err := LoadContentCached(&got, s, fd, &hc); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > tc.max {
			t.Errorf("%s: %.1f allocations per load, want at most %.1f (reading the header alone: %.1f)", tc.name, allocs, tc.max, header)
		}
	}
}
