package main

import (
	"archive/tar"
	"bytes"
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

	"github.com/cryptfs/cryptfs/internal/control"
)

// The untar workload: the requests that reach the daemon when tar
// extracts a source-like tree into the mount and `rm -rf` removes it, per
// tier, with the real tar and rm of the machine (busybox in the guest).
// Issue 17 wants the ebpf tier at most 0.6x the kernel-cache tier's for
// both; -max-ratio makes that a requirement.

type untarConfig struct {
	common
	dirs, files int
	tiers       []string
	maxRatio    float64
}

func runUntar(args []string, stdout io.Writer) error {
	var c untarConfig
	var tiers string
	f := flag.NewFlagSet("untar", flag.ContinueOnError)
	c.flags(f, "where to create the work directory (default $TMPDIR; needs user xattrs)")
	f.IntVar(&c.dirs, "dirs", 50, "directories in the archive (two levels)")
	f.IntVar(&c.files, "files", 20, "files per directory")
	f.StringVar(&tiers, "tiers", "kernel-cache,ebpf", "tiers to measure, comma-separated; the first is the baseline")
	f.Float64Var(&c.maxRatio, "max-ratio", 0, "fail unless every later tier sends at most this fraction of the baseline's requests for untar and for rm -rf (0: report only)")
	if err := f.Parse(args); err != nil {
		return err
	}
	c.tiers = strings.Split(tiers, ",")
	if c.dirs < 1 || c.files < 1 || len(c.tiers) == 0 {
		return errors.New("untar: -dirs and -files must be positive, -tiers non-empty")
	}
	return untarWorkload(c, stdout)
}

// makeArchive writes a tar of dirs directories (in groups of ten under
// top-level ones) with files regular files each, of sizes from 0 to 9 KiB,
// and one symlink per directory: the shape of a source tree.
func makeArchive(path string, dirs, files int) (entries int, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := tar.NewWriter(f)
	mtime := time.Unix(1700000000, 0)
	add := func(h *tar.Header, data []byte) error {
		h.ModTime, h.Uid, h.Gid, h.Format = mtime, 0, 0, tar.FormatPAX
		if err := w.WriteHeader(h); err != nil {
			return err
		}
		entries++
		_, err := w.Write(data)
		return err
	}
	if err := add(&tar.Header{Typeflag: tar.TypeDir, Name: "src/", Mode: 0o755}, nil); err != nil {
		return 0, err
	}
	for d := 0; d < dirs; d++ {
		top := fmt.Sprintf("src/top%02d/", d/10)
		if d%10 == 0 {
			if err := add(&tar.Header{Typeflag: tar.TypeDir, Name: top, Mode: 0o755}, nil); err != nil {
				return 0, err
			}
		}
		dir := fmt.Sprintf("%sdir%03d/", top, d)
		if err := add(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}, nil); err != nil {
			return 0, err
		}
		for i := 0; i < files; i++ {
			size := (d*files + i) * 977 % (9 << 10)
			data := bytes.Repeat([]byte{byte('a' + i%26)}, size)
			mode := int64(0o644)
			if i%7 == 0 {
				mode = 0o755
			}
			if err := add(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sfile%03d.c", dir, i), Mode: mode, Size: int64(size)}, data); err != nil {
				return 0, err
			}
		}
		if err := add(&tar.Header{Typeflag: tar.TypeSymlink, Name: dir + "link", Linkname: "file000.c", Mode: 0o777}, nil); err != nil {
			return 0, err
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return entries, f.Close()
}

// describeTree lists every entry under root: path, type and mode, size,
// mtime, content hash or symlink target. Tiers must agree on it.
func describeTree(root string) (string, error) {
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		// A directory's size is its lower directory's, which depends on
		// the random names of the cipher tree, and busybox tar restores
		// the mtime of regular files only (directories and symlinks
		// keep the extraction time): neither is compared.
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" mtime=%d size=%d sha256=%x", fi.ModTime().Unix(), fi.Size(), sha256.Sum256(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d -> %s", fi.Size(), t)
		}
		lines = append(lines, line)
		return nil
	})
	return strings.Join(lines, "\n"), err
}

// phase is one command's requests: per opcode, as the daemon counted them.
type phase map[string]uint64

func (p phase) total() uint64 {
	var n uint64
	for _, v := range p {
		n += v
	}
	return n
}

// top names the n opcodes with the most requests.
func (p phase) top(n int) string {
	ops := make([]string, 0, len(p))
	for op, v := range p {
		if v > 0 {
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return p[ops[i]] > p[ops[j]] || p[ops[i]] == p[ops[j]] && ops[i] < ops[j] })
	var parts []string
	for i, op := range ops {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", op, p[op]))
	}
	return strings.Join(parts, ", ")
}

func allOps(st control.Stats) (daemon, hits map[string]uint64) {
	daemon, hits = map[string]uint64{}, map[string]uint64{}
	for _, o := range st.Ops {
		daemon[o.Opcode], hits[o.Opcode] = o.Daemon, o.FastHits
	}
	return daemon, hits
}

func diffOps(after, before map[string]uint64) phase {
	p := phase{}
	for op, v := range after {
		p[op] = v - before[op]
	}
	return p
}

type untarResult struct {
	tier              string
	untar, rm         phase
	untarHits, rmHits phase
	untarWall, rmWall time.Duration
}

func untarWorkload(c untarConfig, stdout io.Writer) (err error) {
	ws, err := c.start("untar")
	if err != nil {
		return err
	}
	defer ws.finish(&err)
	archive := filepath.Join(ws.work, "src.tar")
	entries, err := makeArchive(archive, c.dirs, c.files)
	if err != nil {
		return fmt.Errorf("making the archive: %w", err)
	}
	var results []untarResult
	reference := ""
	for _, tier := range c.tiers {
		r, listing, err := untarTier(ws, c, tier, archive)
		if err != nil {
			return fmt.Errorf("tier %s: %w", tier, err)
		}
		if reference == "" {
			reference = listing
		} else if d := firstDiffs(reference, listing, 5); d != "" {
			return fmt.Errorf("tier %s extracted another tree than tier %s:\n%s", tier, c.tiers[0], d)
		}
		fmt.Fprintf(stdout, "untar: %s: untar %d requests (%s) in %.1fs, rm -rf %d requests (%s) in %.1fs, fast-path hits %d + %d\n",
			tier, r.untar.total(), r.untar.top(20), r.untarWall.Seconds(), r.rm.total(), r.rm.top(20), r.rmWall.Seconds(), r.untarHits.total(), r.rmHits.total())
		results = append(results, r)
	}
	fmt.Fprintln(stdout, "=== untar table")
	fmt.Fprintf(stdout, "tar -xf of %d entries (%d directories, %d files, %d symlinks), then rm -rf of the tree: requests that reached the daemon (its own counters), results identical in every tier.\n\n",
		entries, c.dirs+c.dirs/10+1, c.dirs*c.files, c.dirs)
	fmt.Fprintf(stdout, "| tier | untar requests | vs %s | top opcodes | rm -rf requests | vs %s | top opcodes | fast-path hits |\n", c.tiers[0], c.tiers[0])
	fmt.Fprintf(stdout, "|---|---:|---:|---|---:|---:|---|---:|\n")
	base := results[0]
	var errs []error
	for _, r := range results {
		ru := float64(r.untar.total()) / float64(max(base.untar.total(), 1))
		rr := float64(r.rm.total()) / float64(max(base.rm.total(), 1))
		fmt.Fprintf(stdout, "| %s | %d | %.2fx | %s | %d | %.2fx | %s | %d |\n", r.tier, r.untar.total(), ru, r.untar.top(4), r.rm.total(), rr, r.rm.top(4), r.untarHits.total()+r.rmHits.total())
		if r.tier != base.tier && c.maxRatio > 0 && (ru > c.maxRatio || rr > c.maxRatio) {
			errs = append(errs, fmt.Errorf("%s: untar %.2fx and rm -rf %.2fx the %s tier's requests, want at most %.2fx", r.tier, ru, rr, base.tier, c.maxRatio))
		}
	}
	fmt.Fprintln(stdout, "=== end")
	return errors.Join(errs...)
}

// untarTier extracts the archive into a fresh mount of one tier and
// removes it again, counting the daemon's requests around each.
func untarTier(ws *workspace, c untarConfig, tier, archive string) (r untarResult, listing string, err error) {
	r.tier = tier
	cipher := filepath.Join(ws.work, "cipher-"+tier)
	if err := ws.x.initDir(cipher); err != nil {
		return r, "", err
	}
	m, err := ws.x.mountTier(cipher, ws.mnt, tier, filepath.Join(ws.work, "untar-"+tier+".log"))
	if err != nil {
		return r, "", err
	}
	defer func() {
		if uerr := m.unmount(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	snapshot := func() (map[string]uint64, map[string]uint64, error) {
		st, err := m.stats()
		if err != nil {
			return nil, nil, err
		}
		d, h := allOps(st)
		return d, h, nil
	}
	d0, h0, err := snapshot()
	if err != nil {
		return r, "", err
	}
	start := time.Now()
	if out, err := exec.Command("tar", "-xf", archive, "-C", m.Dir).CombinedOutput(); err != nil {
		return r, "", fmt.Errorf("tar -xf: %v: %s", err, out)
	}
	r.untarWall = time.Since(start)
	d1, h1, err := snapshot()
	if err != nil {
		return r, "", err
	}
	r.untar, r.untarHits = diffOps(d1, d0), diffOps(h1, h0)
	if listing, err = describeTree(filepath.Join(m.Dir, "src")); err != nil {
		return r, "", err
	}
	d2, h2, err := snapshot()
	if err != nil {
		return r, "", err
	}
	start = time.Now()
	if out, err := exec.Command("rm", "-rf", filepath.Join(m.Dir, "src")).CombinedOutput(); err != nil {
		return r, "", fmt.Errorf("rm -rf: %v: %s", err, out)
	}
	r.rmWall = time.Since(start)
	d3, h3, err := snapshot()
	if err != nil {
		return r, "", err
	}
	r.rm, r.rmHits = diffOps(d3, d2), diffOps(h3, h2)
	if names, err := readDirNames(m.Dir); err != nil || len(names) != 0 {
		return r, "", fmt.Errorf("after rm -rf the mount holds %q (%v)", names, err)
	}
	return r, listing, nil
}
