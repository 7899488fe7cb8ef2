package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// options are the command-line flags.
type options struct {
	quick     bool
	cryptfs   string
	out       string
	docs      string
	workRoot  string
	cache     string
	systems   string
	workloads string
	profile   string
	lower     string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "helper" {
		os.Exit(runHelper(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		os.Exit(runCompare(os.Args[2:], os.Stdout, os.Stderr))
	}
	var o options
	flag.BoolVar(&o.quick, "quick", false, "quick mode: smaller tree and files, one repetition (under 3 minutes)")
	flag.StringVar(&o.cryptfs, "cryptfs", "bin/cryptfs", "the cryptfs binary to measure")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the Markdown table, PNG chart, JSON and profiles")
	flag.StringVar(&o.docs, "docs", "", "also put the table into this Markdown file, between its cryptfs-bench markers")
	flag.StringVar(&o.workRoot, "work", "/var/tmp", "where the scratch directory goes")
	flag.StringVar(&o.lower, "lower", "loop", "lower file system: loop (a fresh ext4 on a loop device in the scratch directory) or dir (the -work directory's own file system)")
	flag.StringVar(&o.cache, "cache", "/var/cache/cryptfs-bench", "where the decompressed source tree is cached")
	flag.StringVar(&o.systems, "systems", "native,gocryptfs,cryptfs-off,cryptfs-kernel-cache,cryptfs-kernel-cache-poll,cryptfs-kernel-cache-uring,cryptfs-ebpf,cryptfs-shared",
		"systems to measure (cryptfs-TIER over /dev/fuse, cryptfs-TIER-poll over /dev/fuse with --poll=adaptive, cryptfs-TIER-uring over FUSE over io_uring, cryptfs-shared: kernel-cache with --shared-storage)")
	flag.StringVar(&o.workloads, "workloads", "", "workloads to run (default all; comma-separated ids)")
	flag.StringVar(&o.profile, "profile", "auto", "profile the cryptfs daemons with perf in an extra repetition: on, off, or auto (on in full mode)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: cryptfs-bench [flags]\n       cryptfs-bench compare [-ignore OP,OP] OLD.json NEW.json\n\nMeasures native, gocryptfs and cryptfs side by side; see bench/doc.go.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	lg := log.New(os.Stderr, "bench: ", log.Ltime)
	if err := run(o, lg); err != nil {
		lg.Printf("FAILED: %v", err)
		os.Exit(1)
	}
}

// run is the whole benchmark: setup, the workloads, the report, and the
// cleanup of every mount and scratch tree whatever happens.
func run(o options, lg *log.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: the benchmark mounts file systems, drops the page cache and reads the daemons' /proc entries (sudo make bench)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// A second signal kills the benchmark at once (the next run cleans up).
	context.AfterFunc(ctx, stop)
	// Child tools and ls sort and format the same way everywhere.
	os.Setenv("LC_ALL", "C")

	p := fullParams()
	if o.quick {
		p = quickParams()
	}
	profile := o.profile == "on" || o.profile == "auto" && !o.quick
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cryptfsBin, err := filepath.Abs(o.cryptfs)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cryptfsBin); err != nil {
		return fmt.Errorf("cryptfs binary: %w (run make build)", err)
	}
	wanted := strings.Split(o.systems, ",")
	all := workloads(p)
	if o.workloads != "" {
		ids := strings.Split(o.workloads, ",")
		all = slices.DeleteFunc(all, func(w workload) bool { return !slices.Contains(ids, w.ID) })
		if len(all) == 0 {
			return fmt.Errorf("no workload among %q", o.workloads)
		}
	}

	if o.docs != "" {
		if err := checkDocs(o.docs); err != nil {
			return err
		}
	}
	tools := []tool{{"gocryptfs", "gocryptfs"}, {"fio", "fio"}, {"hyperfine", "hyperfine"}, {"xz", "xz-utils"},
		{"fusermount3", "fuse3"}, {"tar", "tar"}}
	if profile {
		tools = append(tools, tool{"perf", "linux-perf"})
	}
	if err := ensureTools(ctx, tools, lg); err != nil {
		return err
	}
	lock, err := lockCache(o.cache)
	if err != nil {
		return err
	}
	defer lock.Close()
	cleanStale(o.workRoot, lg)
	tree, err := prepareTree(ctx, o.cache, o.quick, lg)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(o.workRoot, workPrefix)
	if err != nil {
		return err
	}
	defer removeWork(work, lg)
	need := lowerSize(p, tree, len(wanted)) / 2
	if err := checkSpace(o.workRoot, need); err != nil {
		return err
	}
	lower, err := setupLower(ctx, work, o.lower, lowerSize(p, tree, len(wanted)))
	if err != nil {
		return err
	}
	defer lower.teardown(lg)

	b := &bench{p: p, self: self, work: work, tree: tree, profile: profile, lg: lg}
	name := "bench"
	if o.quick {
		name = "bench-quick"
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	b.profDir = filepath.Join(o.out, "profiles", p.Mode)
	if profile {
		os.RemoveAll(b.profDir) // profiles of an earlier run of this mode
	}

	res := &results{Mode: p.Mode, Started: time.Now(), Params: p, Tree: tree, Host: hostInfo{LoadStart: loadAverage()}}
	res.Host.fill(cryptfsBin, o.workRoot)
	if lower.img != "" {
		res.Host.LowerFS = "ext4 (mkfs defaults, journal) on " + lower.loop + " with direct I/O, backed by a sparse file on " + res.Host.LowerFS
	}
	if profile {
		res.Host.ProfiledWith = firstLine(exec.Command("perf", "version").Output())
	}

	pass := filepath.Join(work, "password")
	if err := os.WriteFile(pass, []byte("cryptfs-bench password, not a secret\n"), 0o600); err != nil {
		return err
	}
	if slices.ContainsFunc(wanted, func(id string) bool { return strings.HasSuffix(id, "-uring") }) {
		restore := enableURing(lg)
		defer restore()
	}
	var systems []system
	for _, id := range wanted {
		var s system
		switch id {
		case "native":
			s = &native{dir: filepath.Join(lower.dir, "native")}
		case "gocryptfs":
			s = newGocryptfs(lower.dir, pass)
		case "cryptfs-off", "cryptfs-kernel-cache", "cryptfs-ebpf",
			"cryptfs-off-uring", "cryptfs-kernel-cache-uring", "cryptfs-ebpf-uring",
			"cryptfs-off-poll", "cryptfs-kernel-cache-poll", "cryptfs-ebpf-poll":
			s = newCryptfs(cryptfsBin, id, lower.dir, pass)
		case "cryptfs-shared":
			// --shared-storage (kernel-cache with 1 s validity): the cost of
			// the mode, next to cryptfs-kernel-cache (in the default list, so make
			// bench reports it).
			c := newCryptfs(cryptfsBin, "cryptfs-kernel-cache", lower.dir, pass)
			dir := filepath.Join(lower.dir, id)
			c.id, c.args = id, []string{"--shared-storage"}
			c.cipher, c.mnt, c.logPath = filepath.Join(dir, "cipher"), filepath.Join(dir, "mnt"), filepath.Join(dir, "daemon.log")
			s = c
		default:
			return fmt.Errorf("unknown system %q", id)
		}
		info := systemInfo{ID: id, Available: true}
		if err := s.Setup(ctx); err != nil {
			s.Teardown(context.Background())
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !strings.HasPrefix(id, "cryptfs-ebpf") && !strings.HasSuffix(id, "-uring") {
				return fmt.Errorf("set up %s: %w", id, err)
			}
			info.Available, info.Reason = false, firstLineOf(err.Error())
			if ce := (*cmdError)(nil); errors.As(err, &ce) && ce.stderr != "" {
				info.Reason = firstLineOf(ce.stderr)
			}
			if ee := (*cryptfstest.ExitError)(nil); errors.As(err, &ee) && len(bytes.TrimSpace(ee.Result.Stderr)) > 0 {
				info.Reason = firstLineOf(string(ee.Result.Stderr))
			}
			lg.Printf("%s not available: %v", id, err)
			res.Systems = append(res.Systems, info)
			continue
		}
		// Unmount on any exit; the mount stays usable between workloads.
		defer func(s system) {
			tctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if err := s.Teardown(tctx); err != nil {
				lg.Printf("teardown %s: %v", s.ID(), err)
			}
		}(s)
		res.Systems = append(res.Systems, info)
		systems = append(systems, s)
		lg.Printf("%s ready at %s", id, s.Root())
	}

	// Workload-major and interleaved: every system runs a workload before
	// the next workload starts, in an order rotated per workload, so a
	// slow drift of the machine's load spreads over all systems.
	failed := map[string]bool{}
	for wi, w := range all {
		wr := workloadResult{ID: w.ID, Title: w.Title, Unit: w.Unit, Cells: map[string]*cell{}}
		for k := range systems {
			s := systems[(wi+k)%len(systems)]
			if failed[s.ID()] {
				continue
			}
			c := b.runCell(ctx, w, s)
			wr.Cells[s.ID()] = &c
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			if c.Error != "" {
				// Later workloads depend on this one's state: stop
				// measuring this system, keep the others.
				lg.Printf("%s failed, skipping it from now on: %s", s.ID(), c.Error)
				failed[s.ID()] = true
				s.Teardown(ctx)
			}
		}
		res.Workloads = append(res.Workloads, wr)
	}
	res.Finished = time.Now()
	res.Host.LoadEnd = loadAverage()
	res.fillRatios()
	res.evaluateTargets()

	md := res.markdown()
	files := map[string]func(string) error{
		name + ".json": res.writeJSON,
		name + ".png":  res.writeChart,
		name + ".md": func(path string) error {
			return os.WriteFile(path, []byte("# cryptfs-bench results ("+p.Mode+")\n\n![ratios to native]("+name+".png)\n\n"+md), 0o644)
		},
	}
	if profile {
		files[name+"-profiles.md"] = func(path string) error {
			return os.WriteFile(path, []byte(res.profilesMarkdown(o.out)), 0o644)
		}
	}
	for f, write := range files {
		if err := write(filepath.Join(o.out, f)); err != nil {
			return fmt.Errorf("write %s: %w", f, err)
		}
	}
	if o.docs != "" {
		if err := updateDocs(o.docs, md); err != nil {
			return err
		}
	}
	fmt.Println(md)
	lg.Printf("results in %s/%s.{md,png,json}", o.out, name)
	for _, s := range res.Systems {
		if failed[s.ID] {
			return fmt.Errorf("%s failed (see its cells in %s.json)", s.ID, name)
		}
	}
	return nil
}

// fill describes the machine, cryptfs's source revision and gocryptfs.
func (h *hostInfo) fill(cryptfsBin, workRoot string) {
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	h.CPUs = runtime.NumCPU()
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		h.MemGiB = float64(si.Totalram) * float64(si.Unit) / (1 << 30)
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	h.Cryptfs = firstLine(exec.Command("git", "-C", filepath.Dir(filepath.Dir(cryptfsBin)), "describe", "--always", "--dirty").Output())
	h.Gocryptfs = firstLine(exec.Command("gocryptfs", "-version").Output())
	var st unix.Statfs_t
	if unix.Statfs(workRoot, &st) == nil {
		switch st.Type {
		case unix.EXT4_SUPER_MAGIC:
			h.LowerFS = "ext4"
		case unix.TMPFS_MAGIC:
			h.LowerFS = "tmpfs"
		case unix.XFS_SUPER_MAGIC:
			h.LowerFS = "xfs"
		case unix.BTRFS_SUPER_MAGIC:
			h.LowerFS = "btrfs"
		default:
			h.LowerFS = fmt.Sprintf("type %#x", st.Type)
		}
		h.LowerFS += " (" + workRoot + ")"
	}
}

// firstLine returns the first line of a command's output, "" on error.
func firstLine(out []byte, err error) string {
	if err != nil {
		return ""
	}
	return firstLineOf(string(out))
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
