package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/fstest"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/meta"
)

// Shared storage (cryptfs mount --shared-storage) against real mounts: a
// cipher tree that a sync client changes while it is mounted. The other
// machine is played by a second cryptfs mount of a copy of the tree (a
// second mount of the same tree is refused by the tree lock), and the
// sync client by rsync, which writes each changed file to a temporary
// file and renames it into place, and removes what was removed, or by
// the test itself doing the same by hand.

// sharedBound is the stated bound (README, SECURITY.md): a change to the
// cipher tree shows through the mount at most this long after it was
// made. The tests wait it out plus sharedSlack (the kernel counts
// validity in jiffies, and a loaded machine schedules late) and then
// require the new state exactly; they never poll for it.
const (
	sharedBound = meta.SharedValidity
	sharedSlack = 150 * time.Millisecond
)

// sharedMount mounts cipher with --shared-storage and extra flags.
func sharedMount(t *testing.T, cipher string, args ...string) *cryptfstest.Mount {
	t.Helper()
	return cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Args: append([]string{"--shared-storage"}, args...)})
}

// copyTree copies a cipher tree (cp -a: modes, times and the tree's own
// files; the tree lock is a flock, which a copy does not carry).
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "other")
	runCmd(t, "", "cp", "-a", src, dst)
	return dst
}

// syncInto plays a sync client bringing dst's cipher tree to src's
// state: rsync writes every changed file to a temporary file next to it
// and renames it into place, and deletes what src lacks. --checksum:
// rsync's quick check compares mtimes to the second, and a test changes
// files of the same size within one.
func syncInto(t *testing.T, src, dst string) {
	t.Helper()
	runCmd(t, "", "rsync", "-a", "--checksum", "--delete", "--exclude=/.cryptfs.lock", src+"/", dst+"/")
}

// noAuthFailures fails the test if the daemon logged an authentication
// failure: a mix of two versions of a file would be one.
func noAuthFailures(t *testing.T, m *cryptfstest.Mount) {
	t.Helper()
	if strings.Contains(m.Log(), "authentication failed") {
		t.Errorf("the daemon logged an authentication failure:\n%s", m.Log())
	}
}

// TestSharedStorageSync: the other machine changes, creates, deletes and
// renames files and directories; rsync brings the changes into the
// mounted tree. While the sync runs and until the bound, every open by
// path of a replaced file gives the old or the new version whole, never
// ESTALE; a file held open reads the old version to its end (no mix of
// the two); after the bound the mount shows exactly the new tree.
func TestSharedStorageSync(t *testing.T) {
	needTool(t, "rsync")
	for _, tier := range []string{"auto", "off"} {
		t.Run(tier, func(t *testing.T) { testSharedStorageSync(t, tier) })
	}
}

func testSharedStorageSync(t *testing.T, tier string) {
	cipher := cryptfstest.Init(t)
	mA := sharedMount(t, cipher, "--fast-path="+tier)
	st, err := mA.Status(t.Context())
	mustDo(t, err)
	if !strings.Contains(st.TierReason, "shared storage") || st.Tier == "ebpf" {
		t.Errorf("status of a --shared-storage mount: tier %s (%s), want it to say shared storage", st.Tier, st.TierReason)
	}
	a := mA.Dir
	v1 := map[string][]byte{
		"doc.txt":      randBytes(1, 3*4096+100), // several blocks: a held descriptor reads past its cached pages
		"same.txt":     randBytes(2, 5000),       // changed in place of the same size
		"small.txt":    []byte("small, unchanged"),
		"gone.txt":     []byte("removed on the other machine"),
		"dir/sub.txt":  []byte("renamed on the other machine"),
		"olddir/x.txt": []byte("whole directory removed"),
	}
	mustDo(t, os.Mkdir(filepath.Join(a, "dir"), 0o755))
	mustDo(t, os.Mkdir(filepath.Join(a, "olddir"), 0o755))
	for name, data := range v1 {
		mustDo(t, os.WriteFile(filepath.Join(a, name), data, 0o644))
	}
	other := copyTree(t, cipher)

	// Everything cached in the kernel: entries, attributes, pages,
	// listings, negative entries of the names to come.
	for name, data := range v1 {
		checkBytes(t, readFile(t, filepath.Join(a, name)), data, "%s before the sync", name)
	}
	listDir(t, a)
	listDir(t, filepath.Join(a, "dir"))
	for _, name := range []string{"new.txt", "newdir", "dir/moved.txt"} {
		if _, err := os.Stat(filepath.Join(a, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat %s before the sync: %v, want ENOENT", name, err)
		}
	}
	held, err := os.Open(filepath.Join(a, "doc.txt"))
	mustDo(t, err)
	defer held.Close()
	heldData := make([]byte, 4096)
	_, err = io.ReadFull(held, heldData)
	mustDo(t, err)

	// The other machine.
	v2 := map[string][]byte{
		"doc.txt":       randBytes(3, 5*4096+7),
		"same.txt":      randBytes(4, 5000),
		"small.txt":     v1["small.txt"],
		"new.txt":       []byte("created on the other machine"),
		"newdir/n.txt":  []byte("in a new directory"),
		"dir/moved.txt": v1["dir/sub.txt"],
	}
	mB := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: other})
	b := mB.Dir
	mustDo(t, os.WriteFile(filepath.Join(b, "doc.txt"), v2["doc.txt"], 0o644))
	f, err := os.OpenFile(filepath.Join(b, "same.txt"), os.O_WRONLY, 0)
	mustDo(t, err)
	_, err = f.WriteAt(v2["same.txt"], 0)
	mustDo(t, err)
	mustDo(t, f.Close())
	mustDo(t, os.Remove(filepath.Join(b, "gone.txt")))
	mustDo(t, os.Rename(filepath.Join(b, "dir/sub.txt"), filepath.Join(b, "dir/moved.txt")))
	mustDo(t, os.RemoveAll(filepath.Join(b, "olddir")))
	mustDo(t, os.Mkdir(filepath.Join(b, "newdir"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(b, "newdir/n.txt"), v2["newdir/n.txt"], 0o644))
	mustDo(t, os.WriteFile(filepath.Join(b, "new.txt"), v2["new.txt"], 0o644))
	cryptfstest.Unmount(t, mB)

	// While the sync runs and until the bound: the old or the new
	// version, whole, never an error.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var reads atomic.Int64
	var mu sync.Mutex
	var bad []string
	for _, name := range []string{"doc.txt", "same.txt", "small.txt"} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := os.ReadFile(filepath.Join(a, name))
				reads.Add(1)
				if err != nil || (!bytes.Equal(got, v1[name]) && !bytes.Equal(got, v2[name])) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: %d bytes, %v (%s)", name, len(got), err, errnoName(err)))
					mu.Unlock()
				}
			}
		}()
	}
	syncInto(t, other, cipher)
	close(stop)
	readers.Wait()
	// The bound runs from the change, or from the reply to a request
	// that read the tree before it and was still on its way: the readers'
	// last ones.
	time.Sleep(sharedBound + sharedSlack)
	if len(bad) > 0 {
		t.Errorf("%d of %d reads by path during the sync were neither version (first: %s)", len(bad), reads.Load(), bad[0])
	}

	// After the bound: exactly the other machine's tree.
	if os.Getenv("SHARED_DEBUG") != "" {
		for _, name := range []string{"same.txt", "doc.txt"} {
			var st1, st2, st3 unix.Stat_t
			unix.Lstat(lowerPath(t, cipher, name), &st1)
			unix.Lstat(lowerPath(t, other, name), &st2)
			unix.Stat(filepath.Join(a, name), &st3)
			t.Logf("%s: lower A ino %d size %d mtime %v, lower B ino %d size %d mtime %v, mount ino %d size %d", name, st1.Ino, st1.Size, st1.Mtim, st2.Ino, st2.Size, st2.Mtim, st3.Ino, st3.Size)
		}
	}
	for name, data := range v2 {
		got, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Errorf("%s after the bound: %v (%s)", name, err, errnoName(err))
			continue
		}
		checkBytes(t, got, data, "%s after the bound", name)
		fi, err := os.Stat(filepath.Join(a, name))
		if err != nil || fi.Size() != int64(len(data)) {
			t.Errorf("stat %s after the bound: %v, %v; want size %d", name, fi, err, len(data))
		}
	}
	for _, name := range []string{"gone.txt", "dir/sub.txt", "olddir", "olddir/x.txt"} {
		if _, err := os.Stat(filepath.Join(a, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s after the bound: %v, want ENOENT", name, err)
		}
	}
	if got, want := listDir(t, a), []string{"dir", "doc.txt", "new.txt", "newdir", "same.txt", "small.txt"}; !slices.Equal(got, want) {
		t.Errorf("listing after the bound: %q, want %q", got, want)
	}
	if got, want := listDir(t, filepath.Join(a, "dir")), []string{"moved.txt"}; !slices.Equal(got, want) {
		t.Errorf("listing of dir after the bound: %q, want %q", got, want)
	}

	// The descriptor opened before the sync: the old version to its end.
	rest, err := io.ReadAll(held)
	mustDo(t, err)
	checkBytes(t, append(heldData, rest...), v1["doc.txt"], "doc.txt read through a descriptor opened before the sync")
	mustDo(t, held.Close())

	// The mount still writes, and the other side's next sync sees it.
	mustDo(t, os.WriteFile(filepath.Join(a, "from-a.txt"), []byte("written in the shared mount"), 0o644))
	noAuthFailures(t, mA)
	cryptfstest.Unmount(t, mA)
	if out := fsck(t, cipher, 0); strings.Contains(out, "damage") {
		t.Errorf("fsck after the sync:\n%s", out)
	}
}

// TestSharedStorageReplaceByRename: a sync client replaces one file many
// times (temporary file, rename over the old one), as Syncthing, Dropbox
// and Nextcloud do, so that ext4 hands the freed inode number of one
// version to the next. An open by path right after each replacement
// reads exactly the new version (the kernel's cached entry leads to the
// old node, whose OPEN answers ESTALE, and the kernel looks the name up
// again): never ESTALE, never the old size with the new data (which a
// node kept for a reused inode number would give: the kernel trusts the
// attributes it cached for the old file).
func TestSharedStorageReplaceByRename(t *testing.T) {
	cipher := cryptfstest.Init(t)
	mA := sharedMount(t, cipher)
	a := mA.Dir
	const versions = 40
	mustDo(t, os.WriteFile(filepath.Join(a, "f"), []byte("version -"), 0o644))
	other := copyTree(t, cipher)
	mB := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: other})
	want := make([][]byte, versions)
	for i := range want {
		want[i] = randBytes(uint64(100+i), 1000+i*397) // every version another size
		mustDo(t, os.WriteFile(filepath.Join(mB.Dir, fmt.Sprintf("v%d", i)), want[i], 0o644))
	}
	cryptfstest.Unmount(t, mB)
	target := lowerPath(t, cipher, "f")
	// The version files' cipher names, looked up before the loop (each
	// lookup runs the KDF).
	srcs := make([]string, versions)
	for i := range srcs {
		srcs[i] = filepath.Join(other, strings.TrimPrefix(lowerPath(t, other, fmt.Sprintf("v%d", i)), other))
	}

	checkBytes(t, readFile(t, filepath.Join(a, "f")), []byte("version -"), "f before the loop")
	replace := func(i int) uint64 {
		data, err := os.ReadFile(srcs[i])
		mustDo(t, err)
		tmp := filepath.Join(filepath.Dir(target), fmt.Sprintf(".syncthing.tmp.%d", i))
		mustDo(t, os.WriteFile(tmp, data, 0o644))
		mustDo(t, os.Rename(tmp, target))
		var st unix.Stat_t
		mustDo(t, unix.Lstat(target, &st))
		return st.Ino
	}
	var st unix.Stat_t
	mustDo(t, unix.Lstat(target, &st))
	seen, reused := st.Ino, 0 // the lower inode the mount last opened
	for i := 1; i < versions; i += 2 {
		// Two replacements before the mount looks: the second temporary
		// file tends to get the inode number of the file the mount
		// knows, freed by the first.
		// The mount's attributes of f are fresh in the kernel (what an
		// ls -l or a stat before the open leaves).
		if _, err := os.Stat(filepath.Join(a, "f")); err != nil {
			t.Fatal(err)
		}
		replace(i - 1)
		if ino := replace(i); ino == seen {
			reused++
		} else {
			seen = ino
		}
		got, err := os.ReadFile(filepath.Join(a, "f"))
		if err != nil {
			t.Fatalf("version %d: open by path right after the rename: %v (%s)", i, err, errnoName(err))
		}
		checkBytes(t, got, want[i], "version %d right after the rename", i)
	}
	t.Logf("%d replacements by rename, %d of the %d opens found the number of the inode the mount had open last", versions, reused, versions/2)
	noAuthFailures(t, mA)
}

// TestSharedStorageBurst: 10,000 files arrive at once, then all go, while
// a reader keeps using the mount: the mount never stalls (the reader's
// slowest stat is reported and must stay far below a stall), and after
// the bound it lists exactly what the tree holds.
func TestSharedStorageBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the burst of 10,000 changes in -short mode")
	}
	needTool(t, "rsync")
	const n = 10000
	cipher := cryptfstest.Init(t)
	mA := sharedMount(t, cipher)
	a := mA.Dir
	mustDo(t, os.Mkdir(filepath.Join(a, "burst"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(a, "probe"), []byte("probe"), 0o644))
	other := copyTree(t, cipher)
	mB := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: other})
	for i := range n {
		mustDo(t, os.WriteFile(filepath.Join(mB.Dir, "burst", fmt.Sprintf("f%05d", i)), []byte(fmt.Sprintf("file %d", i)), 0o644))
	}
	cryptfstest.Unmount(t, mB)
	if got := listDir(t, filepath.Join(a, "burst")); len(got) != 0 {
		t.Fatalf("burst before the sync: %d entries", len(got))
	}

	// A reader that stats and reads through the mount all along.
	stop := make(chan struct{})
	done := make(chan struct{})
	var slowest time.Duration
	var ops int
	var readerErr error
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			_, err := os.Stat(filepath.Join(a, "burst"))
			if err == nil {
				_, err = os.ReadFile(filepath.Join(a, "probe"))
			}
			if d := time.Since(start); d > slowest {
				slowest = d
			}
			ops++
			if err != nil && readerErr == nil {
				readerErr = err
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	wait := func(what string, want int) {
		t.Helper()
		time.Sleep(sharedBound + sharedSlack)
		start := time.Now()
		got := listDir(t, filepath.Join(a, "burst"))
		t.Logf("%s: listing %d entries took %v", what, len(got), time.Since(start))
		if len(got) != want {
			t.Fatalf("%s: the mount lists %d entries, want %d", what, len(got), want)
		}
		for i := 0; i < want; i += 97 {
			name := fmt.Sprintf("f%05d", i)
			if data, err := os.ReadFile(filepath.Join(a, "burst", name)); err != nil || string(data) != fmt.Sprintf("file %d", i) {
				t.Fatalf("%s: burst/%s: %q, %v", what, name, data, err)
			}
		}
	}
	start := time.Now()
	syncInto(t, other, cipher)
	t.Logf("rsync of %d new files: %v", n, time.Since(start))
	wait("after the creations", n)
	// The other machine removes them all.
	mB = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: other})
	for i := range n {
		mustDo(t, os.Remove(filepath.Join(mB.Dir, "burst", fmt.Sprintf("f%05d", i))))
	}
	cryptfstest.Unmount(t, mB)
	start = time.Now()
	syncInto(t, other, cipher)
	t.Logf("rsync removing %d files: %v", n, time.Since(start))
	wait("after the removals", 0)
	close(stop)
	<-done
	t.Logf("reader: %d stat+read rounds during the bursts, slowest %v", ops, slowest)
	if readerErr != nil {
		t.Errorf("the reader failed during the bursts: %v", readerErr)
	}
	if slowest > 5*time.Second {
		t.Errorf("the mount stalled: the reader's slowest stat+read took %v", slowest)
	}
	noAuthFailures(t, mA)
	// What change notification did with the burst (the daemon's line at
	// unmount): events coalesced, overflows answered by full invalidation.
	cryptfstest.Unmount(t, mA)
	for _, line := range strings.Split(mA.Log(), "\n") {
		if strings.Contains(line, "change notification") {
			t.Logf("daemon: %s", line)
		}
	}
}

// TestSharedStorageCost counts the requests that reach the daemon for the
// same workload on a default mount and a --shared-storage mount of two
// copies of one tree, and reports them side by side with their ratio.
// What it requires is what the mode promises about its cost: within the
// bound the kernel still answers repeated stats and keeps pages of
// unchanged files (no more requests than the default mode); after it,
// the mode asks the daemon again (the default mode does not).
func TestSharedStorageCost(t *testing.T) {
	const files = 300
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	for i := range files {
		mustDo(t, os.WriteFile(filepath.Join(m.Dir, fmt.Sprintf("f%03d", i)), randBytes(uint64(i), 3000), 0o644))
	}
	cryptfstest.Unmount(t, m)
	other := copyTree(t, cipher)
	modes := []struct {
		name string
		m    *cryptfstest.Mount
	}{
		{"default", cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, FastPath: "kernel-cache"})},
		{"shared", sharedMount(t, other, "--fast-path=kernel-cache")},
	}
	statAll := func(dir string) {
		for i := range files {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("f%03d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	catAll := func(dir string) {
		for i := range files {
			readFile(t, filepath.Join(dir, fmt.Sprintf("f%03d", i)))
		}
	}
	phases := []struct {
		name string
		run  func(dir string)
	}{
		{"cold stat", statAll},
		{"warm stat (within the bound)", statAll},
		{"cat", catAll},
		{"cat again", catAll},
		{"write 100 new files, 3 writes each", func(dir string) {
			for i := range 100 {
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("w%03d", i)))
				mustDo(t, err)
				for range 3 {
					_, err = f.Write(randBytes(uint64(i), 1000))
					mustDo(t, err)
				}
				mustDo(t, f.Close())
			}
		}},
		{"stat after the bound", func(dir string) { time.Sleep(sharedBound + sharedSlack); statAll(dir) }},
		{"ls -l", func(dir string) { runCmd(t, "", "ls", "-l", dir) }},
	}
	counts := make([][]map[string]uint64, len(modes))
	var warmBy [2]time.Duration // from the start of the cold stats to the end of the warm ones
	for mi, md := range modes {
		prev := requestCounts(t, md.m)
		start := time.Now()
		for pi, ph := range phases {
			ph.run(md.m.Dir)
			if pi == 1 {
				warmBy[mi] = time.Since(start)
			}
			cur := requestCounts(t, md.m)
			d := map[string]uint64{}
			for op, c := range cur {
				if c > prev[op] {
					d[op] = c - prev[op]
				}
			}
			counts[mi] = append(counts[mi], d)
			prev = cur
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "requests per phase (%d files): default / shared (ratio)\n", files)
	for pi, ph := range phases {
		total := [2]uint64{}
		var ops []string
		for op := range counts[0][pi] {
			ops = append(ops, op)
		}
		for op := range counts[1][pi] {
			if _, ok := counts[0][pi][op]; !ok {
				ops = append(ops, op)
			}
		}
		slices.Sort(ops)
		var parts []string
		for _, op := range ops {
			d, s := counts[0][pi][op], counts[1][pi][op]
			total[0] += d
			total[1] += s
			parts = append(parts, fmt.Sprintf("%s %d/%d", op, d, s))
		}
		fmt.Fprintf(&table, "  %-36s total %5d / %5d (%s)  %s\n", ph.name, total[0], total[1], ratio(total[1], total[0]), strings.Join(parts, ", "))
	}
	t.Log(table.String())

	phase := func(name string) int {
		return slices.IndexFunc(phases, func(p struct {
			name string
			run  func(dir string)
		}) bool {
			return p.name == name
		})
	}
	shared, def := counts[1], counts[0]
	if warmBy[1] > sharedBound*3/4 {
		// A loaded machine: some of the cold stats' replies may have
		// expired before their warm stat.
		t.Logf("the cold and warm stats took %v on the shared mount: not checking that the warm ones stayed in the kernel", warmBy[1])
	} else if w := shared[phase("warm stat (within the bound)")]; w["LOOKUP"]+w["GETATTR"] != 0 {
		t.Errorf("shared mode, warm stat within the bound: %v reached the daemon, want none (the kernel keeps entries and attributes for the bound)", w)
	}
	if c := shared[phase("cat again")]; c["READ"] != 0 {
		t.Errorf("shared mode, cat of unchanged files again: %d READs, want 0 (their pages are kept)", c["READ"])
	}
	if s := shared[phase("stat after the bound")]; s["LOOKUP"] < files {
		t.Errorf("shared mode, stat after the bound: %d LOOKUPs, want at least %d (every entry revalidated)", s["LOOKUP"], files)
	}
	if d := def[phase("stat after the bound")]; d["LOOKUP"] != 0 {
		t.Errorf("default mode, stat after the bound: %d LOOKUPs, want 0 (long validity)", d["LOOKUP"])
	}
}

// requestCounts returns the requests per opcode that reached m's daemon.
func requestCounts(t *testing.T, m *cryptfstest.Mount) map[string]uint64 {
	t.Helper()
	st, err := m.Stats(t.Context())
	mustDo(t, err)
	out := map[string]uint64{}
	for _, o := range st.Ops {
		out[o.Opcode] = o.Daemon
	}
	return out
}

func ratio(a, b uint64) string {
	if b == 0 {
		if a == 0 {
			return "="
		}
		return "inf"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

// TestSharedStorageFlags: what --shared-storage refuses, with the usage
// exit code and a message that says what to do.
func TestSharedStorageFlags(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cipher := cryptfstest.Init(t)
	for _, args := range [][]string{
		{"--fast-path=ebpf"},
		{"--reverse"},
	} {
		mnt := t.TempDir()
		full := append(append([]string{"mount", "--insecure-kdf", "-f", "--shared-storage"}, args...), cipher, mnt)
		out, code := cryptfstest.Run(t, cryptfstest.Password+"\n", full...)
		if code != 2 || !strings.Contains(out, "--shared-storage") {
			t.Errorf("cryptfs %s: exit %d, %q; want the usage exit code and a message naming --shared-storage", strings.Join(full, " "), code, out)
		}
		if cryptfstest.IsMounted(mnt) {
			cryptfstest.Detach(mnt)
			t.Errorf("%v mounted", args)
		}
	}
}

// TestSharedStorageSuite runs the POSIX suite on a --shared-storage
// mount: the mode changes what is cached, not what the file system does.
// The off tier ($CRYPTFS_SHARED_TIERS=auto,off) passed too when the mode
// was written; by default the suite runs in the tier auto picks.
func TestSharedStorageSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the suite on a shared-storage mount in -short mode")
	}
	tiers := []string{"auto"}
	if env := os.Getenv("CRYPTFS_SHARED_TIERS"); env != "" {
		tiers = strings.Split(env, ",")
	}
	for _, tier := range tiers {
		t.Run(tier, func(t *testing.T) {
			m := sharedMount(t, cryptfstest.Init(t), "--fast-path="+tier, "--allow-other")
			fstest.Run(t, m.Dir, cryptfsOptions())
			cryptfstest.Unmount(t, m)
			if strings.Contains(m.Log(), `"level":"error"`) {
				t.Errorf("the daemon logged errors during the suite:\n%s", m.Log())
			}
			fsck(t, m.Cipher, 0)
		})
	}
}

// TestSharedStorageDirectoryArriving: a sync client creates a directory
// before it brings the directory's name IV file (rsync sorts names
// starting with "-" before it; Syncthing pulls in any order). The mount
// shows the directory empty meanwhile and never writes an IV of its own
// into it (that one would replace the real one on the other machines, or
// be replaced and leave the mount with the wrong IV); once the IV and the
// files are there, the mount shows them.
func TestSharedStorageDirectoryArriving(t *testing.T) {
	cipher := cryptfstest.Init(t)
	mA := sharedMount(t, cipher)
	other := copyTree(t, cipher)
	mB := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: other})
	mustDo(t, os.Mkdir(filepath.Join(mB.Dir, "incoming"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(mB.Dir, "incoming", "file.txt"), []byte("arrived"), 0o644))
	cryptfstest.Unmount(t, mB)
	srcDir := lowerPath(t, other, "incoming")
	srcFile := lowerPath(t, other, "incoming/file.txt")
	dstDir := filepath.Join(cipher, strings.TrimPrefix(srcDir, other))

	// The sync client's first step: the directory, empty.
	mustDo(t, os.Mkdir(dstDir, 0o755))
	time.Sleep(sharedBound + sharedSlack) // the root's listing and entries expire
	if got := listDir(t, filepath.Join(mA.Dir, "incoming")); len(got) != 0 {
		t.Errorf("the arriving directory lists %q, want nothing yet", got)
	}
	if _, err := os.Stat(filepath.Join(mA.Dir, "incoming", "file.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a name in the arriving directory: %v, want ENOENT", err)
	}
	if _, err := os.Lstat(filepath.Join(dstDir, crypt.DirIVFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the mount wrote a name IV into a directory a sync client is bringing (%v)", err)
	}

	// The rest arrives: IV and file, each a temporary file renamed.
	for _, f := range []struct{ src, dst string }{
		{filepath.Join(srcDir, crypt.DirIVFile), filepath.Join(dstDir, crypt.DirIVFile)},
		{srcFile, filepath.Join(dstDir, filepath.Base(srcFile))},
	} {
		data, err := os.ReadFile(f.src)
		mustDo(t, err)
		mustDo(t, os.WriteFile(f.dst+".tmp", data, 0o644))
		mustDo(t, os.Rename(f.dst+".tmp", f.dst))
	}
	time.Sleep(sharedBound + sharedSlack)
	if got := listDir(t, filepath.Join(mA.Dir, "incoming")); !slices.Equal(got, []string{"file.txt"}) {
		t.Errorf("the directory once complete lists %q, want file.txt", got)
	}
	if got, err := os.ReadFile(filepath.Join(mA.Dir, "incoming", "file.txt")); err != nil || string(got) != "arrived" {
		t.Errorf("incoming/file.txt: %q, %v", got, err)
	}
	noAuthFailures(t, mA)
}
