package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/bpf/reqstats"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/control"
)

// TestKernelCacheTier stats every file of a 10k-file tree twice. In the
// kernel-cache tier the second pass must send no LOOKUP and no GETATTR to
// user space (counted by the tracepoint statistics program, not by the
// daemon); with --fast-path=off every pass sends at least one of each per
// file. What stat returns is the same in every tier.
func TestKernelCacheTier(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	dirs, perDir := 100, 100
	if testing.Short() {
		dirs = 10
	}
	files := dirs * perDir

	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	var paths []string
	for d := 0; d < dirs; d++ {
		dir := fmt.Sprintf("d%03d", d)
		if err := os.Mkdir(filepath.Join(m.Dir, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < perDir; f++ {
			p := filepath.Join(dir, fmt.Sprintf("file-%03d", f))
			if err := os.WriteFile(filepath.Join(m.Dir, p), []byte(p), 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
	}
	cryptfstest.Unmount(t, m)

	results := map[string][]string{}
	for _, tier := range []string{"off", "kernel-cache"} {
		m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: []string{"--fast-path=" + tier}})
		col := requestCollector(t, m.Dir)
		dev, err := control.Device(m.Dir)
		if err != nil {
			t.Fatal(err)
		}
		// What `cryptfs stats --json` reports: the daemon's own tracepoint
		// collector, read over its control socket.
		daemonUpcalls := func() (lookups, getattrs uint64) {
			st, err := control.GetStats(dev)
			if err != nil {
				t.Fatal(err)
			}
			if st.Source != "tracepoint" {
				t.Fatalf("cryptfs stats counts from %q, want the tracepoint program", st.Source)
			}
			for _, o := range st.Ops {
				switch o.Opcode {
				case "LOOKUP":
					lookups = o.Upcalls
				case "GETATTR":
					getattrs = o.Upcalls
				}
			}
			return lookups, getattrs
		}
		statAll := func() ([]string, reqstats.Snapshot) {
			before, err := col.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, p := range paths {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(m.Dir, p), &st); err != nil {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprintf("%s ino=%d size=%d mode=%o nlink=%d uid=%d gid=%d mtime=%d.%d",
					p, st.Ino, st.Size, st.Mode, st.Nlink, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec))
			}
			after, err := col.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			return out, after.Sub(before)
		}
		first, d1 := statAll()
		l0, g0 := daemonUpcalls()
		second, d2 := statAll()
		l1, g1 := daemonUpcalls()
		col.Close()
		if l1-l0 != d2.Ops[fuseop.Lookup].Sent || g1-g0 != d2.Ops[fuseop.Getattr].Sent {
			t.Errorf("%s: cryptfs stats counted %d LOOKUP and %d GETATTR in the second pass, the test's own collector %d and %d",
				tier, l1-l0, g1-g0, d2.Ops[fuseop.Lookup].Sent, d2.Ops[fuseop.Getattr].Sent)
		}
		lookups := func(d reqstats.Snapshot) uint64 { return d.Ops[fuseop.Lookup].Sent }
		getattrs := func(d reqstats.Snapshot) uint64 { return d.Ops[fuseop.Getattr].Sent }
		t.Logf("%s: first pass %d LOOKUP %d GETATTR, second pass %d LOOKUP %d GETATTR (%d files)",
			tier, lookups(d1), getattrs(d1), lookups(d2), getattrs(d2), files)
		switch tier {
		case "kernel-cache":
			if lookups(d2) != 0 || getattrs(d2) != 0 {
				t.Errorf("kernel-cache: the second pass sent %d LOOKUP and %d GETATTR, want 0 and 0", lookups(d2), getattrs(d2))
			}
		case "off":
			for i, d := range []reqstats.Snapshot{d1, d2} {
				if lookups(d) < uint64(files) || getattrs(d) < uint64(files) {
					t.Errorf("off: pass %d sent %d LOOKUP and %d GETATTR, want at least %d of each", i+1, lookups(d), getattrs(d), files)
				}
			}
		}
		for i := range first {
			if first[i] != second[i] {
				t.Fatalf("%s: stat changed between passes: %s / %s", tier, first[i], second[i])
			}
		}
		results[tier] = first
		cryptfstest.Unmount(t, m)
	}
	for i := range results["off"] {
		if results["off"][i] != results["kernel-cache"][i] {
			t.Fatalf("stat differs between tiers: off %s, kernel-cache %s", results["off"][i], results["kernel-cache"][i])
		}
	}
}
