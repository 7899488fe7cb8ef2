package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/daemon"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// mountFlags are the options of cryptfs mount.
type mountFlags struct {
	unlockFlags
	foreground bool
	readOnly   bool
	allowOther bool
	fastPath   string
	debug      bool
	logFile    string
	daemon     bool // internal: the background child, key on fd 3, status on fd 4
	bpfShadow  bool // testing: ebpf tier without attaching (stock kernels)
	cpuProfile string
	memProfile string
	idle       time.Duration
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
the mount answers; errors are reported here, with the exit codes of
'cryptfs exit-codes'. With -f it stays in the foreground, logs to standard
error and tells systemd when it is ready (Type=notify). SIGINT and SIGTERM
unmount cleanly.

--fast-path chooses how metadata is served: ebpf (in the kernel, needs the
cryptfs kernel hook), kernel-cache (long kernel cache validity with exact
invalidation), off (every lookup reaches the daemon), or auto (ebpf when
the kernel has the hook, else kernel-cache).`,
		Args: args(2),
		RunE: func(c *cobra.Command, a []string) error {
			return runMount(e, &m, a[0], a[1])
		},
	}
	m.register(c)
	f := c.Flags()
	f.BoolVarP(&m.foreground, "foreground", "f", false, "stay in the foreground")
	f.BoolVar(&m.readOnly, "ro", false, "mount read-only")
	f.BoolVar(&m.allowOther, "allow-other", false, "let other users access the mount (as root, files are created as the calling user)")
	f.StringVar(&m.fastPath, "fast-path", "auto", "metadata fast path: auto, ebpf, kernel-cache or off")
	f.DurationVar(&m.idle, "idle", 0, "unmount after `DURATION` without requests, once nothing is open inside (e.g. 30m)")
	f.BoolVar(&m.debug, "debug", false, "log every request (debug level)")
	f.StringVar(&m.logFile, "log-file", "", "where the background daemon logs (default: in the runtime directory; see cryptfs status)")
	f.BoolVar(&m.daemon, "internal-daemon", false, "")
	f.MarkHidden("internal-daemon")
	f.BoolVar(&m.bpfShadow, "bpf-shadow", false, "ebpf tier without attaching the program: fill the maps for tests on kernels without the hook")
	f.MarkHidden("bpf-shadow")
	f.StringVar(&m.cpuProfile, "cpuprofile", "", "write a CPU profile of the daemon to `FILE` (pprof format) until it unmounts")
	f.MarkHidden("cpuprofile")
	f.StringVar(&m.memProfile, "memprofile", "", "write a heap profile of the daemon to `FILE` when it unmounts")
	f.MarkHidden("memprofile")
	return c
}

func runMount(e env, m *mountFlags, cipherDir, mountpoint string) error {
	var err error
	if cipherDir, err = filepath.Abs(cipherDir); err != nil {
		return err
	}
	if mountpoint, err = filepath.Abs(mountpoint); err != nil {
		return err
	}
	mode, err := daemon.ParseMode(m.fastPath)
	if err != nil {
		return &codedError{code: exitUsage, err: err}
	}
	if m.daemon {
		return runDaemonChild(m, mode, cipherDir, mountpoint)
	}
	if err := checkFUSE(); err != nil {
		return err
	}
	if err := checkMountpoint(mountpoint, cipherDir); err != nil {
		return err
	}
	if st, err := os.Stat(cipherDir); err != nil || !st.IsDir() {
		return withCode(exitNoConfig, "cipher directory %s does not exist", cipherDir)
	}
	cfg, master, err := m.unlock(e, cipherDir, m.secrets(e))
	if err != nil {
		return err
	}
	if m.foreground {
		o := m.daemonOptions(mode, cipherDir, mountpoint)
		o.Crypt, o.Master, o.Log = cfg.CryptOptions(), master, newLogger(e.stderr, m.debug)
		return serve(o)
	}
	defer wipe(master)
	return startBackground(e, m, cipherDir, mountpoint, master)
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

// checkMountpoint refuses a mountpoint that is missing, not a directory,
// not empty, already mounted, or inside the cipher directory (or around it).
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
	d, err := os.Open(mnt)
	if err != nil {
		return err
	}
	names, _ := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return withCode(exitNotEmpty, "mountpoint %s is not empty", mnt)
	}
	rel, err := filepath.Rel(cipherDir, mnt)
	if err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
		return withCode(exitUsage, "the mountpoint %s must not be inside the cipher directory %s", mnt, cipherDir)
	}
	if rel, err := filepath.Rel(mnt, cipherDir); err == nil && !strings.HasPrefix(rel, "..") {
		return withCode(exitUsage, "the cipher directory %s must not be inside the mountpoint %s", cipherDir, mnt)
	}
	return nil
}

// isMountpoint reports whether anything is mounted at path.
func isMountpoint(path string) bool {
	_, err := mountinfo.At(path)
	return err == nil
}

// defaultLogFile is where a background daemon logs unless told otherwise.
func defaultLogFile(mnt string) string {
	sum := sha256.Sum256([]byte(mnt))
	return filepath.Join(control.Dir(), "mount-"+hex.EncodeToString(sum[:6])+".log")
}

// startBackground starts the daemon as a child in its own session, hands
// it the master key through a pipe, and waits until it reports the mount
// ready (or fails, with the child's exit code).
func startBackground(e env, m *mountFlags, cipherDir, mnt string, master []byte) error {
	logPath := m.logFile
	if logPath == "" {
		logPath = defaultLogFile(mnt)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	defer logf.Close()
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
	argv := []string{"mount", "--internal-daemon", "--fast-path", m.fastPath, "--log-file", logPath}
	if m.readOnly {
		argv = append(argv, "--ro")
	}
	if m.allowOther {
		argv = append(argv, "--allow-other")
	}
	if m.debug {
		argv = append(argv, "--debug")
	}
	if m.config != "" {
		argv = append(argv, "--config", m.config)
	}
	if m.insecureKDF {
		argv = append(argv, "--insecure-kdf")
	}
	if m.bpfShadow {
		argv = append(argv, "--bpf-shadow")
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
	_, werr := keyW.Write(master)
	keyW.Close()
	if werr != nil {
		return fmt.Errorf("hand the key to the daemon: %w", werr)
	}
	line, _ := bufio.NewReader(statR).ReadString('\n')
	statR.Close()
	line = strings.TrimSpace(line)
	if line != "ok" {
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
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon reported ready but %s does not answer (see %s)", mnt, logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const fuseSuperMagic = 0x65735546

// runDaemonChild is the background daemon: the key comes on fd 3, the
// outcome of mounting goes to fd 4.
func runDaemonChild(m *mountFlags, mode daemon.Mode, cipherDir, mnt string) error {
	status := os.NewFile(statusFD, "status")
	report := func(err error) {
		if status == nil {
			return
		}
		if err == nil {
			io.WriteString(status, "ok\n")
		} else {
			fmt.Fprintf(status, "error %d %s\n", exitCode(err), strings.ReplaceAll(err.Error(), "\n", " "))
		}
		status.Close()
		status = nil
	}
	keyFile := os.NewFile(keyFD, "key")
	master := make([]byte, crypt.KeyLen)
	_, err := io.ReadFull(keyFile, master)
	keyFile.Close()
	if err != nil {
		report(fmt.Errorf("read the key from the parent: %w", err))
		return err
	}
	cfg, err := loadConfig(configPath(cipherDir, m.config), m.insecureKDF)
	if err != nil {
		wipe(master)
		report(err)
		return err
	}
	o := m.daemonOptions(mode, cipherDir, mnt)
	o.Crypt, o.Master, o.Log = cfg.CryptOptions(), master, newLogger(os.Stderr, m.debug)
	o.LogFile, o.Ready = m.logFile, report
	err = serve(o)
	report(err)
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
		Idle:       m.idle,
	}
}

// serve runs the daemon until the mount ends; SIGINT and SIGTERM unmount
// (one that arrives while mounting does so once the mount is up).
func serve(o daemon.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return daemon.Serve(ctx, o)
}
