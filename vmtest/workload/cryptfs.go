package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/control"
)

// password unlocks the cipher directories the workloads create (with the
// cheap test KDF).
const password = "vmtest workload password"

// cli runs the cryptfs binary under test through the harness.
type cli struct {
	c          *cryptfstest.CLI
	mountFlags []string // extra flags for cryptfs mount (e.g. --debug)
}

// initDir creates a cipher directory.
func (x cli) initDir(dir string) error {
	_, err := x.c.Init(context.Background(), dir)
	return err
}

// mount is a background cryptfs mount.
type mount struct {
	*cryptfstest.Mount
	Tier string
}

// mountTier mounts cipher on mnt with --fast-path=tier in the background
// (the command returns when the mount answers) and checks that the daemon
// runs the tier asked for, not a fallback.
func (x cli) mountTier(cipher, mnt, tier, logFile string) (*mount, error) {
	m, err := x.c.Mount(context.Background(), cryptfstest.MountOptions{Cipher: cipher, Dir: mnt,
		FastPath: tier, LogFile: logFile, Args: x.mountFlags, Background: true})
	if err != nil {
		return nil, err
	}
	return &mount{Mount: m, Tier: tier}, nil
}

// stats returns the daemon's request figures.
func (m *mount) stats() (control.Stats, error) { return m.Stats(context.Background()) }

// unmount unmounts (waiting for the daemon to exit) and fails if the
// daemon logged an error.
func (m *mount) unmount() error {
	if err := m.Unmount(context.Background()); err != nil {
		return err
	}
	return m.logErrors()
}

// logErrors returns an error quoting the daemon's error-level log lines.
func (m *mount) logErrors() error {
	data, err := os.ReadFile(m.LogFile)
	if err != nil {
		return fmt.Errorf("daemon log: %w", err)
	}
	var bad []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"level":"fatal"`) || strings.Contains(l, `"level":"panic"`) {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("... and %d more", len(bad)-10))
		}
		return fmt.Errorf("the %s daemon logged errors (%s):\n%s", m.Tier, m.LogFile, strings.Join(bad, "\n"))
	}
	return nil
}

// fsck runs `cryptfs fsck` on a cipher directory and fails unless it is clean.
func (x cli) fsck(cipher string) error {
	_, err := x.c.Fsck(context.Background(), cipher)
	return err
}

// counts are one opcode's figures from `cryptfs stats`.
type counts struct {
	Daemon uint64 // requests the daemon handled
	Hits   uint64 // answered by the program in the kernel
}

// opCounts picks the figures of the metadata opcodes from st.
func opCounts(st control.Stats) map[string]counts {
	out := make(map[string]counts, len(metaOps))
	for _, op := range st.Ops {
		out[op.Opcode] = counts{Daemon: op.Daemon, Hits: op.FastHits}
	}
	return out
}

// metaOps are the opcodes the fast path serves.
var metaOps = []string{"LOOKUP", "GETATTR", "GETXATTR"}

// sub returns after - before per metadata opcode; counters only grow, so
// a decrease is an error.
func sub(after, before map[string]counts) (map[string]counts, error) {
	out := make(map[string]counts, len(metaOps))
	for _, op := range metaOps {
		a, b := after[op], before[op]
		if a.Daemon < b.Daemon || a.Hits < b.Hits {
			return nil, fmt.Errorf("%s counters went backwards: %+v -> %+v", op, b, a)
		}
		out[op] = counts{Daemon: a.Daemon - b.Daemon, Hits: a.Hits - b.Hits}
	}
	return out, nil
}

// errString is "ok", an errno's name ("ENOENT") or the error's text.
func errString(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return err.Error()
}

// common are the flags every mounting workload has.
type common struct {
	bin        string
	root       string
	keep       bool
	mountFlags string
}

// flags registers the common flags; workHelp describes -work.
func (c *common) flags(f *flag.FlagSet, workHelp string) {
	f.StringVar(&c.bin, "bin", "/bin/cryptfs", "the cryptfs binary")
	f.StringVar(&c.root, "work", "", workHelp)
	f.BoolVar(&c.keep, "keep", false, "keep the work directory")
	f.StringVar(&c.mountFlags, "mount-flags", "", "extra flags for cryptfs mount, space-separated (e.g. --debug)")
}

// workspace is one workload's work directory with an initialised cipher
// directory and an (unmounted) mountpoint inside it.
type workspace struct {
	work, cipher, mnt string
	x                 cli
	keep              bool
}

// start makes the work directory and the cipher directory. Call
// finish(&err) when the workload is done (after unmounting), also when
// it failed.
func (c common) start(name string) (*workspace, error) {
	work, err := workDir(c.root, name)
	if err != nil {
		return nil, err
	}
	w := &workspace{work: work, cipher: filepath.Join(work, "cipher"), mnt: filepath.Join(work, "mnt"),
		x: cli{c: &cryptfstest.CLI{Bin: c.bin, Password: password}, mountFlags: strings.Fields(c.mountFlags)}, keep: c.keep}
	if err := w.x.initDir(w.cipher); err != nil {
		w.finish(&err)
		return nil, err
	}
	return w, nil
}

// finish removes the work directory unless -keep was given; a failure to
// remove it becomes *err when that is nil.
func (w *workspace) finish(err *error) {
	if w.keep {
		return
	}
	if cerr := cleanup(w.work); cerr != nil && *err == nil {
		*err = cerr
	}
}

// workDir makes a fresh directory for one workload under root.
func workDir(root, name string) (string, error) {
	if root == "" {
		root = os.TempDir()
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(root, name+"-")
}

// cleanup removes a work directory, refusing if something is still mounted
// inside it (a failed unmount must stay visible, not be deleted through).
func cleanup(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], filepath.Clean(dir)+"/") {
			return fmt.Errorf("not removing %s: %s is still mounted", dir, f[4])
		}
	}
	return os.RemoveAll(dir)
}
