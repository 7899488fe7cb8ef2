package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/daemon"
	"github.com/cryptfs/cryptfs/internal/treelock"
)

// mountFlags are the options of cryptfs mount.
type mountFlags struct {
	unlockFlags
	foreground bool
	quiet      bool
	readOnly   bool
	allowOther bool
	fastPath   string
	debug      bool
	logFile    string
	daemon     bool // internal: the background child, key and options on fd 3, status on fd 4
	unlock     bool // internal: the unlock child of a foreground mount, key on fd 3 (unlockchild.go)
	bpfShadow  bool // testing: ebpf tier without attaching (stock kernels)
	cpuProfile string
	memProfile string
	reverse    bool // CIPHERDIR is a plaintext directory shown encrypted (reverse.go)
	shared     bool // --shared-storage: CIPHERDIR may change behind the mount
	idle       time.Duration
	transport  string // how requests travel: auto, uring or dev
	poll       string // whether the /dev/fuse reader polls: auto, adaptive or off
}

// Descriptors inherited by the background daemon.
const (
	keyFD    = 3
	statusFD = 4
)

func newMount(e env) *cobra.Command {
	var m mountFlags
	c := &cobra.Command{
		Use:   "mount [flags] CIPHERDIR MOUNTPOINT",
		Short: "Mount an encrypted directory (in the background unless -f)",
		Long: `mount unlocks CIPHERDIR and shows its plaintext at MOUNTPOINT.

By default the daemon goes to the background and the command returns once
the mount answers, saying where, which fast-path tier and where the log is
(-q: nothing); errors are reported here, with the exit codes of
'cryptfs exit-codes'. With -f it stays in the foreground, logs to standard
error and tells systemd when it is ready (Type=notify). SIGINT and SIGTERM
unmount cleanly.

One daemon serves a cipher directory at a time: a second mount of the same
CIPHERDIR (by any user, root included) is refused with exit code 18 and
names the mount that has it; read-only mounts (--ro) may share one. The
check comes before the password is asked for.

--fast-path chooses how metadata is served: ebpf (in the kernel, needs the
cryptfs kernel hook), kernel-cache (long kernel cache validity with exact
invalidation), off (every lookup reaches the daemon), or auto (ebpf when
the kernel has the hook, else kernel-cache).

--shared-storage is for a CIPHERDIR that something else changes while it
is mounted (a sync client such as Syncthing, Dropbox or Nextcloud, or a
sync tool run from another machine): such changes show through the mount
within 1 second, a file replaced by rename is opened by path without
"Stale file handle", and the ebpf tier is not used. Without it the daemon
assumes it is the only writer of CIPHERDIR and caches accordingly.

--transport chooses how the kernel's requests reach the daemon: uring
(FUSE over io_uring, Linux 6.14+: one queue per CPU, each request served
on the CPU that sent it; the kernel offers it while
/sys/module/fuse/parameters/enable_uring is Y), dev (/dev/fuse), or auto
(uring where the kernel offers it, else dev). --transport=uring on a
kernel that does not offer it fails with exit code 16. 'cryptfs status'
shows the transport in use and why.

--poll=adaptive makes the daemon's reader of /dev/fuse poll the device
for a short, self-tuning window (2 to 50 microseconds) after each reply
before it sleeps, so that a program sending requests back to back does
not wait for a sleeping thread to wake up; it costs daemon CPU (at most
the window per request, none while the mount is idle). off never polls;
auto (the default) is off, which measured best on 2 CPUs (see
docs/performance.md). It does not apply to --transport=uring.

--recovery-key unlocks with the recovery key instead of the password; it
works without a cryptfs.conf too (lost or damaged), reading the format's
feature flags from the tree, and then mounts read-only: 'cryptfs recover'
writes a new config.

As root, neither path may contain a symlink (a user who controls a
component could otherwise redirect the mount): give real paths.`,
		Args: args(2),
		RunE: func(c *cobra.Command, a []string) error {
			return runMount(e, &m, a[0], a[1])
		},
	}
	m.register(c)
	f := c.Flags()
	f.BoolVarP(&m.foreground, "foreground", "f", false, "stay in the foreground")
	f.BoolVarP(&m.quiet, "quiet", "q", false, "print nothing on success")
	f.BoolVar(&m.readOnly, "ro", false, "mount read-only")
	f.BoolVar(&m.allowOther, "allow-other", false, "let other users access the mount (as root, files are created as the calling user)")
	f.StringVar(&m.fastPath, "fast-path", "auto", "metadata fast path: auto, ebpf, kernel-cache or off")
	f.BoolVar(&m.shared, "shared-storage", false, "CIPHERDIR may change behind the mount (a sync client): show outside changes within 1 s")
	f.StringVar(&m.transport, "transport", "auto", "how requests reach the daemon: auto, uring (FUSE over io_uring) or dev (/dev/fuse)")
	f.StringVar(&m.poll, "poll", "auto", "whether the /dev/fuse reader polls before it sleeps: auto, adaptive or off")
	f.DurationVar(&m.idle, "idle", 0, "unmount after `DURATION` without requests, once nothing is open inside (e.g. 30m)")
	f.BoolVar(&m.debug, "debug", false, "log every request (debug level)")
	f.StringVar(&m.logFile, "log-file", "", "where the background daemon logs (default: in the runtime directory; see cryptfs status)")
	f.BoolVar(&m.daemon, "internal-daemon", false, "")
	f.MarkHidden("internal-daemon")
	f.BoolVar(&m.unlock, "internal-unlock", false, "")
	f.MarkHidden("internal-unlock")
	f.BoolVar(&m.reverse, "reverse", false, "show the plaintext directory CIPHERDIR encrypted and read-only at MOUNTPOINT (reverse mode; see init --reverse)")
	f.BoolVar(&m.bpfShadow, "bpf-shadow", false, "ebpf tier without attaching the program: fill the maps for tests on kernels without the hook")
	f.MarkHidden("bpf-shadow")
	f.StringVar(&m.cpuProfile, "cpuprofile", "", "write a CPU profile of the daemon to `FILE` (pprof format) until it unmounts")
	f.MarkHidden("cpuprofile")
	f.StringVar(&m.memProfile, "memprofile", "", "write a heap profile of the daemon to `FILE` when it unmounts")
	f.MarkHidden("memprofile")
	return c
}

func runMount(e env, m *mountFlags, cipherDir, mountpoint string) error {
	// Every path is made absolute here: the background daemon runs in /.
	for _, p := range []*string{&cipherDir, &mountpoint, &m.config, &m.logFile, &m.cpuProfile, &m.memProfile} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if m.reverse {
		m.config = reverseConfigPath(cipherDir, m.config)
	}
	mode, err := daemon.ParseMode(m.fastPath)
	if err == nil {
		err = daemon.CheckShared(m.shared, m.reverse, mode, m.bpfShadow)
	}
	if err != nil {
		return &codedError{code: exitUsage, err: err}
	}
	transport, err := fuse.ParseTransport(m.transport)
	if err != nil {
		return &codedError{code: exitUsage, err: err}
	}
	if _, err := daemon.ParsePoll(m.poll); err != nil {
		return &codedError{code: exitUsage, err: err}
	}
	if m.daemon {
		return runDaemonChild(m, mode, cipherDir, mountpoint)
	}
	if m.unlock {
		return runUnlockChild(e, m, cipherDir)
	}
	if err := checkFUSE(); err != nil {
		return err
	}
	if transport == fuse.TransportURing {
		if err := checkURing(); err != nil {
			return err
		}
	}
	if os.Geteuid() == 0 {
		if err := checkNoSymlinks(cipherDir, mountpoint); err != nil {
			return err
		}
	}
	if st, err := os.Stat(cipherDir); err != nil || !st.IsDir() {
		return withCode(exitNoConfig, "cipher directory %s does not exist", cipherDir)
	}
	if err := checkMountpoint(mountpoint, cipherDir); err != nil {
		return err
	}
	// One daemon per tree: say so before asking for a password. The
	// daemon's own lock decides; this only reads /proc/locks.
	if err := treelock.Probe(cipherDir, treelock.Options{Shared: m.readOnly}); err != nil {
		return err
	}
	// A foreground mount is the daemon: it leaves the password to a child
	// (unlockchild.go). The background daemon gets only the key anyway.
	var k keys
	if m.foreground {
		k, err = m.unlockInChild(e, cipherDir, mountpoint)
	} else {
		k, err = m.unlockForMount(e, cipherDir)
	}
	if err != nil {
		return err
	}
	if k.recovered {
		m.readOnly = true
	}
	if m.foreground {
		o := m.daemonOptions(mode, cipherDir, mountpoint)
		o.Crypt, o.Master, o.Log = k.crypt, k.master, newLogger(e.stderr, m.debug)
		o.Mounted = func(st control.Status) {
			if !m.quiet {
				fmt.Fprintf(e.stdout, "%s\n", mountedLine(cipherDir, mountpoint, st.Tier, "", m.readOnly))
			}
		}
		return serve(o)
	}
	defer wipe(k.master)
	return startBackground(e, m, cipherDir, mountpoint, k)
}

// mountedLine is what mount says on success.
func mountedLine(cipherDir, mnt, tier, logFile string, readOnly bool) string {
	ro := ""
	if readOnly {
		ro = ", read-only"
	}
	where := "log: standard error"
	if logFile != "" {
		where = "log: " + logFile
	}
	return fmt.Sprintf("Mounted %s at %s (fast path: %s%s; %s)", cipherDir, mnt, tier, ro, where)
}

// keys is what unlocking gives a mount: the master key and the format's
// options, from the config or (recovered) from the tree.
type keys struct {
	master    []byte
	crypt     crypt.Options
	recovered bool // no usable config: the options were read from the tree
}

// unlockForMount unlocks cipherDir's config; with --recovery-key a
// missing or damaged config is replaced by what the tree says (recovery).
func (u *unlockFlags) unlockForMount(e env, cipherDir string) (keys, error) {
	sec := u.secrets(e)
	cfg, master, err := u.unlock(e, cipherDir, sec)
	if err == nil {
		return keys{master: master, crypt: cfg.CryptOptions()}, nil
	}
	if !u.recoveryKey || !configLost(err) {
		return keys{}, err
	}
	key, kerr := sec.readRecoveryKey()
	if kerr != nil {
		return keys{}, kerr
	}
	master, opts, report, kerr := recoverFromTree(cipherDir, key, nil)
	if kerr != nil {
		return keys{}, kerr
	}
	fmt.Fprintf(e.stderr, "cryptfs: %v\ncryptfs: the recovery key %s; mounting read-only (write a new config with 'cryptfs recover %s')\n",
		err, report, cipherDir)
	return keys{master: master, crypt: opts, recovered: true}, nil
}

// configLost reports whether err says the config is missing or damaged
// (rather than a wrong password or an unsupported version).
func configLost(err error) bool {
	c := exitCode(err)
	return c == exitNoConfig || (c == exitBadConfig && errors.Is(err, config.ErrCorrupt))
}
