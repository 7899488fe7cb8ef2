package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/reqstats"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// system is one file system under test: the native lower directory,
// gocryptfs, or cryptfs in one fast-path tier.
type system interface {
	// ID names the system in results ("native", "gocryptfs",
	// "cryptfs-off", "cryptfs-kernel-cache", "cryptfs-ebpf", and
	// "cryptfs-kernel-cache-uring" over FUSE over io_uring,
	// "cryptfs-kernel-cache-poll" over /dev/fuse with adaptive polling).
	ID() string
	// Root is the directory the workloads use.
	Root() string
	// Setup creates the system (init) and mounts it.
	Setup(ctx context.Context) error
	// Remount unmounts and mounts again, so the kernel's caches of the
	// mount are empty and a new daemon serves it; with cold it also
	// drops every cache of the machine in between.
	Remount(ctx context.Context, cold bool) error
	// Teardown unmounts, forcing it if the daemon does not answer. It is
	// idempotent and safe after a failed Setup.
	Teardown(ctx context.Context) error
	// Abort cuts the FUSE connection so processes stuck on the mount
	// return (they get ENOTCONN); the system is unusable afterwards.
	Abort()
	// PID is the daemon's process id, 0 when there is none.
	PID() int
	// Upcalls returns the requests that reached the daemon since the
	// mount, per opcode; nil when not available (native).
	Upcalls(ctx context.Context) (upcalls, error)
}

// opCount are the figures of one FUSE opcode.
type opCount struct {
	Upcalls  uint64 `json:"upcalls"`                  // requests sent to the daemon
	FastHits uint64 `json:"fast_path_hits,omitempty"` // answered by the eBPF fast path
}

// upcalls are request figures per opcode name ("LOOKUP").
type upcalls map[string]opCount

// sub returns u - prev, dropping opcodes without requests.
func (u upcalls) sub(prev upcalls) upcalls {
	if u == nil {
		return nil
	}
	d := upcalls{}
	for op, c := range u {
		p := prev[op]
		c.Upcalls -= min(c.Upcalls, p.Upcalls)
		c.FastHits -= min(c.FastHits, p.FastHits)
		if c != (opCount{}) {
			d[op] = c
		}
	}
	return d
}

// div returns u with every figure divided by n (rounded), for workloads
// that ran n times between two snapshots.
func (u upcalls) div(n int) upcalls {
	if u == nil || n <= 1 {
		return u
	}
	d := upcalls{}
	for op, c := range u {
		c.Upcalls = (c.Upcalls + uint64(n)/2) / uint64(n)
		c.FastHits = (c.FastHits + uint64(n)/2) / uint64(n)
		if c != (opCount{}) {
			d[op] = c
		}
	}
	return d
}

// total returns the upcalls of all opcodes.
func (u upcalls) total() uint64 {
	var n uint64
	for _, c := range u {
		n += c.Upcalls
	}
	return n
}

// runCmd runs a command and returns its standard output; a failure
// carries the end of its standard error.
func runCmd(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &cmdError{cmd: name + " " + strings.Join(args, " "), err: err, stderr: tail(stderr.String(), 600)}
	}
	return stdout.Bytes(), nil
}

// cmdError is a failed command with the end of its standard error.
type cmdError struct {
	cmd    string
	err    error
	stderr string
}

func (e *cmdError) Error() string { return fmt.Sprintf("%s: %v: %s", e.cmd, e.err, e.stderr) }
func (e *cmdError) Unwrap() error { return e.err }

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// native is the lower file system itself.
type native struct{ dir string }

func (n *native) ID() string                               { return "native" }
func (n *native) Root() string                             { return n.dir }
func (n *native) Setup(context.Context) error              { return os.MkdirAll(n.dir, 0o755) }
func (n *native) Teardown(context.Context) error           { return nil }
func (n *native) Abort()                                   {}
func (n *native) PID() int                                 { return 0 }
func (n *native) Upcalls(context.Context) (upcalls, error) { return nil, nil }
func (n *native) Remount(_ context.Context, cold bool) error {
	if cold {
		return dropCaches()
	}
	return nil
}

// fuseMount is what the FUSE systems share: a cipher directory, a
// mountpoint and a daemon.
type fuseMount struct {
	id      string
	cipher  string
	mnt     string
	pass    string
	logPath string
	pid     int
	dev     uint32
	mounted bool
}

func newFuseMount(id, work, pass string) fuseMount {
	dir := filepath.Join(work, id)
	return fuseMount{id: id, cipher: filepath.Join(dir, "cipher"), mnt: filepath.Join(dir, "mnt"),
		pass: pass, logPath: filepath.Join(dir, "daemon.log")}
}

func (m *fuseMount) ID() string   { return m.id }
func (m *fuseMount) Root() string { return m.mnt }
func (m *fuseMount) PID() int     { return m.pid }

func (m *fuseMount) mkdirs() error {
	for _, d := range []string{m.cipher, m.mnt} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// logTail returns the end of the daemon's log, for error messages.
func (m *fuseMount) logTail() string {
	data, _ := os.ReadFile(m.logPath)
	return tail(string(data), 800)
}

// Abort cuts the connection through fusectl, then detaches the mount and
// kills the daemon.
func (m *fuseMount) Abort() {
	if m.dev != 0 {
		abortConnection(m.dev)
	}
	unix.Unmount(m.mnt, unix.MNT_DETACH)
	if m.pid > 0 {
		syscall.Kill(m.pid, syscall.SIGKILL)
	}
	m.mounted = false
}

// waitGone waits until process pid has exited (it is not our child).
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		// A zombie of another parent still answers kill 0; its state
		// in /proc says Z.
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || isZombie(data) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// isZombie reports whether a /proc/PID/stat line is of a zombie.
func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// abortConnection writes to the fusectl abort file of connection dev,
// mounting fusectl when needed.
func abortConnection(dev uint32) {
	const ctl = "/sys/fs/fuse/connections"
	unix.Mount("none", ctl, "fusectl", 0, "") // EBUSY when mounted already
	os.WriteFile(filepath.Join(ctl, fmt.Sprint(dev), "abort"), []byte("1"), 0)
}

// cryptfsSys is cryptfs in one fast-path tier over one transport, driven
// through the harness (fstest/cryptfstest) as a background mount.
type cryptfsSys struct {
	id, cipher, mnt, logPath string
	tier                     string
	args                     []string // extra mount flags (cryptfs-shared)
	transport                string   // "dev" or "uring": --transport, checked by the harness
	poll                     string   // "off" or "adaptive" (over /dev/fuse): --poll, checked by the harness
	cli                      *cryptfstest.CLI

	mu sync.Mutex // guards m: Abort runs on the repetition's watchdog
	m  *cryptfstest.Mount
}

// newCryptfs returns system id: cryptfs-TIER (over /dev/fuse, no
// polling), cryptfs-TIER-poll (over /dev/fuse with --poll=adaptive) or
// cryptfs-TIER-uring (FUSE over io_uring).
func newCryptfs(bin, id, work, pass string) *cryptfsSys {
	tier, transport, poll := strings.TrimPrefix(id, "cryptfs-"), "dev", "off"
	if t, ok := strings.CutSuffix(tier, "-uring"); ok {
		tier, transport, poll = t, "uring", ""
	} else if t, ok := strings.CutSuffix(tier, "-poll"); ok {
		tier, poll = t, "adaptive"
	}
	dir := filepath.Join(work, id)
	return &cryptfsSys{id: id, cipher: filepath.Join(dir, "cipher"), mnt: filepath.Join(dir, "mnt"),
		logPath: filepath.Join(dir, "daemon.log"), tier: tier, transport: transport, poll: poll,
		// The real KDF, as a user would have it; the password from a file.
		cli: &cryptfstest.CLI{Bin: bin, Passfile: pass, StrongKDF: true}}
}

func (c *cryptfsSys) ID() string   { return c.id }
func (c *cryptfsSys) Root() string { return c.mnt }

// mount returns the current mount, nil when there is none.
func (c *cryptfsSys) mount() *cryptfstest.Mount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m
}

// setMount replaces the current mount and returns the one it replaced.
func (c *cryptfsSys) setMount(m *cryptfstest.Mount) *cryptfstest.Mount {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m
	c.m = m
	return old
}

func (c *cryptfsSys) PID() int {
	if m := c.mount(); m != nil {
		return m.PID()
	}
	return 0
}

func (c *cryptfsSys) Setup(ctx context.Context) error {
	for _, d := range []string{c.cipher, c.mnt} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if _, err := c.cli.Init(ctx, c.cipher); err != nil {
		return err
	}
	return c.start(ctx)
}

// start mounts in the background with --fast-path=tier,
// --transport=transport and --poll=poll (the harness fails unless the
// daemon runs them).
func (c *cryptfsSys) start(ctx context.Context) error {
	m, err := c.cli.Mount(ctx, cryptfstest.MountOptions{Cipher: c.cipher, Dir: c.mnt,
		FastPath: c.tier, Transport: c.transport, Poll: c.poll, LogFile: c.logPath, Background: true, Args: c.args})
	if err != nil {
		return err
	}
	c.setMount(m)
	return nil
}

// unmount unmounts with cryptfs unmount and waits for the daemon; if that
// fails, it aborts the mount.
func (c *cryptfsSys) unmount(ctx context.Context) error {
	m := c.mount()
	if m == nil {
		return nil
	}
	uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := m.Unmount(uctx)
	c.setMount(nil)
	if err != nil {
		m.Abort()
		return fmt.Errorf("unmount %s (forced): %w; log: %s", c.mnt, err, tail(m.Log(), 800))
	}
	return nil
}

// Abort cuts the connection through fusectl, kills the daemon and
// detaches the mount.
func (c *cryptfsSys) Abort() {
	if m := c.setMount(nil); m != nil {
		m.Abort()
	}
}

func (c *cryptfsSys) Remount(ctx context.Context, cold bool) error {
	if err := c.unmount(ctx); err != nil {
		return err
	}
	if cold {
		if err := dropCaches(); err != nil {
			return err
		}
	}
	return c.start(ctx)
}

func (c *cryptfsSys) Teardown(ctx context.Context) error { return c.unmount(ctx) }

func (c *cryptfsSys) Upcalls(ctx context.Context) (upcalls, error) {
	m := c.mount()
	if m == nil {
		return nil, fmt.Errorf("%s is not mounted", c.mnt)
	}
	st, err := m.Stats(ctx)
	if err != nil {
		return nil, err
	}
	u := upcalls{}
	for _, o := range st.Ops {
		u[o.Opcode] = opCount{Upcalls: o.Upcalls, FastHits: o.FastHits}
	}
	return u, nil
}

// gocryptfsSys is gocryptfs with its default settings, counted by the
// reqstats collector (the same tracepoints cryptfs stats reads).
type gocryptfsSys struct {
	fuseMount
	exited  chan struct{}
	coll    *reqstats.Collector
	collErr error
}

func newGocryptfs(work, pass string) *gocryptfsSys {
	return &gocryptfsSys{fuseMount: newFuseMount("gocryptfs", work, pass)}
}

func (g *gocryptfsSys) Setup(ctx context.Context) error {
	if err := g.mkdirs(); err != nil {
		return err
	}
	if _, err := runCmd(ctx, "", "gocryptfs", "-init", "-quiet", "-passfile", g.pass, g.cipher); err != nil {
		return err
	}
	return g.mount(ctx)
}

// mount runs gocryptfs in the foreground as our child (in its own process
// group, so a Ctrl-C reaches the benchmark first, which then unmounts in
// order) and waits until the mount appears.
func (g *gocryptfsSys) mount(ctx context.Context) error {
	logf, err := os.OpenFile(g.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("gocryptfs", "-fg", "-quiet", "-passfile", g.pass, g.cipher, g.mnt)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start gocryptfs: %w", err)
	}
	g.pid = cmd.Process.Pid
	g.exited = make(chan struct{})
	go func(exited chan struct{}) { cmd.Wait(); close(exited) }(g.exited)
	deadline := time.Now().Add(time.Minute)
	for {
		if dev, err := reqstats.DeviceOf(g.mnt); err == nil {
			g.dev, g.mounted = dev, true
			break
		}
		select {
		case <-g.exited:
			g.pid = 0
			return fmt.Errorf("gocryptfs exited before mounting: %s", g.logTail())
		case <-ctx.Done():
			g.Abort()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.Abort()
			return fmt.Errorf("gocryptfs did not mount within a minute: %s", g.logTail())
		}
	}
	g.coll, g.collErr = reqstats.Open(g.dev)
	return nil
}

func (g *gocryptfsSys) unmount(context.Context) error {
	if g.coll != nil {
		g.coll.Close()
		g.coll = nil
	}
	if !g.mounted {
		return nil
	}
	var err error
	for range 50 {
		if err = unix.Unmount(g.mnt, 0); !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil {
		select {
		case <-g.exited:
		case <-time.After(time.Minute):
			err = fmt.Errorf("gocryptfs still running a minute after the unmount")
		}
	}
	if err != nil {
		g.Abort()
		return fmt.Errorf("unmount %s (forced): %w; log: %s", g.mnt, err, g.logTail())
	}
	g.mounted, g.pid, g.dev = false, 0, 0
	return nil
}

func (g *gocryptfsSys) Remount(ctx context.Context, cold bool) error {
	if err := g.unmount(ctx); err != nil {
		return err
	}
	if cold {
		if err := dropCaches(); err != nil {
			return err
		}
	}
	return g.mount(ctx)
}

func (g *gocryptfsSys) Teardown(ctx context.Context) error { return g.unmount(ctx) }

func (g *gocryptfsSys) Upcalls(context.Context) (upcalls, error) {
	if g.coll == nil {
		return nil, g.collErr
	}
	snap, err := g.coll.Snapshot()
	if err != nil {
		return nil, err
	}
	u := upcalls{}
	for op, s := range snap.Ops {
		u[op.String()] = opCount{Upcalls: s.Sent}
	}
	return u, nil
}
