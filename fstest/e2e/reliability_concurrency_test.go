package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// TestReliabilityConcurrency runs writer, appender, renamer and reader processes against
// one cryptfs mount at once, then remounts and checks what was stored.
func TestReliabilityConcurrency(t *testing.T) {
	seed := modelSeed(t)
	t.Logf("seed %d (reproduce with FSTEST_MODEL_SEED=%d)", seed, seed)
	t.Run("SharedFile", func(t *testing.T) { testSharedFile(t, seed) })
	t.Run("Renames", func(t *testing.T) { testConcurrentRenames(t, seed) })
}

// remountCheck unmounts m, checks the daemon logged no error and mounts the same cipher
// directory again.
func remountCheck(t *testing.T, m *cryptfstest.Mount, args []string) *cryptfstest.Mount {
	t.Helper()
	cryptfstest.Unmount(t, m)
	if strings.Contains(m.Log(), `"level":"error"`) {
		t.Errorf("the daemon logged errors:\n%s", tail(m.Log(), 40))
	}
	return cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: m.Cipher, Args: args})
}

// disjointRanges cuts [0, size) into ranges of lengths clustered around block sizes, each
// owned by one of writers 1..writers at random, so that neighbouring ranges of different
// writers share 4 KiB blocks.
func disjointRanges(seed uint64, size int64, writers int) []byteRange {
	rng := newRand(mix(seed, 1, 1))
	var out []byteRange
	for off := int64(0); off < size; {
		var n int64
		switch rng.IntN(4) {
		case 0:
			n = 1 + rng.Int64N(100)
		case 1:
			n = []int64{4095, 4096, 4097, 8191, 8193}[rng.IntN(5)]
		default:
			n = 1 + rng.Int64N(3*4096)
		}
		n = min(n, size-off)
		out = append(out, byteRange{Off: off, Len: n, Owner: 1 + rng.IntN(writers)})
		off += n
	}
	return out
}

// testSharedFile: disjoint writers and overlapping writers on one file, appenders on
// another, readers (through the page cache and with O_DIRECT through the daemon) during
// all of it. The shared file exists twice: written through the page cache (which merges
// writes into whole pages before the daemon sees them) and with O_DIRECT (every write a
// request of its own, at its own offset and length, concurrently with the others'). No
// operation may fail; afterwards, on a fresh mount, the disjoint region must equal what the
// same schedule gives on the lower filesystem, every word of the overlap region must be
// the last word its writer put there, and the append file must hold every record whole
// and in order.
func testSharedFile(t *testing.T, seed uint64) {
	const writers = 3
	var (
		disjointSize = int64(sized(1<<20, 8<<20))
		overlapLen   = int64(sized(256<<10, 1<<20))
		overlapN     = sized(1000, 10000)
		appendN      = sized(500, 5000)
	)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	appendFile := filepath.Join(m.Dir, "append")
	mustDo(t, os.WriteFile(appendFile, nil, 0o644))

	ranges := disjointRanges(seed, disjointSize, writers)
	base := workerSpec{Seed: seed, Ranges: ranges, Passes: sized(4, 8),
		RegionOff: disjointSize, RegionLen: overlapLen, Writers: writers, N: overlapN}
	modes := []struct {
		file   string
		direct bool
	}{{"shared", false}, {"shared-direct", true}}
	var ws, readers []*worker
	for _, mode := range modes {
		file := filepath.Join(m.Dir, mode.file)
		mustDo(t, os.WriteFile(file, nil, 0o644))
		for id := 1; id <= writers; id++ {
			d := base
			d.Kind, d.ID, d.File, d.Direct = "disjoint", id, file, mode.direct
			ws = append(ws, startWorker(t, d))
			o := base
			o.Kind, o.ID, o.File, o.Direct, o.Ranges = "overlap", id, file, mode.direct, nil
			ws = append(ws, startWorker(t, o))
		}
		for id, direct := range []bool{true, false} {
			r := base
			r.Kind, r.ID, r.File, r.Ranges, r.Direct = "reader", id, file, nil, direct
			readers = append(readers, startWorker(t, r))
		}
	}
	for id := 1; id <= writers; id++ {
		ws = append(ws, startWorker(t, workerSpec{Kind: "append", ID: id, Seed: seed, File: appendFile, N: appendN}))
	}
	readers = append(readers, startWorker(t, workerSpec{Kind: "append-reader", Seed: seed, File: appendFile, Writers: writers}))

	start := time.Now()
	writes := 0
	for _, w := range ws {
		writes += w.waitClean(t, 10*time.Minute)
	}
	reads := 0
	for _, r := range readers {
		r.stop()
		reads += r.waitClean(t, time.Minute)
	}
	t.Logf("%d writes, %d reads in %v", writes, reads, time.Since(start).Round(time.Millisecond))

	// The same disjoint schedule on the lower filesystem.
	refFile := filepath.Join(t.TempDir(), "shared")
	mustDo(t, os.WriteFile(refFile, nil, 0o644))
	var refs []*worker
	for id := 1; id <= writers; id++ {
		d := base
		d.Kind, d.ID, d.File = "disjoint", id, refFile
		refs = append(refs, startWorker(t, d))
	}
	for _, w := range refs {
		w.waitClean(t, 10*time.Minute)
	}
	want := readFile(t, refFile)
	for _, r := range ranges { // and what the schedule means, independently of any filesystem
		checkBytes(t, want[r.Off:r.Off+r.Len], rangeData(seed, r, base.Passes-1), "reference range at %d", r.Off)
	}

	m = remountCheck(t, m, nil)
	plan := planOverlap(base)
	wantSize := disjointSize
	for _, ws := range plan {
		for _, w := range ws {
			wantSize = max(wantSize, w[0]+w[1])
		}
	}
	for _, mode := range modes {
		got := readFile(t, filepath.Join(m.Dir, mode.file))
		if int64(len(got)) != wantSize {
			t.Errorf("%s: size %d, want %d", mode.file, len(got), wantSize)
		}
		if int64(len(got)) < disjointSize {
			continue
		}
		if d := diffBytes(got[:disjointSize], want); d != "" {
			i := firstDiff(got[:disjointSize], want)
			t.Errorf("%s: disjoint region differs from the lower filesystem's: %s (block %d)", mode.file, d, i/4096)
		}
		for _, e := range overlapCheck(base, plan, got[disjointSize:], disjointSize, true) {
			t.Errorf("%s: overlap region: %s", mode.file, e)
		}
	}
	data := readFile(t, filepath.Join(m.Dir, "append"))
	count, errs := parseAppends(seed, data, writers, false)
	for _, e := range errs {
		t.Errorf("append file: %s", e)
	}
	for w := 1; w <= writers; w++ {
		if count[w] != appendN {
			t.Errorf("append file: %d records of writer %d, want %d", count[w], w, appendN)
		}
	}
	cryptfstest.Unmount(t, m)
	fsck(t, m.Cipher, 0)
}

// testConcurrentRenames: renamer processes move files within and across four directories
// (and a subdirectory holding some of them between the directories) while readers list
// the directories and read every file they see. Renames must not fail, a file that opens
// must be whole and the right one, and afterwards, on a fresh mount, every file must exist
// exactly once with its content.
func testConcurrentRenames(t *testing.T, seed uint64) {
	const renamers = 2
	nfiles := sized(40, 200)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	var files []string
	for r := 0; r < 4; r++ {
		mustDo(t, os.Mkdir(filepath.Join(m.Dir, fmt.Sprintf("r%d", r)), 0o755))
	}
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "r0", "sub"), 0o755))
	for i := 0; i < nfiles; i++ {
		p := fmt.Sprintf("r%d/n%d-0", i%4, i)
		if i%5 == 0 {
			p = fmt.Sprintf("r0/sub/n%d-0", i)
		}
		mustDo(t, os.WriteFile(filepath.Join(m.Dir, p), renameContent(seed, i), 0o644))
		files = append(files, p)
	}
	spec := workerSpec{Kind: "renamer", Seed: seed, Dir: m.Dir, Files: files, Writers: renamers, N: sized(1500, 40000)}
	var ws, readers []*worker
	for id := 0; id < renamers; id++ {
		s := spec
		s.ID = id
		ws = append(ws, startWorker(t, s))
	}
	for id := 0; id < 2; id++ {
		readers = append(readers, startWorker(t, workerSpec{Kind: "rename-reader", ID: id, Seed: seed, Dir: m.Dir}))
	}
	start := time.Now()
	renames := 0
	for _, w := range ws {
		renames += w.waitClean(t, 10*time.Minute)
	}
	reads := 0
	for _, r := range readers {
		r.stop()
		reads += r.waitClean(t, time.Minute)
	}
	t.Logf("%d renames, %d reads in %v", renames, reads, time.Since(start).Round(time.Millisecond))

	m = remountCheck(t, m, nil)
	seen := map[int]string{}
	for r := 0; r < 4; r++ {
		for _, sub := range []string{"", "/sub"} {
			d := fmt.Sprintf("r%d%s", r, sub)
			names, err := readNames(filepath.Join(m.Dir, d))
			if err != nil {
				continue // the subdirectory is in one place only
			}
			for _, n := range names {
				if n == "sub" {
					continue
				}
				var i, k int
				if _, err := fmt.Sscanf(n, "n%d-%d", &i, &k); err != nil || i >= nfiles {
					t.Errorf("unexpected entry %s/%s", d, n)
					continue
				}
				if prev, ok := seen[i]; ok {
					t.Errorf("file %d exists twice: %s and %s/%s", i, prev, d, n)
				}
				seen[i] = d + "/" + n
				data, err := os.ReadFile(filepath.Join(m.Dir, d, n))
				if err != nil || !bytes.Equal(data, renameContent(seed, i)) {
					t.Errorf("file %d at %s/%s: %v %s", i, d, n, err, diffBytes(data, renameContent(seed, i)))
				}
			}
		}
	}
	if len(seen) != nfiles {
		t.Errorf("%d of %d files found after the renames", len(seen), nfiles)
	}
	cryptfstest.Unmount(t, m)
	fsck(t, m.Cipher, 0)
}

// TestConcurrencyCheckers checks that the concurrency tests' own checks find what they
// must: a lost update, a misplaced or garbage word and a zeroed word in the overlap
// region; a damaged, missing or cut record in the append file.
func TestConcurrencyCheckers(t *testing.T) {
	spec := workerSpec{Seed: 3, RegionOff: 8192, RegionLen: 64 << 10, Writers: 2, N: 30}
	plan := planOverlap(spec)
	// The region after every write, applied writer after writer.
	region := make([]byte, spec.RegionLen)
	for w := 1; w <= spec.Writers; w++ {
		for s := 0; s < spec.N; s++ {
			off, n := plan[w][s][0], plan[w][s][1]
			for i := off; i < off+n; i += 8 {
				binary.LittleEndian.PutUint64(region[i-spec.RegionOff:], overlapWord(w, s, i))
			}
		}
	}
	if errs := overlapCheck(spec, plan, region, spec.RegionOff, true); len(errs) > 0 {
		t.Fatalf("a correct region fails the check: %v", errs)
	}
	// A word of writer 1's last write that covers it, reverted to an earlier write of
	// writer 1 that also covered it.
	lost := func() []byte {
		b := append([]byte(nil), region...)
		for i := 0; i < len(b); i += 8 {
			word := binary.LittleEndian.Uint64(b[i:])
			w, s, pos := int(word>>56), int(word>>32&0xffffff), spec.RegionOff+int64(i)
			for earlier := 0; earlier < s; earlier++ {
				if o, n := plan[w][earlier][0], plan[w][earlier][1]; pos >= o && pos < o+n {
					binary.LittleEndian.PutUint64(b[i:], overlapWord(w, earlier, pos))
					return b
				}
			}
		}
		t.Fatal("test bug: no word was written twice")
		return nil
	}()
	garbage := append([]byte(nil), region...)
	copy(garbage[800:], randBytes(1, 8))
	misplaced := append([]byte(nil), region...)
	copy(misplaced[4096:4104], region[0:8])
	zeroed := append([]byte(nil), region...)
	for i := 0; i < len(zeroed); i += 8 {
		if binary.LittleEndian.Uint64(zeroed[i:]) != 0 {
			clear(zeroed[i : i+8])
			break
		}
	}
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"lost update": {lost, "lost update"},
		"garbage":     {garbage, "not written there"},
		"misplaced":   {misplaced, "not written there"},
		"zeroed":      {zeroed, "is zero but writer"},
	} {
		errs := overlapCheck(spec, plan, c.data, spec.RegionOff, true)
		if len(errs) == 0 || !strings.Contains(strings.Join(errs, "; "), c.want) {
			t.Errorf("%s: check says %q, want %q", name, errs, c.want)
		}
	}

	var file []byte
	for s := 0; s < 5; s++ {
		for w := 1; w <= 2; w++ {
			file = append(file, appendRecord(9, w, s)...)
		}
	}
	if count, errs := parseAppends(9, file, 2, false); len(errs) > 0 || count[1] != 5 || count[2] != 5 {
		t.Fatalf("correct append file: %v %v", count, errs)
	}
	damaged := append([]byte(nil), file...)
	damaged[100] ^= 1
	if _, errs := parseAppends(9, damaged, 2, false); len(errs) == 0 {
		t.Errorf("a damaged record passes")
	}
	first := len(appendRecord(9, 1, 0))
	missing := append(append([]byte(nil), file[:0]...), file[first:]...) // writer 1's record 0 gone
	if count, errs := parseAppends(9, missing, 2, false); len(errs) == 0 && count[1] == 5 {
		t.Errorf("a missing record passes")
	}
	cut := file[:len(file)-3]
	if _, errs := parseAppends(9, cut, 2, false); len(errs) == 0 {
		t.Errorf("a cut record passes a final check")
	}
	if _, errs := parseAppends(9, cut, 2, true); len(errs) > 0 {
		t.Errorf("a cut last record fails a check during appending: %v", errs)
	}
}
