package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/daemon"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
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

// checkFUSE reports a missing /dev/fuse or fusermount3 with what to install.
func checkFUSE() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return withCode(exitNoFUSE, "/dev/fuse is missing: load the fuse module ('modprobe fuse') and install FUSE ('apt-get install fuse3')")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			return withCode(exitNoFUSE, "fusermount3 not found: install it with 'apt-get install fuse3'")
		}
	}
	return nil
}

// uringParam is the fuse module's switch for FUSE over io_uring (Linux
// 6.14+ built with CONFIG_FUSE_IO_URING; absent otherwise).
const uringParam = "/sys/module/fuse/parameters/enable_uring"

// checkURing reports, before the password is asked for, that the kernel
// will not offer FUSE over io_uring to a new mount: --transport=uring
// would fail. The daemon's mount checks again (jacobsa/fuse refuses to
// mount without it).
func checkURing() error {
	b, err := os.ReadFile(uringParam)
	switch {
	case err != nil:
		return withCode(exitNoFUSE, "--transport=uring: this kernel has no FUSE over io_uring (it needs Linux 6.14+ with CONFIG_FUSE_IO_URING; %s is missing); use --transport=auto or dev", uringParam)
	case strings.TrimSpace(string(b)) != "Y":
		return withCode(exitNoFUSE, "--transport=uring: the kernel does not offer FUSE over io_uring (%s is %s; as root: echo Y > %s); use --transport=auto or dev", uringParam, strings.TrimSpace(string(b)), uringParam)
	}
	return nil
}

// checkNoSymlinks refuses paths with a symlink in them (as root).
func checkNoSymlinks(paths ...string) error {
	for _, p := range paths {
		fd, err := mountinfo.OpenNoSymlinks(p, unix.O_PATH)
		if errors.Is(err, mountinfo.ErrSymlink) {
			return &codedError{code: exitUsage, err: err}
		}
		if err == nil {
			unix.Close(fd)
		}
	}
	return nil
}

// checkMountpoint refuses a mountpoint that is already mounted, missing,
// not a directory, inside the cipher directory (or around it), or not
// empty.
func checkMountpoint(mnt, cipherDir string) error {
	if _, err := control.Device(mnt); err == nil || isMountpoint(mnt) {
		return withCode(exitAlreadyMounted, "%s is already a mountpoint (unmount it first: cryptfs unmount %s)", mnt, mnt)
	}
	st, err := os.Stat(mnt)
	if errors.Is(err, syscall.ENOTCONN) {
		return withCode(exitAlreadyMounted, "%s is a dead mount (its daemon died): run 'cryptfs unmount %s'", mnt, mnt)
	}
	if err != nil || !st.IsDir() {
		return withCode(exitNoMountpoint, "mountpoint %s does not exist or is not a directory (create it with 'mkdir -p %s')", mnt, mnt)
	}
	// Compare real paths: a symlink must not hide that one is inside the
	// other.
	realMnt, realCipher := realPath(mnt), realPath(cipherDir)
	if inside(realMnt, realCipher) {
		return withCode(exitUsage, "the mountpoint %s must not be inside the cipher directory %s (a file system inside its own storage); mount it somewhere else", mnt, cipherDir)
	}
	if inside(realCipher, realMnt) {
		return withCode(exitUsage, "the cipher directory %s must not be inside the mountpoint %s", cipherDir, mnt)
	}
	d, err := os.Open(mnt)
	if err != nil {
		return err
	}
	names, _ := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return withCode(exitNotEmpty, "mountpoint %s is not empty", mnt)
	}
	return nil
}

// realPath resolves symlinks, or returns the path as it is.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// inside reports whether path is dir or below it.
func inside(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, "../")))
}

// isMountpoint reports whether anything is mounted at path.
func isMountpoint(path string) bool {
	_, err := mountinfo.At(path)
	return err == nil
}

// defaultLogFile is where a background daemon logs unless told otherwise:
// in the user's runtime directory (created and checked here).
func defaultLogFile(mnt string) (string, error) {
	dir, err := control.RuntimeDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(mnt))
	return filepath.Join(dir, "mount-"+hex.EncodeToString(sum[:6])+".log"), nil
}

// startBackground starts the daemon as a child in its own session, hands
// it the master key and the format's options (from the config verified
// here: the daemon never reads the config itself, so a config replaced
// meanwhile cannot change its flags) through a pipe, and waits until it
// reports the mount ready (or fails, with the child's exit code).
func startBackground(e env, m *mountFlags, cipherDir, mnt string, k keys) error {
	logPath := m.logFile
	if logPath == "" {
		var err error
		if logPath, err = defaultLogFile(mnt); err != nil {
			return err
		}
	}
	logf, err := control.OpenLog(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	handoff, err := json.Marshal(k.crypt)
	if err != nil {
		return err
	}
	keyR, keyW, err := os.Pipe()
	if err != nil {
		return err
	}
	statR, statW, err := os.Pipe()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := []string{"mount", "--internal-daemon", "--fast-path", m.fastPath, "--transport", m.transport, "--poll", m.poll, "--log-file", logPath}
	if m.readOnly {
		argv = append(argv, "--ro")
	}
	if m.allowOther {
		argv = append(argv, "--allow-other")
	}
	if m.debug {
		argv = append(argv, "--debug")
	}
	if m.bpfShadow {
		argv = append(argv, "--bpf-shadow")
	}
	if m.reverse {
		argv = append(argv, "--reverse")
	}
	if m.shared {
		argv = append(argv, "--shared-storage")
	}
	if m.cpuProfile != "" {
		argv = append(argv, "--cpuprofile", m.cpuProfile)
	}
	if m.memProfile != "" {
		argv = append(argv, "--memprofile", m.memProfile)
	}
	if m.idle > 0 {
		argv = append(argv, "--idle", m.idle.String())
	}
	argv = append(argv, "--", cipherDir, mnt)
	cmd := exec.Command(self, argv...)
	cmd.ExtraFiles = []*os.File{keyR, statW} // fds 3 and 4
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	keyR.Close()
	statW.Close()
	msg := append(append(make([]byte, 0, len(k.master)+len(handoff)), k.master...), handoff...)
	_, werr := keyW.Write(msg)
	wipe(msg)
	keyW.Close()
	if werr != nil {
		return fmt.Errorf("hand the key to the daemon: %w", werr)
	}
	line, _ := bufio.NewReader(statR).ReadString('\n')
	statR.Close()
	line = strings.TrimSpace(line)
	tier, ok := strings.CutPrefix(line, "ok ")
	if line == "ok" { // a daemon with nothing to say about its tier
		ok = true
	}
	if !ok {
		code, msg := exitError, "the daemon exited without a word (see "+logPath+")"
		if rest, ok := strings.CutPrefix(line, "error "); ok {
			c, m, _ := strings.Cut(rest, " ")
			if n, err := strconv.Atoi(c); err == nil {
				code, msg = n, m
			}
		}
		cmd.Wait()
		return &codedError{code: code, err: errors.New(msg)}
	}
	go cmd.Wait() // reaped if we linger; the daemon outlives us
	// The mount must answer before we return.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err == nil && st.Type == fuseSuperMagic {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon reported ready but %s does not answer (see %s)", mnt, logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !m.quiet {
		fmt.Fprintln(e.stdout, mountedLine(cipherDir, mnt, tier, logPath, m.readOnly))
	}
	return nil
}

const fuseSuperMagic = 0x65735546

// maxHandoff bounds what the daemon reads after the key.
const maxHandoff = 64 << 10

// runDaemonChild is the background daemon: the key and the format's
// options come on fd 3, the outcome of mounting goes to fd 4.
func runDaemonChild(m *mountFlags, mode daemon.Mode, cipherDir, mnt string) error {
	status := os.NewFile(statusFD, "status")
	report := func(err error, tier string) {
		if status == nil {
			return
		}
		if err == nil {
			fmt.Fprintf(status, "ok %s\n", tier)
		} else {
			fmt.Fprintf(status, "error %d %s\n", exitCode(err), strings.ReplaceAll(err.Error(), "\n", " "))
		}
		status.Close()
		status = nil
	}
	keyFile := os.NewFile(keyFD, "key")
	master := make([]byte, crypt.KeyLen)
	_, err := io.ReadFull(keyFile, master)
	var opts crypt.Options
	if err == nil {
		var handoff []byte
		handoff, err = io.ReadAll(io.LimitReader(keyFile, maxHandoff))
		if err == nil {
			dec := json.NewDecoder(strings.NewReader(string(handoff)))
			dec.DisallowUnknownFields()
			err = dec.Decode(&opts)
		}
	}
	keyFile.Close()
	if err != nil {
		wipe(master)
		err = fmt.Errorf("read the key from the parent: %w", err)
		report(err, "")
		return err
	}
	o := m.daemonOptions(mode, cipherDir, mnt)
	o.Crypt, o.Master, o.Log = opts, master, newLogger(os.Stderr, m.debug)
	var tier string
	o.LogFile = m.logFile
	o.Mounted = func(st control.Status) { tier = st.Tier }
	o.Ready = func(err error) { report(err, tier) }
	err = serve(o)
	report(err, "")
	return err
}

// daemonOptions are the daemon's options from the mount flags.
func (m *mountFlags) daemonOptions(mode daemon.Mode, cipherDir, mnt string) daemon.Options {
	return daemon.Options{
		CipherDir:  cipherDir,
		Mountpoint: mnt,
		FastPath:   mode,
		ReadOnly:   m.readOnly,
		AllowOther: m.allowOther,
		BPFShadow:  m.bpfShadow,
		CPUProfile: m.cpuProfile,
		MemProfile: m.memProfile,
		// Reverse mode: the view's config (reverse.go).
		ReverseConfig: m.reverseConfig(),
		Idle:          m.idle,
		SharedStorage: m.shared,
		Transport:     m.transportChoice(),
		Poll:          m.pollChoice(),
	}
}

// pollChoice is --poll, parsed (runMount checked it).
func (m *mountFlags) pollChoice() daemon.Poll {
	p, _ := daemon.ParsePoll(m.poll)
	return p
}

// transportChoice is --transport, parsed (runMount checked it).
func (m *mountFlags) transportChoice() fuse.Transport {
	t, _ := fuse.ParseTransport(m.transport)
	return t
}

// serve runs the daemon until the mount ends; SIGINT and SIGTERM unmount
// (one that arrives while mounting does so once the mount is up).
func serve(o daemon.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return daemon.Serve(ctx, o)
}
