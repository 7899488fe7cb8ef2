package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cryptfs/cryptfs/bpf/fastpath/fastpathtest"
	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/kmod"
)

// TestKernelCacheListing: in the kernel-cache tier the kernel keeps a
// directory's listing, so listing it again sends no READDIR(PLUS) to the
// daemon, and every change made through the mount (create, mkdir,
// symlink, link, unlink, rmdir, rename within and across directories)
// shows in the next listing. With --fast-path=off every listing reaches
// the daemon. The ebpf tier keeps listings as kernel-cache does (its zero
// validity is about attributes and entries; issue 17: rm -rf of a listed
// tree); on a kernel without the hook it runs as --bpf-shadow, whose
// daemon behaves as in the ebpf tier. The listings themselves must be the
// same in every tier.
func TestKernelCacheListing(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	for _, tier := range []string{"off", "kernel-cache", "ebpf"} {
		t.Run(tier, func(t *testing.T) {
			args := []string{"--fast-path=" + tier}
			if tier == "ebpf" {
				fastpathtest.Load(t) // skips with the reason when BPF is unavailable
				if h, _ := kmod.ProbeDevFuse(); h != kmod.HookYes {
					args = append(args, "--bpf-shadow")
				}
			}
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: args})
			p := func(name string) string { return filepath.Join(m.Dir, name) }
			col := requestCollector(t, m.Dir)
			defer col.Close()

			mustDo(t, os.Mkdir(p("d"), 0o755))
			mustDo(t, os.Mkdir(p("e"), 0o755))
			want := map[string][]string{"d": nil, "e": nil}
			add := func(dir, name string) { want[dir] = append(want[dir], name) }
			drop := func(dir, name string) {
				want[dir] = slices.DeleteFunc(want[dir], func(s string) bool { return s == name })
			}
			for i := range 50 {
				name := fmt.Sprintf("f%02d", i)
				mustDo(t, os.WriteFile(p("d/"+name), []byte(name), 0o644))
				add("d", name)
			}
			// list lists a directory and returns the READDIR and READDIRPLUS
			// requests that reached the daemon meanwhile.
			list := func(dir string) uint64 {
				t.Helper()
				before, err := col.Snapshot()
				mustDo(t, err)
				entries, err := os.ReadDir(p(dir))
				mustDo(t, err)
				after, err := col.Snapshot()
				mustDo(t, err)
				var got []string
				for _, e := range entries {
					got = append(got, e.Name())
				}
				w := slices.Clone(want[dir])
				slices.Sort(w)
				if !slices.Equal(got, w) {
					t.Errorf("listing of %s: %q, want %q", dir, got, w)
				}
				d := after.Sub(before)
				return d.Ops[fuseop.Readdir].Sent + d.Ops[fuseop.Readdirplus].Sent
			}
			changes := []struct {
				what string
				do   func()
			}{
				{"nothing", func() {}},
				{"create", func() { mustDo(t, os.WriteFile(p("d/new"), nil, 0o644)); add("d", "new") }},
				{"mkdir", func() { mustDo(t, os.Mkdir(p("d/sub"), 0o755)); add("d", "sub") }},
				{"symlink", func() { mustDo(t, os.Symlink("f00", p("d/link"))); add("d", "link") }},
				{"hard link", func() { mustDo(t, os.Link(p("d/f01"), p("d/hard"))); add("d", "hard") }},
				{"unlink", func() { mustDo(t, os.Remove(p("d/f02"))); drop("d", "f02") }},
				{"rmdir", func() { mustDo(t, os.Remove(p("d/sub"))); drop("d", "sub") }},
				{"rename within", func() {
					mustDo(t, os.Rename(p("d/f03"), p("d/g03")))
					drop("d", "f03")
					add("d", "g03")
				}},
				{"rename over", func() { mustDo(t, os.Rename(p("d/f04"), p("d/f05"))); drop("d", "f04") }},
				{"rename across", func() {
					mustDo(t, os.Rename(p("d/f06"), p("e/f06")))
					drop("d", "f06")
					add("e", "f06")
				}},
			}
			list("e")
			for _, c := range changes {
				c.do()
				first := list("d")
				again := list("d")
				other := list("e")
				t.Logf("%s: after %s the listings sent %d, %d (and %d for the other directory) READDIR(PLUS)", tier, c.what, first, again, other)
				switch tier {
				case "kernel-cache", "ebpf":
					if again != 0 {
						t.Errorf("after %s: listing an unchanged directory again sent %d READDIR(PLUS), want 0", c.what, again)
					}
				case "off":
					if first == 0 || again == 0 || other == 0 {
						t.Errorf("after %s: off tier listings sent %d, %d, %d READDIR(PLUS), want each at least 1", c.what, first, again, other)
					}
				}
			}
		})
	}
}
