package main

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The bench workload: `make bench`'s workloads, in small, run in the
// stock-kernel guest for every tier (by default off, kernel-cache and
// ebpf), so that the ebpf tier, which needs the cryptfs FUSE module, gets
// its column (issue 17). What transfers from a guest under TCG is the
// requests that reached the daemon per opcode (exact, timing-independent)
// and how the tiers' wall times compare within one guest run; absolute
// guest times are those of a software CPU emulator and mean little.

type benchConfig struct {
	common
	dirs, files int
	creates     int
	streamMiB   int
	tiers       []string
}

func runBench(args []string, stdout io.Writer) error {
	var c benchConfig
	var tiers string
	f := flag.NewFlagSet("bench", flag.ContinueOnError)
	c.flags(f, "where to create the work directory (default $TMPDIR; needs user xattrs)")
	f.IntVar(&c.dirs, "dirs", 20, "directories in the source-like archive (two levels)")
	f.IntVar(&c.files, "files", 20, "files per directory")
	f.IntVar(&c.creates, "creates", 500, "empty files the create workload makes")
	f.IntVar(&c.streamMiB, "stream-mib", 16, "size of the streamed file in MiB")
	f.StringVar(&tiers, "tiers", "off,kernel-cache,ebpf", "tiers to measure, comma-separated; the first is the time baseline")
	if err := f.Parse(args); err != nil {
		return err
	}
	c.tiers = strings.Split(tiers, ",")
	if c.dirs < 1 || c.files < 1 || c.creates < 1 || c.streamMiB < 1 || len(c.tiers) == 0 {
		return errors.New("bench: -dirs, -files, -creates and -stream-mib must be positive, -tiers non-empty")
	}
	return benchWorkload(c, stdout)
}

// benchStep is one workload's figures in one tier.
type benchStep struct {
	requests phase
	hits     phase
	wall     time.Duration
	result   string // what must be equal in every tier
}

// benchNames are the workloads, in the order they run (each leaves what
// the next needs).
var benchNames = []string{
	"write 16 MiB + fsync", "read 16 MiB (cold)", "untar", "stat (warm)", "stat (cold)",
	"ls -lR (warm)", "rm -rf", "create files",
}

func benchWorkload(c benchConfig, stdout io.Writer) (err error) {
	ws, err := c.start("bench")
	if err != nil {
		return err
	}
	defer ws.finish(&err)
	archive := filepath.Join(ws.work, "src.tar")
	entries, err := makeArchive(archive, c.dirs, c.files)
	if err != nil {
		return fmt.Errorf("making the archive: %w", err)
	}
	names := append([]string(nil), benchNames...)
	names[0] = fmt.Sprintf("write %d MiB + fsync", c.streamMiB)
	names[1] = fmt.Sprintf("read %d MiB (cold)", c.streamMiB)
	results := map[string][]benchStep{}
	for _, tier := range c.tiers {
		steps, err := benchTier(ws, c, tier, archive)
		if err != nil {
			return fmt.Errorf("tier %s: %w", tier, err)
		}
		for i, s := range steps {
			fmt.Fprintf(stdout, "bench: %s: %s: %d requests (%s) in %.2fs, fast-path hits %d\n",
				tier, names[i], s.requests.total(), s.requests.top(6), s.wall.Seconds(), s.hits.total())
			if ref := results[c.tiers[0]]; len(ref) > i && ref[i].result != s.result {
				return fmt.Errorf("%s: tier %s saw other results than tier %s:\n%s", names[i], tier, c.tiers[0],
					firstDiffs(ref[i].result, s.result, 5))
			}
		}
		results[tier] = steps
	}
	writeBenchTable(stdout, c, names, entries, results)
	return nil
}

// writeBenchTable prints the markdown report between the markers
// vmtest.sh looks for.
func writeBenchTable(w io.Writer, c benchConfig, names []string, entries int, results map[string][]benchStep) {
	base := c.tiers[0]
	fmt.Fprintln(w, "=== bench table")
	fmt.Fprintf(w, "Requests that reached the daemon (its own counters: 6.1 has no fuse tracepoints) per workload and tier, and each tier's guest wall time as a ratio to the %s tier's in the same guest run. The source tree: %d entries (%d directories, %d files of 0-9 KiB, %d symlinks), extracted with busybox tar; stat is an lstat of every entry, ls -lR is busybox's; create makes %d empty files in one directory. Cold: unmounted, caches dropped, mounted again. Every tier saw the same results (the extracted tree's listing and contents, every lstat's type, mode, size and link count, the streamed file's hash).\n\n",
		base, entries, c.dirs+c.dirs/10+1, c.dirs*c.files, c.dirs, c.creates)
	fmt.Fprint(w, "| workload |")
	for _, t := range c.tiers {
		fmt.Fprintf(w, " %s requests |", t)
	}
	for _, t := range c.tiers[1:] {
		fmt.Fprintf(w, " %s time vs %s |", t, base)
	}
	fmt.Fprintln(w, " fast-path hits |")
	fmt.Fprint(w, "|---|")
	for range c.tiers {
		fmt.Fprint(w, "---:|")
	}
	for range c.tiers[1:] {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w, "---:|")
	for i, name := range names {
		fmt.Fprintf(w, "| %s |", name)
		for _, t := range c.tiers {
			fmt.Fprintf(w, " %d |", results[t][i].requests.total())
		}
		bw := results[base][i].wall
		for _, t := range c.tiers[1:] {
			fmt.Fprintf(w, " %.2fx |", results[t][i].wall.Seconds()/max(bw.Seconds(), 1e-9))
		}
		var hits uint64
		for _, t := range c.tiers {
			hits += results[t][i].hits.total()
		}
		fmt.Fprintf(w, " %d |\n", hits)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Requests per opcode (all opcodes with any request):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| workload | tier | requests per opcode | guest wall |")
	fmt.Fprintln(w, "|---|---|---|---:|")
	for i, name := range names {
		for _, t := range c.tiers {
			s := results[t][i]
			fmt.Fprintf(w, "| %s | %s | %s | %.2fs |\n", name, t, s.requests.top(100), s.wall.Seconds())
		}
	}
	fmt.Fprintln(w, "=== end")
}

// benchTier runs every workload in a fresh cipher directory with tier.
func benchTier(ws *workspace, c benchConfig, tier, archive string) (steps []benchStep, err error) {
	cipher := filepath.Join(ws.work, "bench-cipher-"+tier)
	if err := ws.x.initDir(cipher); err != nil {
		return nil, err
	}
	logFile := filepath.Join(ws.work, "bench-"+tier+".log")
	var m *mount
	mountIt := func() error {
		var err error
		m, err = ws.x.mountTier(cipher, ws.mnt, tier, logFile)
		return err
	}
	unmountIt := func() error {
		if m == nil {
			return nil
		}
		err := m.unmount()
		m = nil
		return err
	}
	defer func() {
		if uerr := unmountIt(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	// cold unmounts, drops every cache and mounts again.
	cold := func() error {
		if err := unmountIt(); err != nil {
			return err
		}
		unix.Sync()
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
			return fmt.Errorf("drop caches: %w", err)
		}
		return mountIt()
	}
	if err := mountIt(); err != nil {
		return nil, err
	}
	// measure runs one workload and takes the daemon's counters around it.
	measure := func(run func() (string, error)) error {
		st, err := m.stats()
		if err != nil {
			return err
		}
		d0, h0 := allOps(st)
		start := time.Now()
		result, err := run()
		wall := time.Since(start)
		if err != nil {
			return err
		}
		if st, err = m.stats(); err != nil {
			return err
		}
		d1, h1 := allOps(st)
		steps = append(steps, benchStep{requests: diffOps(d1, d0), hits: diffOps(h1, h0), wall: wall, result: result})
		return nil
	}
	stream := func() string { return filepath.Join(m.Dir, "stream") }
	src := func() string { return filepath.Join(m.Dir, "src") }
	// Untimed checks whose results must match between tiers run after
	// the timed part of a workload, outside measure's counters where they
	// would add requests: they go in a closure's result string instead.
	workloads := []struct {
		before func() error
		run    func() (string, error)
	}{
		{nil, func() (string, error) { return writeStream(stream(), c.streamMiB) }},
		{cold, func() (string, error) { return readStream(stream()) }},
		{nil, func() (string, error) {
			if out, err := exec.Command("tar", "-xf", archive, "-C", m.Dir).CombinedOutput(); err != nil {
				return "", fmt.Errorf("tar -xf: %v: %s", err, out)
			}
			return "", nil
		}},
		{func() error { _, err := statTree(src()); return err }, func() (string, error) { return statTree(src()) }},
		{cold, func() (string, error) { return statTree(src()) }},
		{func() error { return lsR(src()) }, func() (string, error) { return "", lsR(src()) }},
		{nil, func() (string, error) {
			if out, err := exec.Command("rm", "-rf", src()).CombinedOutput(); err != nil {
				return "", fmt.Errorf("rm -rf: %v: %s", err, out)
			}
			return "", nil
		}},
		{nil, func() (string, error) { return createFiles(filepath.Join(m.Dir, "many"), c.creates) }},
	}
	for i, w := range workloads {
		if w.before != nil {
			if err := w.before(); err != nil {
				return nil, fmt.Errorf("%s: %w", benchNames[i], err)
			}
		}
		if err := measure(w.run); err != nil {
			return nil, fmt.Errorf("%s: %w", benchNames[i], err)
		}
		if benchNames[i] == "untar" {
			// The extracted tree must be the same in every tier; listed
			// after the counters were taken (the next workload's warm-up
			// pass follows anyway).
			listing, err := describeTree(src())
			if err != nil {
				return nil, err
			}
			steps[i].result = listing
		}
	}
	if names, err := readDirNames(src()); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("after rm -rf the tree is still there: %q (%v)", names, err)
	}
	return steps, nil
}

// writeStream writes a file of mib MiB in 128 KiB writes and fsyncs it.
func writeStream(path string, mib int) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 128<<10)
	h := sha256.New()
	for i := 0; i < mib*8; i++ {
		for j := range buf {
			buf[j] = byte(i*131 + j*7)
		}
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), f.Close()
}

// readStream reads a file sequentially and returns its hash.
func readStream(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 128<<10)); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// statTree lstats every entry under root (getdents + lstat, as find
// -ls would) and describes what must not differ between tiers: type,
// mode, link count, and the size of everything but directories (whose
// size is the lower directory's).
func statTree(root string) (string, error) {
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := fmt.Sprintf("%s %o %d", rel, st.Mode, st.Nlink)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			line += fmt.Sprintf(" %d", st.Size)
		}
		lines = append(lines, line)
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n"), err
}

// lsR runs busybox's ls -lR on root, output discarded.
func lsR(root string) error {
	cmd := exec.Command("ls", "-lR", root)
	cmd.Stdout = io.Discard
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ls -lR: %v: %s", err, stderr.String())
	}
	return nil
}

// createFiles makes dir and n empty files in it (open O_CREAT|O_EXCL,
// close), one after another, so that the counts do not depend on timing.
func createFiles(dir string, n int) (string, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	for i := 0; i < n; i++ {
		fd, err := unix.Open(filepath.Join(dir, fmt.Sprintf("f%05d", i)), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return "", err
		}
		unix.Close(fd)
	}
	names, err := readDirNames(dir)
	return fmt.Sprintf("%d files", len(names)), err
}
