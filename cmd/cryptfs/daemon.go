package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/bpf/reqstats"
	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/control"
	fusefs "github.com/cryptfs/cryptfs/internal/fusefs"
	"github.com/cryptfs/cryptfs/meta"
)

// fastPathMode is the --fast-path choice.
type fastPathMode struct {
	auto bool
	tier meta.Tier
}

func parseFastPath(s string) (fastPathMode, error) {
	if s == "auto" {
		return fastPathMode{auto: true}, nil
	}
	t, err := meta.ParseTier(s)
	return fastPathMode{tier: t}, err
}

type daemonArgs struct {
	flags      *mountFlags
	cfg        *config.Config
	master     []byte // wiped by serve
	cipherDir  string
	mountpoint string
	log        zerolog.Logger
	logFile    string
	ready      func(error) // called once: mounted, or why not
}

// serve mounts and serves until unmounted. It wipes the key material when
// the mount ends.
func serve(a daemonArgs) (err error) {
	defer func() {
		if err != nil {
			a.ready(err)
		}
	}()
	suite, err := crypt.New(a.master, a.cfg.CryptOptions())
	wipe(a.master)
	if err != nil {
		return err
	}
	defer suite.Wipe()

	syscall.Umask(0) // modes come from the kernel, already masked
	raiseFileLimit()
	stopHeap := make(chan struct{})
	defer close(stopHeap)
	governHeap(stopHeap) // heap.go
	if a.flags.cpuProfile != "" {
		f, err := os.Create(a.flags.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	mode, _ := parseFastPath(a.flags.fastPath)
	fp, err := setupFastPath(mode, a.flags.bpfShadow)
	if err != nil {
		return err
	}
	defer fp.close()
	err = serveTier(a, suite, fp)
	if errors.Is(err, errAttachFailed) && mode.auto {
		a.log.Warn().Err(err).Msg("falling back to the kernel-cache tier")
		fp.close()
		fp = fastSetup{tier: meta.KernelCache, reason: "auto: " + err.Error()}
		err = serveTier(a, suite, fp)
	}
	return err
}

var errAttachFailed = errors.New("attaching the fast-path program failed")

// fastSetup is the chosen tier and, for ebpf, the loaded program.
type fastSetup struct {
	tier   meta.Tier
	reason string
	fp     *fastpath.FastPath
	attach bool // attach the program to the connection (the kernel has the hook)
}

func (f *fastSetup) close() {
	if f.fp != nil {
		f.fp.Close()
		f.fp = nil
	}
}

// setupFastPath resolves --fast-path to a tier this kernel and process
// support, loading the eBPF program for the ebpf tier.
func setupFastPath(m fastPathMode, shadow bool) (fastSetup, error) {
	if !m.auto && m.tier != meta.EBPF {
		return fastSetup{tier: m.tier, reason: "requested"}, nil
	}
	fallback := func(why string) (fastSetup, error) {
		if m.auto {
			return fastSetup{tier: meta.KernelCache, reason: "auto: " + why}, nil
		}
		return fastSetup{}, fmt.Errorf("--fast-path=ebpf: %s; use --fast-path=auto or kernel-cache", why)
	}
	if shadow {
		fp, err := loadFastPath()
		if err != nil {
			return fastSetup{}, fmt.Errorf("--bpf-shadow: %w", err)
		}
		return fastSetup{tier: meta.EBPF, reason: "shadow: maps filled, program not attached (testing)", fp: fp}, nil
	}
	if os.Geteuid() != 0 {
		return fallback("the ebpf tier needs root (it mounts with mount(2) and loads BPF programs)")
	}
	if !kernelHasHook() {
		return fallback("the running kernel has no cryptfs fast-path hook (see docs/fast-path.md)")
	}
	fp, err := loadFastPath()
	if err != nil {
		return fallback("cannot load the fast-path program: " + err.Error())
	}
	return fastSetup{tier: meta.EBPF, reason: "the kernel has the cryptfs fast-path hook", fp: fp, attach: true}, nil
}

// loadFastPath loads the program and sets cryptfs's policy in it.
func loadFastPath() (*fastpath.FastPath, error) {
	fp, err := fastpath.Load()
	if err != nil {
		return nil, err
	}
	if err := fp.SetUserXattrsOnly(true); err != nil {
		fp.Close()
		return nil, err
	}
	return fp, nil
}

// kernelHasHook probes for the cryptfs FUSE hook: on a kernel without it
// the attach ioctl is unknown to /dev/fuse (ENOTTY); with it, detaching
// from a descriptor without a connection fails otherwise.
func kernelHasHook() bool {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	err = fastpath.Detach(fd)
	return !errors.Is(err, unix.ENOTTY)
}

// serveTier mounts with one tier and serves until unmounted.
func serveTier(a daemonArgs, suite *crypt.Suite, fp fastSetup) error {
	// Catch SIGINT/SIGTERM from the start: one that arrives while mounting
	// is acted upon (an unmount) as soon as the mount is up.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var sink fusefs.FastPath
	if fp.fp != nil {
		sink = meta.NewMapSink(fp.fp, a.log)
	}
	notifier := fuse.NewNotifier()
	fsys, err := fusefs.New(fusefs.Config{
		Lower:    a.cipherDir,
		Suite:    suite,
		Tier:     fp.tier,
		FastPath: sink,
		ReadOnly: a.flags.readOnly,
		Log:      a.log,
	}, notifier)
	if err != nil {
		return err
	}
	defer fsys.Close()

	mopts := fusefs.MountOptions{
		Source:     a.cipherDir,
		ReadOnly:   a.flags.readOnly,
		AllowOther: a.flags.allowOther,
		Tier:       fp.tier,
	}
	if a.log.Debug().Enabled() {
		// jacobsa/fuse formats a line for every failed request that is not
		// ENOENT-like (EOPNOTSUPP for security.capability before every
		// write among them) before the writer sees it: only worth it when
		// the line is kept.
		mopts.ErrorLog = log.New(zerologWriter{a.log}, "", 0)
	}
	server := fuse.NewServerWithNotifier(notifier, fsys.Server())
	var mfs *fuse.MountedFileSystem
	devFD := -1
	if fp.attach {
		dev, err := fusefs.MountDevice(a.mountpoint, mopts)
		if err != nil {
			return err
		}
		// jacobsa/fuse wraps /dev/fd/N in an *os.File of its own and closes
		// it when the connection ends; dev must not own the same number, or
		// its finalizer closes it under the library's reads. The library
		// gets a duplicate; dev stays open (and reachable) until we return.
		defer dev.Close()
		if devFD, err = unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			unix.Unmount(a.mountpoint, unix.MNT_DETACH)
			return fmt.Errorf("dup /dev/fuse: %w", err)
		}
		if mfs, err = fuse.Mount(fmt.Sprintf("/dev/fd/%d", devFD), server, fusefs.MountConfig(mopts)); err != nil {
			unix.Unmount(a.mountpoint, unix.MNT_DETACH)
			return fmt.Errorf("serve %s: %w", a.mountpoint, err)
		}
		if err := fp.fp.Attach(devFD); err != nil {
			unix.Unmount(a.mountpoint, 0)
			mfs.Join(context.Background())
			return fmt.Errorf("%w: %w", errAttachFailed, err)
		}
	} else if mfs, err = fuse.Mount(a.mountpoint, server, fusefs.MountConfig(mopts)); err != nil {
		return fmt.Errorf("mount %s: %w", a.mountpoint, err)
	}

	h := &controlHandler{fsys: fsys, fp: fp.fp, status: control.Status{
		PID: os.Getpid(), Mountpoint: a.mountpoint, CipherDir: a.cipherDir,
		Tier: fp.tier.String(), TierReason: fp.reason, ReadOnly: a.flags.readOnly,
		Started: time.Now(), LogFile: a.logFile,
	}}
	h.status.StartTicks, _, _ = control.ProcessStart(os.Getpid())
	if fp.fp != nil {
		if info, err := fp.fp.Program().Info(); err == nil {
			if id, ok := info.ID(); ok {
				h.status.BPFProgramID = uint32(id)
			}
		}
	}
	if dev, err := control.Device(a.mountpoint); err == nil {
		h.status.Device = dev
		raiseReadahead(dev, a.log)
		if ctl, err := control.Listen(dev, h); err == nil {
			defer ctl.Close()
		} else {
			a.log.Warn().Err(err).Msg("no control socket: cryptfs status/stats will not see this mount")
		}
		if os.Geteuid() == 0 {
			if col, err := reqstats.Open(dev); err == nil {
				h.col = col
				defer col.Close()
			} else {
				a.log.Info().Err(err).Msg("no tracepoint statistics; cryptfs stats shows the daemon's own counters")
			}
		}
	}
	a.log.Info().Str("mountpoint", a.mountpoint).Str("fast_path", fp.tier.String()).Msg("mounted")
	a.ready(nil)
	sdNotify("READY=1\nSTATUS=Mounted " + a.mountpoint + " (fast path: " + fp.tier.String() + ")")

	go func() {
		for sig := range sigs {
			a.log.Info().Str("signal", sig.String()).Msg("unmounting")
			if devFD >= 0 {
				fastpath.Detach(devFD)
			}
			if err := unmount(a.mountpoint, false); err != nil {
				a.log.Warn().Err(err).Msg("unmount failed (busy?); detaching lazily")
				unmount(a.mountpoint, true)
			}
		}
	}()
	if err := mfs.Join(context.Background()); err != nil {
		return fmt.Errorf("serving %s: %w", a.mountpoint, err)
	}
	sdNotify("STOPPING=1")
	if a.flags.memProfile != "" {
		// The heap as the mount leaves it: the inode table at its largest.
		if f, err := os.Create(a.flags.memProfile); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	return nil
}

// unmount unmounts mnt (lazily: detach now, finish when no longer busy).
func unmount(mnt string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		if err := unix.Unmount(mnt, flags); err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
		return nil
	}
	argv := []string{"-u"}
	if lazy {
		argv = append(argv, "-z")
	}
	out, err := exec.Command("fusermount3", append(argv, mnt)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u %s: %v: %s", mnt, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// readaheadKB is the readahead of the mount's backing device: the largest
// READ jacobsa/fuse accepts (1 MiB) instead of the kernel's 128 KiB, so a
// sequential reader costs a quarter of the requests and each request
// decrypts enough blocks to use every core.
const readaheadKB = 1024

// raiseReadahead sets the readahead of the FUSE connection's bdi (root
// only; a failure just leaves the kernel's default).
func raiseReadahead(dev uint32, log zerolog.Logger) {
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", dev>>20, dev&(1<<20-1))
	if err := os.WriteFile(path, []byte(strconv.Itoa(readaheadKB)), 0); err != nil {
		log.Debug().Err(err).Msg("cannot raise the readahead; sequential reads use the kernel's default")
	}
}

// raiseFileLimit lifts the descriptor limit as far as allowed: the daemon
// holds one O_PATH descriptor per directory the kernel knows.
func raiseFileLimit() {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	if os.Geteuid() == 0 {
		if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
			if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > lim.Max {
				lim.Max = n
			}
		}
	}
	lim.Cur = lim.Max
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
}

// sdNotify tells systemd about our state when it asked (Type=notify).
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// zerologWriter routes jacobsa/fuse's own log lines to the debug log.
type zerologWriter struct{ log zerolog.Logger }

func (w zerologWriter) Write(p []byte) (int, error) {
	w.log.Debug().Str("component", "jacobsa/fuse").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// controlHandler answers cryptfs status and stats.
type controlHandler struct {
	fsys   *fusefs.FS
	fp     *fastpath.FastPath // ebpf tier
	col    *reqstats.Collector
	status control.Status
}

func (h *controlHandler) Status() control.Status { return h.status }

// Stats merges three sources: upcalls and their latency from the
// tracepoint collector when the kernel has it (else the daemon's own
// counters), the daemon's per-opcode counts, and the program's hits.
func (h *controlHandler) Stats() control.Stats {
	ops := map[fuseop.Opcode]*control.OpFigures{}
	get := func(op fuseop.Opcode) *control.OpFigures {
		if ops[op] == nil {
			ops[op] = &control.OpFigures{Opcode: op.String()}
		}
		return ops[op]
	}
	out := control.Stats{Source: "daemon"}
	for _, o := range h.fsys.Stats().Snapshot() {
		f := get(o.Opcode)
		f.Daemon = o.Count
		f.Errors = o.Errors
		if h.col == nil {
			f.Upcalls, f.Histogram = o.Count, o.Hist
		}
	}
	if h.col != nil {
		if snap, err := h.col.Snapshot(); err == nil {
			out.Source = "tracepoint"
			for op, o := range snap.Ops {
				f := get(op)
				f.Upcalls = o.Sent
				f.Histogram = append([]uint64(nil), o.Hist[:]...)
			}
		}
	}
	if h.fp != nil {
		if st, err := h.fp.Stats(); err == nil {
			for op, o := range st {
				get(op).FastHits = o.Hits
			}
		}
	}
	for _, f := range ops {
		out.Ops = append(out.Ops, *f)
	}
	sort.Slice(out.Ops, func(i, j int) bool { return out.Ops[i].Opcode < out.Ops[j].Opcode })
	return out
}
