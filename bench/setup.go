package main

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// tool is a command the benchmark runs and the Debian package that has it.
type tool struct{ cmd, pkg string }

// ensureTools installs the Debian packages of the missing commands.
func ensureTools(ctx context.Context, tools []tool, lg *log.Logger) error {
	var pkgs []string
	for _, t := range tools {
		if _, err := exec.LookPath(t.cmd); err != nil {
			pkgs = append(pkgs, t.pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	return aptInstall(ctx, pkgs, lg)
}

// aptInstall installs Debian packages, updating the package lists once if
// the first attempt fails.
func aptInstall(ctx context.Context, pkgs []string, lg *log.Logger) error {
	lg.Printf("installing %s from Debian", strings.Join(pkgs, " "))
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install %s: %w: %s", strings.Join(pkgs, " "), err, tail(string(out), 600))
		}
		return nil
	}
	if err := install(); err == nil {
		return nil
	}
	if _, err := runCmd(ctx, "", "apt-get", "update", "-q"); err != nil {
		return err
	}
	return install()
}

// treeInfo describes the source tree the metadata workloads use: a tar
// archive and the lists of what it holds.
type treeInfo struct {
	Name     string `json:"name"`
	Tar      string `json:"tar"`
	Top      string `json:"top"`     // its single top-level directory
	Entries  int    `json:"entries"` // files, directories and symlinks below Top, Top included
	Files    int    `json:"files"`   // regular files
	Bytes    int64  `json:"bytes"`   // of the regular files
	TarBytes int64  `json:"tar_bytes"`
	AllList  string `json:"-"` // NUL-separated paths of every entry, relative to the extraction root
	FileList string `json:"-"` // NUL-separated paths of the regular files
}

// The source tree: Debian's linux-source-6.1 tarball, decompressed once.
const (
	sourcePkg = "linux-source-6.1"
	sourceXZ  = "/usr/src/linux-source-6.1.tar.xz"
	sourceTar = "linux-source-6.1.tar"
)

// quickDirs are the top-level directories of the kernel tree that make up
// the quick mode's smaller tree (about 3,500 entries, 66 MB).
var quickDirs = []string{"block", "fs", "init", "ipc", "kernel", "lib", "mm"}

// prepareTree returns the tree for the mode, building and caching what is
// missing in cache: the decompressed kernel tarball, the quick subset, and
// the path lists.
func prepareTree(ctx context.Context, cache string, quick bool, lg *log.Logger) (treeInfo, error) {
	full := filepath.Join(cache, sourceTar)
	if _, err := os.Stat(full); err != nil {
		if _, err := os.Stat(sourceXZ); err != nil {
			if err := aptInstall(ctx, []string{sourcePkg}, lg); err != nil {
				return treeInfo{}, err
			}
		}
		lg.Printf("decompressing %s to %s (once)", sourceXZ, full)
		if err := decompress(ctx, sourceXZ, full); err != nil {
			return treeInfo{}, err
		}
	}
	tarPath, name := full, "linux-source-6.1 (full)"
	if quick {
		tarPath, name = filepath.Join(cache, "quick-tree.tar"), "linux-source-6.1: "+strings.Join(quickDirs, ", ")
		if _, err := os.Stat(tarPath); err != nil {
			lg.Printf("building the quick tree %s (once)", tarPath)
			if err := subsetTar(full, tarPath, quickDirs); err != nil {
				return treeInfo{}, err
			}
		}
	}
	t, err := scanTar(tarPath)
	if err != nil {
		return treeInfo{}, err
	}
	t.Name = name
	return t, nil
}

// decompress runs xz -dc src into dst, atomically.
func decompress(ctx context.Context, src, dst string) error {
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, "xz", "-dc", "-T0", src)
	cmd.Stdout = out
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("xz -dc %s: %w: %s", src, err, stderr.String())
	}
	return os.Rename(tmp, dst)
}

// subsetTar copies the entries of src below TOP/dir for each dir (and TOP
// itself) to dst, atomically.
func subsetTar(src, dst string, dirs []string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	bw := bufio.NewWriterSize(out, 1<<20)
	tr, tw := tar.NewReader(bufio.NewReaderSize(in, 1<<20)), tar.NewWriter(bw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.Close()
			return fmt.Errorf("read %s: %w", src, err)
		}
		if !keepEntry(h.Name, dirs) {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			out.Close()
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			out.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		out.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// keepEntry reports whether a tar entry name ("top/fs/x.c") is the top
// directory or lies below top/dir for one of dirs.
func keepEntry(name string, dirs []string) bool {
	name = strings.TrimSuffix(name, "/")
	top, rest, ok := strings.Cut(name, "/")
	if !ok {
		return top != "" // the top directory itself
	}
	for _, d := range dirs {
		if rest == d || strings.HasPrefix(rest, d+"/") {
			return true
		}
	}
	return false
}

// scanTar reads a tar's headers and writes the path lists beside it
// (TAR.all, TAR.files), unless they are newer than the tar.
func scanTar(tarPath string) (treeInfo, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return treeInfo{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return treeInfo{}, err
	}
	t := treeInfo{Tar: tarPath, TarBytes: st.Size(), AllList: tarPath + ".all", FileList: tarPath + ".files"}
	var all, files strings.Builder
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return treeInfo{}, fmt.Errorf("read %s: %w", tarPath, err)
		}
		name := path.Clean(h.Name)
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		top, _, _ := strings.Cut(name, "/")
		if t.Top == "" {
			t.Top = top
		} else if top != t.Top {
			return treeInfo{}, fmt.Errorf("%s has more than one top-level entry (%s, %s)", tarPath, t.Top, top)
		}
		t.Entries++
		all.WriteString(name + "\x00")
		if h.Typeflag == tar.TypeReg {
			t.Files++
			t.Bytes += h.Size
			files.WriteString(name + "\x00")
		}
	}
	if t.Entries == 0 {
		return treeInfo{}, fmt.Errorf("%s is empty", tarPath)
	}
	for _, l := range []struct{ path, data string }{{t.AllList, all.String()}, {t.FileList, files.String()}} {
		if err := os.WriteFile(l.path, []byte(l.data), 0o644); err != nil {
			return treeInfo{}, err
		}
	}
	return t, nil
}

// workPrefix names the benchmark's scratch directories under the work root.
const workPrefix = "cryptfs-bench."

// lockCache takes the benchmark's lock (one run at a time on a machine);
// the returned file holds it until closed.
func lockCache(cache string) (*os.File, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another cryptfs-bench is running (lock %s held): wait for it", f.Name())
	}
	return f, nil
}

// mountsUnder returns the mountpoints at or below dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	return mountsUnderIn(string(data), dir)
}

// mountsUnderIn is mountsUnder on the text of a mountinfo file: deepest
// first, and among equals the latest mounted first (the order in which
// they can be unmounted).
func mountsUnderIn(mountinfo, dir string) []string {
	var out []string
	for line := range strings.SplitSeq(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeOctal(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out
}

// unescapeOctal undoes mountinfo's \NNN escapes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctalDigits(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctalDigits(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := range 3 {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

// cleanStale removes what an earlier, killed run left behind under the
// work root: detaches its mounts (aborting their FUSE connections) and
// removes its scratch directories. Call it with the lock held.
func cleanStale(workRoot string, lg *log.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(workRoot, workPrefix+"*"))
	for _, d := range dirs {
		removeWork(d, lg)
	}
}

// removeWork detaches every mount below dir, then removes it. It refuses
// to remove a tree that still has a mount in it.
func removeWork(dir string, lg *log.Logger) {
	for _, mp := range mountsUnder(dir) {
		lg.Printf("detaching leftover mount %s", mp)
		if dev, err := deviceOfMount(mp); err == nil {
			abortConnection(dev)
		}
		unix.Unmount(mp, unix.MNT_DETACH)
	}
	if left := mountsUnder(dir); len(left) > 0 {
		lg.Printf("not removing %s: still mounted: %s", dir, strings.Join(left, ", "))
		return
	}
	detachLoops(filepath.Join(dir, "lower.img"), lg)
	start := time.Now()
	if err := os.RemoveAll(dir); err != nil {
		lg.Printf("remove %s: %v", dir, err)
	} else if d := time.Since(start); d > 5*time.Second {
		lg.Printf("removed %s in %s", dir, d.Round(time.Second))
	}
}

// deviceOfMount returns major<<20|minor of the mount at mp.
func deviceOfMount(mp string) (uint32, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || unescapeOctal(f[4]) != mp {
			continue
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(f[2], "%d:%d", &major, &minor); err != nil {
			return 0, err
		}
		return major<<20 | minor, nil
	}
	return 0, fmt.Errorf("%s is not mounted", mp)
}

// uringParam makes the kernel offer FUSE over io_uring to new mounts
// (Linux 6.14+ with CONFIG_FUSE_IO_URING; absent otherwise).
const uringParam = "/sys/module/fuse/parameters/enable_uring"

// enableURing sets the fuse module's enable_uring for the run, so that the
// -uring systems can mount, and returns what puts the old value back (a
// connection on io_uring keeps it when the parameter is turned off). Where
// the kernel has no FUSE over io_uring it does nothing: those systems'
// mounts fail and they are reported as not available, with the reason.
func enableURing(lg *log.Logger) (restore func()) {
	old, err := os.ReadFile(uringParam)
	if err != nil || string(old) == "Y\n" {
		return func() {}
	}
	if err := os.WriteFile(uringParam, []byte("Y"), 0); err != nil {
		lg.Printf("cannot enable FUSE over io_uring: %v", err)
		return func() {}
	}
	lg.Printf("%s: Y for the run (was %s)", uringParam, strings.TrimSpace(string(old)))
	return func() {
		if err := os.WriteFile(uringParam, old, 0); err != nil {
			lg.Printf("restoring %s: %v", uringParam, err)
		}
	}
}
