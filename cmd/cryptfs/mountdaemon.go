package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/daemon"
)

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
	for _, f := range []struct {
		on   bool
		flag string
	}{
		{m.readOnly, "--ro"}, {m.allowOther, "--allow-other"}, {m.debug, "--debug"},
		{m.bpfShadow, "--bpf-shadow"}, {m.reverse, "--reverse"}, {m.shared, "--shared-storage"},
	} {
		if f.on {
			argv = append(argv, f.flag)
		}
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

// readHandoff reads what a parent hands a child process through a pipe:
// the master key, then at most maxHandoff bytes of JSON into v (unknown
// fields refused). On error the key read so far is wiped and nil returned.
func readHandoff(r io.Reader, v any) ([]byte, error) {
	master := make([]byte, crypt.KeyLen)
	if _, err := io.ReadFull(r, master); err != nil {
		wipe(master)
		return nil, err
	}
	rest, err := io.ReadAll(io.LimitReader(r, maxHandoff))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(rest))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		wipe(master)
		return nil, err
	}
	return master, nil
}

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
	var opts crypt.Options
	master, err := readHandoff(keyFile, &opts)
	keyFile.Close()
	if err != nil {
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
