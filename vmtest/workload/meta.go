package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// metaConfig are the flags of `workload meta`.
type metaConfig struct {
	common
	dirs   int
	files  int
	passes int
	tiers  []string
	minCut float64
}

func runMeta(args []string, stdout io.Writer) error {
	var c metaConfig
	var tiers string
	f := flag.NewFlagSet("meta", flag.ContinueOnError)
	c.flags(f, "where to create the work directory (default $TMPDIR; needs user xattrs)")
	f.IntVar(&c.dirs, "dirs", 40, "directories in the tree")
	f.IntVar(&c.files, "files", 50, "files per directory")
	f.IntVar(&c.passes, "passes", 3, "passes of the workload per tier")
	f.StringVar(&tiers, "tiers", "off,kernel-cache,ebpf", "tiers to measure, comma-separated; the first is the baseline")
	f.Float64Var(&c.minCut, "min-cut", 90, "the ebpf tier must cut LOOKUP+GETATTR+GETXATTR daemon requests by at least this many percent against the baseline (0: no requirement)")
	if err := f.Parse(args); err != nil {
		return err
	}
	c.tiers = strings.Split(tiers, ",")
	if c.dirs < 1 || c.files < 1 || c.passes < 1 || len(c.tiers) == 0 {
		return fmt.Errorf("meta: -dirs, -files and -passes must be positive, -tiers non-empty")
	}
	return metaWorkload(c, stdout)
}

// tree is the directory tree the workload runs on, with what every file
// must show.
type tree struct {
	dirs  []string        // relative paths of the directories
	files []string        // relative paths of the files
	want  map[string]file // by relative path
}

type file struct {
	size   int64
	mode   uint32 // permission bits
	mtime  int64
	xattrs map[string][]byte
}

// Extended attributes the workload reads on every file.
const (
	xattrTag = "user.tag" // present on every third file, short
	xattrBig = "user.big" // present on a few files, too large for the program's value slot
)

// newTree describes dirs directories of files files each.
func newTree(dirs, files int) tree {
	t := tree{want: make(map[string]file)}
	modes := []uint32{0o644, 0o600, 0o640, 0o755, 0o444}
	for d := 0; d < dirs; d++ {
		dir := fmt.Sprintf("d%02d", d)
		t.dirs = append(t.dirs, dir)
		for i := 0; i < files; i++ {
			n := d*files + i
			p := fmt.Sprintf("%s/f%03d", dir, i)
			fl := file{size: int64(n*131) % 9000, mode: modes[n%len(modes)], mtime: 1700000000 + int64(n), xattrs: map[string][]byte{}}
			if n%3 == 0 {
				fl.xattrs[xattrTag] = []byte("tag-" + strconv.Itoa(n))
			}
			if n%400 == 7 {
				fl.xattrs[xattrBig] = bytes.Repeat([]byte{byte('a' + n%26)}, 1000)
			}
			t.files = append(t.files, p)
			t.want[p] = fl
		}
	}
	return t
}

// build creates the tree under mnt.
func (t tree) build(mnt string) error {
	for _, d := range t.dirs {
		if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
			return err
		}
	}
	for i, p := range t.files {
		fl := t.want[p]
		full := filepath.Join(mnt, p)
		if err := os.WriteFile(full, bytes.Repeat([]byte{byte(i)}, int(fl.size)), 0o600); err != nil {
			return err
		}
		if err := os.Chmod(full, os.FileMode(fl.mode)); err != nil {
			return err
		}
		for _, name := range sortedKeys(fl.xattrs) {
			if err := unix.Setxattr(full, name, fl.xattrs[name], 0); err != nil {
				return fmt.Errorf("setxattr %s %s: %w", full, name, err)
			}
		}
		ts := []unix.Timespec{{Sec: fl.mtime}, {Sec: fl.mtime}}
		if err := unix.UtimesNano(full, ts); err != nil {
			return fmt.Errorf("utimens %s: %w", full, err)
		}
	}
	for i, d := range t.dirs {
		ts := []unix.Timespec{{Sec: 1600000000 + int64(i)}, {Sec: 1600000000 + int64(i)}}
		if err := unix.UtimesNano(filepath.Join(mnt, d), ts); err != nil {
			return fmt.Errorf("utimens %s: %w", d, err)
		}
	}
	return nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// pass runs the workload once on the tree mounted at mnt and returns its
// results as text: one line per stat, listed entry and xattr read. It
// fails on any answer that contradicts how the tree was built.
func (t tree) pass(mnt string) (string, error) {
	var b strings.Builder
	b.WriteString("# lstat of every path\n")
	for _, p := range append(append([]string(nil), t.dirs...), t.files...) {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, p), &st); err != nil {
			return "", fmt.Errorf("lstat %s: %w", p, err)
		}
		if err := t.check(p, &st); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %s\n", p, statLine(&st))
	}
	b.WriteString("# ls -lR\n")
	if err := t.list(&b, mnt, "."); err != nil {
		return "", err
	}
	b.WriteString("# getxattr of every file\n")
	buf := make([]byte, 64<<10)
	for _, p := range t.files {
		fmt.Fprintf(&b, "%s", p)
		for _, name := range []string{xattrTag, xattrBig} {
			n, err := unix.Getxattr(filepath.Join(mnt, p), name, buf)
			want, present := t.want[p].xattrs[name]
			switch {
			case err == nil && present && bytes.Equal(buf[:n], want):
			case errors.Is(err, unix.ENODATA) && !present:
			default:
				return "", fmt.Errorf("getxattr %s %s: got %s, want %s", p, name, xattrResult(buf[:max(n, 0)], err), xattrResult(want, errIf(!present, unix.ENODATA)))
			}
			fmt.Fprintf(&b, " %s=%s", name, xattrResult(buf[:max(n, 0)], err))
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

func errIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

// check compares a file's stat with how it was built.
func (t tree) check(p string, st *unix.Stat_t) error {
	fl, ok := t.want[p]
	if !ok { // a directory
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%s: mode %o, want a directory", p, st.Mode)
		}
		return nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != fl.mode || st.Size != fl.size || st.Mtim.Sec != fl.mtime || st.Nlink != 1 {
		return fmt.Errorf("%s: mode %o size %d mtime %d nlink %d, want mode %o size %d mtime %d nlink 1",
			p, st.Mode, st.Size, st.Mtim.Sec, st.Nlink, unix.S_IFREG|fl.mode, fl.size, fl.mtime)
	}
	return nil
}

// list does what GNU ls -lR does for each entry: read the directory,
// lstat each entry and ask for its SELinux label and its access ACL,
// then recurse into subdirectories.
func (t tree) list(b *strings.Builder, mnt, rel string) error {
	dir := filepath.Join(mnt, rel)
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	sort.Strings(names)
	fmt.Fprintf(b, "%s:\n", rel)
	buf := make([]byte, 4096)
	var subdirs []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", p, err)
		}
		if err := t.check(filepath.Join(rel, n), &st); err != nil {
			return err
		}
		sel, serr := unix.Lgetxattr(p, "security.selinux", buf)
		selinux := xattrResult(buf[:max(sel, 0)], serr)
		acl, aerr := unix.Lgetxattr(p, "system.posix_acl_access", buf)
		fmt.Fprintf(b, "%s %s selinux=%s acl=%s\n", n, statLine(&st), selinux, xattrResult(buf[:max(acl, 0)], aerr))
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			subdirs = append(subdirs, n)
		}
	}
	for _, n := range subdirs {
		if err := t.list(b, mnt, filepath.Join(rel, n)); err != nil {
			return err
		}
	}
	return nil
}

// readDirNames reads a directory with getdents only (no stat per entry,
// no poller registration).
func readDirNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("readdir %s: %w", dir, err)
	}
	return names, nil
}

// statLine is every stat field that must not depend on the tier. atime is
// left out: a directory read through the daemon may move it (relatime).
func statLine(st *unix.Stat_t) string {
	return fmt.Sprintf("ino=%d mode=%o nlink=%d uid=%d gid=%d size=%d blocks=%d mtime=%d.%09d ctime=%d.%09d",
		st.Ino, st.Mode, st.Nlink, st.Uid, st.Gid, st.Size, st.Blocks, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// xattrResult is an xattr read's outcome: the errno, or the value (quoted
// when short, else its length and hash).
func xattrResult(v []byte, err error) string {
	if err != nil {
		return errString(err)
	}
	if len(v) <= 32 {
		return strconv.Quote(string(v))
	}
	return fmt.Sprintf("len%d:sha256:%x", len(v), sha256.Sum256(v))
}

// tierResult is one tier's measurement.
type tierResult struct {
	tier   string
	passes []map[string]counts // per pass, per opcode
	walls  []time.Duration     // per pass
}

func (r tierResult) total(op string) counts {
	var c counts
	for _, p := range r.passes {
		c.Daemon += p[op].Daemon
		c.Hits += p[op].Hits
	}
	return c
}

// requests is the LOOKUP+GETATTR+GETXATTR daemon requests of some passes.
func (r tierResult) requests(from, to int) uint64 {
	var n uint64
	for _, p := range r.passes[from:to] {
		for _, op := range metaOps {
			n += p[op].Daemon
		}
	}
	return n
}

func (r tierResult) hits() uint64 {
	var n uint64
	for _, op := range metaOps {
		n += r.total(op).Hits
	}
	return n
}

func (r tierResult) wall() time.Duration {
	var d time.Duration
	for _, w := range r.walls {
		d += w
	}
	return d
}

func metaWorkload(c metaConfig, stdout io.Writer) (err error) {
	ws, err := c.start("meta")
	if err != nil {
		return err
	}
	defer ws.finish(&err)
	work, cipher, mnt, x := ws.work, ws.cipher, ws.mnt, ws.x
	t := newTree(c.dirs, c.files)
	start := time.Now()
	m, err := x.mountTier(cipher, mnt, "kernel-cache", filepath.Join(work, "build.log"))
	if err != nil {
		return err
	}
	berr := t.build(mnt)
	if err := m.unmount(); err != nil {
		return err
	}
	if berr != nil {
		return fmt.Errorf("building the tree: %w", berr)
	}
	fmt.Fprintf(stdout, "meta: built %d files in %d directories in %.1fs\n", len(t.files), len(t.dirs), time.Since(start).Seconds())

	var results []tierResult
	var reference string
	for _, tier := range c.tiers {
		r, texts, err := measureTier(x, t, cipher, mnt, filepath.Join(work, tier+".log"), tier, c.passes)
		if err != nil {
			return fmt.Errorf("tier %s: %w", tier, err)
		}
		for i, text := range texts {
			if reference == "" {
				reference = text
				continue
			}
			if d := firstDiffs(reference, text, 5); d != "" {
				return fmt.Errorf("tier %s pass %d saw different results than tier %s pass 1:\n%s", tier, i+1, c.tiers[0], d)
			}
		}
		fmt.Fprintf(stdout, "meta: %s: %d passes in %.1fs, %d daemon requests, %d fast-path hits, results identical to %s pass 1 (%d lines)\n",
			tier, c.passes, r.wall().Seconds(), r.requests(0, c.passes), r.hits(), c.tiers[0], strings.Count(reference, "\n"))
		results = append(results, r)
	}

	fmt.Fprintln(stdout, "=== metadata table")
	writeTable(stdout, c, len(t.files), len(t.dirs), results)
	fmt.Fprintln(stdout, "=== end")
	return judge(c, results)
}

// measureTier mounts the tree with one tier and runs the passes, taking
// the daemon's counters around each.
func measureTier(x cli, t tree, cipher, mnt, logFile, tier string, passes int) (r tierResult, texts []string, err error) {
	m, err := x.mountTier(cipher, mnt, tier, logFile)
	if err != nil {
		return r, nil, err
	}
	defer func() {
		if uerr := m.unmount(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	r.tier = tier
	st, err := m.stats()
	if err != nil {
		return r, nil, err
	}
	before := opCounts(st)
	for i := 0; i < passes; i++ {
		start := time.Now()
		text, err := t.pass(m.Dir)
		if err != nil {
			return r, nil, fmt.Errorf("pass %d: %w", i+1, err)
		}
		r.walls = append(r.walls, time.Since(start))
		texts = append(texts, text)
		if st, err = m.stats(); err != nil {
			return r, nil, err
		}
		after := opCounts(st)
		d, err := sub(after, before)
		if err != nil {
			return r, nil, err
		}
		r.passes = append(r.passes, d)
		before = after
	}
	return r, texts, nil
}

// firstDiffs describes up to n differing lines of two texts, "" if equal.
func firstDiffs(a, b string, n int) string {
	if a == b {
		return ""
	}
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(al), len(bl)) && len(out) < n; i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d:\n  want %s\n  got  %s", i+1, x, y))
		}
	}
	return strings.Join(out, "\n")
}

// cut is the reduction of r's daemon requests against base's, in percent.
func cut(base, r tierResult) float64 {
	b := base.requests(0, len(base.passes))
	if b == 0 {
		return 0
	}
	return 100 * (1 - float64(r.requests(0, len(r.passes)))/float64(b))
}

// judge applies the promises: the ebpf tier served requests and cut the
// daemon's metadata requests by at least minCut percent.
func judge(c metaConfig, results []tierResult) error {
	var errs []error
	for _, r := range results[1:] {
		if r.tier != "ebpf" {
			continue
		}
		if r.hits() == 0 {
			errs = append(errs, errors.New("the ebpf tier served no request in the kernel"))
		}
		if got := cut(results[0], r); c.minCut > 0 && got < c.minCut {
			errs = append(errs, fmt.Errorf("the ebpf tier cut LOOKUP+GETATTR+GETXATTR daemon requests by %.1f%% against %s, want at least %.0f%%",
				got, results[0].tier, c.minCut))
		}
	}
	return errors.Join(errs...)
}

// writeTable prints the measurement as a Markdown table.
func writeTable(w io.Writer, c metaConfig, files, dirs int, results []tierResult) {
	fmt.Fprintf(w, "%d files in %d directories; %d passes of: lstat of every path, ls -lR (lstat + 2 lgetxattr per entry), getxattr of 2 names on every file.\n",
		files, dirs, c.passes)
	fmt.Fprintf(w, "Requests that reached the daemon (its own counters) and answers the eBPF program served in the kernel, all passes.\n\n")
	fmt.Fprintf(w, "| tier | LOOKUP | GETATTR | GETXATTR | daemon total | vs %s | pass 1 | later passes | fast-path hits | wall |\n", results[0].tier)
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		vs := "baseline"
		if r.tier != results[0].tier {
			vs = fmt.Sprintf("-%.1f%%", cut(results[0], r))
		}
		n := len(r.passes)
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s | %d | %d | %d | %.1fs |\n", r.tier,
			r.total("LOOKUP").Daemon, r.total("GETATTR").Daemon, r.total("GETXATTR").Daemon,
			r.requests(0, n), vs, r.requests(0, 1), r.requests(1, n), r.hits(), r.wall().Seconds())
	}
}
