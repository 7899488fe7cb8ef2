package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// exitSkip is the exit status when the kernel has no fast-path hook.
const exitSkip = 77

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve":
			if len(os.Args) != 3 {
				fmt.Fprintln(os.Stderr, "usage: hooktest serve MOUNTPOINT")
				os.Exit(2)
			}
			if err := serve(os.Args[2]); err != nil {
				fmt.Fprintf(os.Stderr, "hooktest serve: %v\n", err)
				os.Exit(1)
			}
			return
		case "tryattach":
			tryAttach()
			return
		default:
			fmt.Fprintln(os.Stderr, "usage: hooktest [serve MOUNTPOINT | tryattach]")
			os.Exit(2)
		}
	}
	os.Exit(run())
}

// checker prints one line per check and counts the results.
type checker struct{ passed, failed int }

func (c *checker) check(name string, ok bool, format string, args ...any) bool {
	if ok {
		c.passed++
		fmt.Printf("PASS: %s\n", name)
	} else {
		c.failed++
		fmt.Printf("FAIL: %s: %s\n", name, fmt.Sprintf(format, args...))
	}
	return ok
}

// daemon is a running child "hooktest serve".
type daemon struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	progID ebpf.ProgramID
	exited chan error
}

func startDaemon(mnt string) (*daemon, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find myself: %w", err)
	}
	d := &daemon{cmd: exec.Command(self, "serve", mnt), exited: make(chan error, 1)}
	d.cmd.Stderr = os.Stderr
	if d.in, err = d.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("daemon stdin: %w", err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("daemon stdout: %w", err)
	}
	d.out = bufio.NewReader(stdout)
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	line, err := d.readLine(30 * time.Second)
	if err != nil {
		_ = d.cmd.Process.Kill()
		return nil, fmt.Errorf("daemon did not get ready: %w", err)
	}
	id, ok := strings.CutPrefix(line, "ready ")
	n, err := strconv.ParseUint(id, 10, 32)
	if !ok || err != nil {
		_ = d.cmd.Process.Kill()
		return nil, fmt.Errorf("daemon said %q instead of ready", line)
	}
	d.progID = ebpf.ProgramID(n)
	go func() { d.exited <- d.cmd.Wait() }()
	return d, nil
}

// readLine reads one line of the daemon's stdout, within timeout.
func (d *daemon) readLine(timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := d.out.ReadString('\n')
		ch <- result{strings.TrimSpace(l), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.line, fmt.Errorf("read daemon output: %w", r.err)
		}
		return r.line, nil
	case <-time.After(timeout):
		return "", errors.New("timeout reading daemon output")
	}
}

// do sends one command and returns the daemon's one-line reply.
func (d *daemon) do(cmd string) string {
	if _, err := fmt.Fprintln(d.in, cmd); err != nil {
		return "error " + err.Error()
	}
	line, err := d.readLine(30 * time.Second)
	if err != nil {
		return "error " + err.Error()
	}
	return line
}

func (d *daemon) counts() map[string]int {
	m := make(map[string]int)
	if err := json.Unmarshal([]byte(d.do("counts")), &m); err != nil {
		fmt.Printf("hooktest: bad counts reply: %v\n", err)
	}
	return m
}

func (d *daemon) stats() progStats {
	var s progStats
	if err := json.Unmarshal([]byte(d.do("stats")), &s); err != nil {
		fmt.Printf("hooktest: bad stats reply: %v\n", err)
	}
	return s
}

// wait waits for the daemon to exit, within timeout.
func (d *daemon) wait(timeout time.Duration) error {
	select {
	case err := <-d.exited:
		return err
	case <-time.After(timeout):
		return errors.New("daemon still running")
	}
}

// statSize returns the size stat(2) reports for path.
func statSize(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// getxattr reads name of path into a buffer of size bytes (0: size query).
func getxattr(path, name string, size int) ([]byte, int, error) {
	buf := make([]byte, size)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return nil, 0, err
	}
	if size == 0 {
		return nil, n, nil
	}
	return buf[:n], n, nil
}

// delta sums after[k]-before[k] over the keys starting with prefix.
func delta(before, after map[string]int, prefix string) int {
	n := 0
	for k, v := range after {
		if strings.HasPrefix(k, prefix) {
			n += v - before[k]
		}
	}
	return n
}

// progGone waits until no program has the given ID, i.e. every reference
// (the daemon's and the kernel's) was dropped.
func progGone(id ebpf.ProgramID, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		if err == nil {
			p.Close()
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var kernelProblem = regexp.MustCompile(`BUG:|WARNING:|Oops|Call Trace|general protection|suspicious RCU|refcount_t:`)

// kernelLogProblems returns the kernel log lines that show a problem.
func kernelLogProblems() ([]string, error) {
	buf := make([]byte, 1<<20)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return nil, fmt.Errorf("read kernel log: %w", err)
	}
	var bad []string
	for _, l := range bytes.Split(buf[:n], []byte("\n")) {
		if kernelProblem.Match(l) {
			bad = append(bad, string(l))
		}
	}
	return bad, nil
}

func run() int {
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: hooktest needs root (mount, BPF)")
		return exitSkip
	}
	mnt, err := os.MkdirTemp("", "hooktest-mnt")
	if err != nil {
		fmt.Printf("FAIL: setup: %v\n", err)
		return 1
	}
	d, err := startDaemon(mnt)
	if err != nil {
		fmt.Printf("FAIL: setup: %v\n", err)
		return 1
	}
	if r := d.do("detach"); r == "ENOTTY" {
		fmt.Println("SKIP: this kernel has no FUSE fast-path hook (FUSE_DEV_IOC_FASTPATH_ATTACH: ENOTTY); boot the vmtest kernel")
		_ = unix.Unmount(mnt, 0)
		return exitSkip
	}

	c := &checker{}
	file := filepath.Join(mnt, "file")
	ghost := filepath.Join(mnt, "ghost")
	other := filepath.Join(mnt, "other")

	// Baseline: without a program the daemon answers.
	before := d.counts()
	size, err := statSize(file)
	after := d.counts()
	c.check("baseline: the daemon answers stat without a program",
		err == nil && size == daemonFileSize && delta(before, after, "LOOKUP 1/file")+delta(before, after, "GETATTR 2") > 0,
		"size %d err %v, daemon requests %v", size, err, after)

	// (a) The program answers.
	c.check("(a) attach the fast-path program", d.do("attach") == "ok", "attach failed")
	before = d.counts()
	statsBefore := d.stats()
	for i := 0; i < 3; i++ {
		size, err = statSize(file)
		c.check(fmt.Sprintf("(a) stat #%d gets the program's GETATTR/LOOKUP answer", i+1),
			err == nil && size == programFileSize, "size %d err %v, want %d", size, err, programFileSize)
	}
	_, err = statSize(ghost)
	c.check("(a) served negative LOOKUP gives ENOENT for a name the daemon knows",
		errors.Is(err, unix.ENOENT), "stat ghost: %v", err)
	val, _, err := getxattr(file, xattrFast, 64)
	c.check("(a) served GETXATTR returns the program's value",
		err == nil && bytes.Equal(val, programFastValue), "value %q err %v", val, err)
	_, n, err := getxattr(file, xattrFast, 0)
	c.check("(a) served GETXATTR size query returns the program's length",
		err == nil && n == len(programFastValue), "size %d err %v", n, err)
	_, _, err = getxattr(file, xattrFast, 2)
	c.check("(a) served GETXATTR into a short buffer gives ERANGE",
		errors.Is(err, unix.ERANGE), "err %v", err)
	_, _, err = getxattr(file, xattrCap, 64)
	c.check("(a) served negative GETXATTR gives ENODATA", errors.Is(err, unix.ENODATA), "err %v", err)
	beforeOther := d.counts()
	size, err = statSize(other)
	afterOther := d.counts()
	c.check("(a) names the program does not know still reach the daemon",
		err == nil && size == daemonOtherSize && delta(beforeOther, afterOther, "LOOKUP 1/other") > 0,
		"size %d err %v, daemon LOOKUPs of other %d", size, err, delta(beforeOther, afterOther, "LOOKUP 1/other"))

	// (b) The daemon saw none of the served requests.
	after = d.counts()
	for _, k := range []string{"LOOKUP 1/file", "LOOKUP 1/ghost", "GETATTR 2", "GETXATTR 2/"} {
		c.check(fmt.Sprintf("(b) the daemon received no %s request while attached", strings.TrimSuffix(k, "/")),
			delta(before, after, k) == 0, "it received %d", delta(before, after, k))
	}
	statsAfter := d.stats()
	for _, op := range []fuseop.Opcode{fuseop.Lookup, fuseop.Getattr, fuseop.Getxattr} {
		name := op.String()
		c.check(fmt.Sprintf("(b) the program counted its %s answers", name),
			statsAfter.Hits[name] > statsBefore.Hits[name], "hits %d -> %d", statsBefore.Hits[name], statsAfter.Hits[name])
	}
	c.check("(b) served positive LOOKUPs are counted for FORGET",
		statsAfter.ServedLookups > statsBefore.ServedLookups, "served_lookups %d -> %d", statsBefore.ServedLookups, statsAfter.ServedLookups)

	// (c) Detach restores the daemon's answers.
	c.check("(c) detach", d.do("detach") == "ok", "detach failed")
	before = d.counts()
	size, err = statSize(file)
	c.check("(c) stat gets the daemon's answer after detach", err == nil && size == daemonFileSize, "size %d err %v", size, err)
	size, err = statSize(ghost)
	c.check("(c) LOOKUP goes to the daemon after detach", err == nil && size == daemonGhostSize, "size %d err %v", size, err)
	val, _, err = getxattr(file, xattrFast, 64)
	c.check("(c) GETXATTR goes to the daemon after detach", err == nil && bytes.Equal(val, daemonFastValue), "value %q err %v", val, err)
	after = d.counts()
	c.check("(c) the daemon receives LOOKUP, GETATTR and GETXATTR again",
		delta(before, after, "LOOKUP 1/file") > 0 && delta(before, after, "GETATTR 2") > 0 && delta(before, after, "GETXATTR 2/") > 0,
		"daemon requests %v -> %v", before, after)

	// (d) The ioctl refuses what it must refuse.
	for _, tc := range []struct{ kind, want, what string }{
		{"socketfilter", "EINVAL", "a program of the wrong type"},
		{"bigctx", "EINVAL", "a program reading past the context"},
		{"notbpf", "EINVAL", "an fd that is not a BPF program"},
		{"badfd", "EBADF", "a closed fd"},
		{"wholectx", "ok", "(accepts) a program touching exactly the whole context"},
	} {
		r := d.do("bad " + tc.kind)
		c.check("(d) the ioctl refuses "+tc.what+" with "+tc.want, r == tc.want, "got %s", r)
	}
	r := d.do("bad nonsleepable")
	c.check("(d) a non-sleepable syscall program is refused (verifier on 6.1, else the ioctl with EINVAL)",
		r == "loadfail" || r == "EINVAL", "got %s", r)
	r = d.do("nobody")
	c.check("(d) an unprivileged caller is refused with EPERM", r == "EPERM", "got %s", r)
	size, err = statSize(file)
	c.check("(d) refused attaches leave the connection without a program", err == nil && size == daemonFileSize, "size %d err %v", size, err)

	// (e1) Unmount with the program attached.
	c.check("(e) attach before unmount", d.do("attach") == "ok", "attach failed")
	size, err = statSize(file)
	c.check("(e) the program answers before unmount", err == nil && size == programFileSize, "size %d err %v", size, err)
	err = unix.Unmount(mnt, 0)
	c.check("(e) unmount with a program attached", err == nil, "%v", err)
	_ = d.in.Close()
	err = d.wait(10 * time.Second)
	c.check("(e) the daemon exits cleanly after unmount", err == nil, "%v", err)
	c.check("(e) the kernel released the program after unmount", progGone(d.progID, 5*time.Second),
		"program %d still exists", d.progID)

	// (e2) Kill the daemon with the program attached: the connection is
	// aborted and must not answer from the program any more.
	d, err = startDaemon(mnt)
	if !c.check("(e) second daemon starts", err == nil, "%v", err) {
		return finish(c)
	}
	c.check("(e) attach before killing the daemon", d.do("attach") == "ok", "attach failed")
	size, err = statSize(file)
	c.check("(e) the program answers before the kill", err == nil && size == programFileSize, "size %d err %v", size, err)
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.wait(10 * time.Second)
	_, err = statSize(file)
	c.check("(e) an aborted connection answers ENOTCONN, not from the program",
		errors.Is(err, unix.ENOTCONN), "stat: %v", err)
	c.check("(e) abort released the program while still mounted", progGone(d.progID, 5*time.Second),
		"program %d still exists", d.progID)
	err = unix.Unmount(mnt, 0)
	c.check("(e) unmount after abort", err == nil, "%v", err)

	bad, err := kernelLogProblems()
	c.check("(e) the kernel log shows no oops, BUG or WARNING", err == nil && len(bad) == 0, "%v %q", err, bad)
	return finish(c)
}

func finish(c *checker) int {
	fmt.Printf("hooktest: %d passed, %d failed\n", c.passed, c.failed)
	if c.failed > 0 {
		return 1
	}
	return 0
}
