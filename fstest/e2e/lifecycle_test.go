package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/control"
)

// The mount lifecycle (issue 14) on real mounts: one daemon per cipher
// tree, an unmount that never aborts by surprise, dead mounts, recovery
// without a config; and the runtime directory and config hand-over of
// issue 13 (5, 7, 9).

// Exit codes of cmd/cryptfs (cryptfs exit-codes).
const (
	codeUsage       = 2
	codeWrongKey    = 10
	codeNoConfig    = 11
	codeBadConfig   = 12
	codeTreeInUse   = 18
	codeBusy        = 19
	codeDeadMount   = 21
	codeConfigValid = 22
)

// runAs runs cryptfs as cli's user with stdin and returns its output and
// exit code.
func runAs(t *testing.T, cli *cryptfstest.CLI, stdin string, args ...string) (string, int) {
	t.Helper()
	res, err := cli.Run(context.Background(), stdin, args...)
	var ee *cryptfstest.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(res.Output), cryptfstest.ExitCode(err)
}

// newDir makes a fresh directory (mode 0755) under a new temporary one.
func newDir(t *testing.T, name string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), name)
	mustDo(t, os.Mkdir(d, 0o755))
	return d
}

// holder starts a shell that runs script as uid (nil: root) and then
// sleeps, keeping whatever the script opened; it waits until the script
// said "ready" and kills the shell when the test ends. A script that
// mentions "ready" prints it itself and keeps running.
func holder(t *testing.T, cred *syscall.Credential, script string) *exec.Cmd {
	t.Helper()
	if !strings.Contains(script, "ready") {
		script += " && echo ready && exec sleep 1000"
	}
	cmd := exec.Command("sh", "-c", script)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.StdoutPipe()
	mustDo(t, err)
	cmd.Stderr = os.Stderr
	mustDo(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("holder %q did not get ready: %q", script, line)
	}
	return cmd
}

// daemonOf returns the status of m's daemon, to tell later (Running)
// whether that very process still runs: the harness's Done is closed by a
// goroutine a moment after the exit, too late for "did unmount wait?".
func daemonOf(t *testing.T, m *cryptfstest.Mount) control.Status {
	t.Helper()
	st, err := m.Status(context.Background())
	mustDo(t, err)
	return st
}

// stop kills a holder and waits for it.
func stop(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

// userSetup is a cipher directory and mountpoints owned by a user, in a
// directory everyone can reach, and a CLI that runs as that user.
type userSetup struct {
	cli    *cryptfstest.CLI
	cred   *syscall.Credential
	cipher string
	dir    func(name string) string // a new directory of the user's
}

const nobody = 65534

// sh runs a shell command as the user (root may not enter the user's
// mounts) and returns its output, failing the test if it fails.
func (u *userSetup) sh(t *testing.T, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid %d: %s: %v\n%s", u.cred.Uid, script, err, b)
	}
	return string(b)
}

func newUserSetup(t *testing.T, uid int, env ...string) *userSetup {
	t.Helper()
	cryptfstest.UserFUSE(t)
	bin := cryptfstest.Binary(t)
	if !runnableByAll(bin) {
		t.Skipf("skipping: %s cannot be run by another user (build it elsewhere or unset CRYPTFS_BIN)", bin)
	}
	base, err := os.MkdirTemp("", "cryptfs-lifecycle-")
	mustDo(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	mustDo(t, os.Chmod(base, 0o755))
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	mk := func(name string) string {
		d := filepath.Join(base, name)
		mustDo(t, os.Mkdir(d, 0o700))
		mustDo(t, os.Chown(d, uid, uid))
		return d
	}
	u := &userSetup{cli: &cryptfstest.CLI{Bin: bin, Cred: cred, Env: env}, cred: cred, dir: mk}
	u.cipher = mk("cipher")
	_, err = u.cli.Init(context.Background(), u.cipher)
	mustDo(t, err)
	return u
}

// TestOneDaemonPerTree: a second mount of a mounted tree is refused
// before the password is read (standard input is empty), naming the
// mount and its daemon's pid; read-only mounts share a tree with each
// other but not with a writer.
func TestOneDaemonPerTree(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Background: true})
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "f"), []byte("first"), 0o644))
	cli := cryptfstest.NewCLI(t)
	want := fmt.Sprintf("already mounted at %s (daemon pid %d)", m.Dir, m.PID())
	for _, extra := range [][]string{nil, {"--ro"}, {"-f"}} {
		p2 := newDir(t, "p2")
		cleanupMount(t, p2)
		args := append(append([]string{"mount", "--insecure-kdf"}, extra...), m.Cipher, p2)
		out, code := runAs(t, cli, "", args...)
		if code != codeTreeInUse || !strings.Contains(out, want) {
			t.Errorf("cryptfs %v while mounted at %s: exit %d, %s; want exit %d saying %q", args, m.Dir, code, out, codeTreeInUse, want)
		}
		if cryptfstest.IsMounted(p2) {
			t.Errorf("the refused mount is mounted at %s", p2)
		}
	}
	if got, err := os.ReadFile(filepath.Join(m.Dir, "f")); err != nil || string(got) != "first" {
		t.Errorf("the first mount after the refusals: %q, %v", got, err)
	}
	cryptfstest.Unmount(t, m)

	// Read-only mounts share; a writer is refused beside them.
	r1 := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: m.Cipher, Background: true, Args: []string{"--ro"}})
	r2 := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: m.Cipher, Background: true, Args: []string{"--ro"}})
	for _, r := range []*cryptfstest.Mount{r1, r2} {
		if got, err := os.ReadFile(filepath.Join(r.Dir, "f")); err != nil || string(got) != "first" {
			t.Errorf("read-only mount %s: %q, %v", r.Dir, got, err)
		}
	}
	p3 := newDir(t, "p3")
	cleanupMount(t, p3)
	out, code := runAs(t, cli, cryptfstest.Password+"\n", "mount", "--insecure-kdf", m.Cipher, p3)
	if code != codeTreeInUse || !strings.Contains(out, r1.Dir) || !strings.Contains(out, r2.Dir) || !strings.Contains(out, "read-only") {
		t.Errorf("a writer beside two readers: exit %d, %s; want exit %d naming both read-only mounts", code, out, codeTreeInUse)
	}
}

// TestOneDaemonPerTreeAcrossUsers: root's mount of a tree a user has
// mounted is refused, and the user's of a tree root has mounted: the lock
// holds across users.
func TestOneDaemonPerTreeAcrossUsers(t *testing.T) {
	u := newUserSetup(t, nobody)
	um, err := cryptfstest.TryMount(t, u.cli, cryptfstest.MountOptions{Cipher: u.cipher, Dir: u.dir("mnt"), Background: true})
	mustDo(t, err)
	rootDir := newDir(t, "root-mnt")
	cleanupMount(t, rootDir)
	out, code := runAs(t, cryptfstest.NewCLI(t), cryptfstest.Password+"\n", "mount", "--insecure-kdf", u.cipher, rootDir)
	want := fmt.Sprintf("already mounted at %s (daemon pid %d)", um.Dir, um.PID())
	if code != codeTreeInUse || !strings.Contains(out, want) {
		t.Errorf("root mounting the user's mounted tree: exit %d, %s; want exit %d saying %q", code, out, codeTreeInUse, want)
	}
	if cryptfstest.IsMounted(rootDir) {
		t.Errorf("root's refused mount is mounted")
	}
	mustDo(t, um.Unmount(context.Background()))

	// The other way round.
	rm := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: u.cipher, Background: true})
	mnt2 := u.dir("mnt2")
	cleanupMount(t, mnt2)
	out, code = runAs(t, u.cli, cryptfstest.Password+"\n", "mount", "--insecure-kdf", u.cipher, mnt2)
	if code != codeTreeInUse || !strings.Contains(out, rm.Dir) {
		t.Errorf("the user mounting a tree root has mounted: exit %d, %s; want exit %d naming %s", code, out, codeTreeInUse, rm.Dir)
	}
}

// TestBusyUnmount: `cryptfs unmount` of a mount in use changes nothing,
// exits 19 and names each process and what it holds (working directory,
// open file, memory map; the command itself when run from inside); a line
// written just before is still there, through the same mount, and after
// the unmount that works once they are gone.
func TestBusyUnmount(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Background: true})
	cli := cryptfstest.NewCLI(t)
	cwd := holder(t, nil, "cd "+m.Dir+" && echo 'a line written just before' >> notes")
	open := holder(t, nil, "exec 3>>"+filepath.Join(m.Dir, "log")+" && echo 'an open file' >&3")
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "mapped"), bytes.Repeat([]byte("m"), 8192), 0o644))
	var mapped *exec.Cmd
	if _, err := exec.LookPath("python3"); err == nil {
		mapped = holder(t, nil, `exec python3 -c 'import mmap,sys,time; f=open(sys.argv[1],"rb"); m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ); f.close(); print("ready", flush=True); time.sleep(1000)' `+filepath.Join(m.Dir, "mapped"))
	}
	out, code := runAs(t, cli, "", "unmount", m.Dir)
	if code != codeBusy {
		t.Fatalf("unmount of a busy mount: exit %d, want %d\n%s", code, codeBusy, out)
	}
	for _, want := range []string{
		fmt.Sprintf("pid %d (sleep): cwd %s", cwd.Process.Pid, m.Dir),
		fmt.Sprintf("pid %d (sleep): open file %s", open.Process.Pid, filepath.Join(m.Dir, "log")),
		"nothing was changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if mapped != nil && !strings.Contains(out, "memory map "+filepath.Join(m.Dir, "mapped")) {
		t.Errorf("the refusal does not name the memory map:\n%s", out)
	}
	// From inside the mount, as a user would type it: cd P && cryptfs unmount P.
	sh := exec.Command("sh", "-c", "cd "+m.Dir+" && exec "+cli.Bin+" unmount "+m.Dir)
	shOut, err := sh.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != codeBusy || !strings.Contains(string(shOut), "(cryptfs, this command): cwd "+m.Dir) {
		t.Errorf("cd P && cryptfs unmount P: %v\n%s", err, shOut)
	}
	select {
	case <-m.Done():
		t.Fatal("the daemon exited after a refused unmount")
	default:
	}
	if got := readFile(t, filepath.Join(m.Dir, "notes")); string(got) != "a line written just before\n" {
		t.Errorf("after the refused unmounts: %q", got)
	}
	for _, c := range []*exec.Cmd{cwd, open, mapped} {
		if c != nil {
			stop(c)
		}
	}
	cryptfstest.Unmount(t, m)
	m2 := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: m.Cipher})
	if got := readFile(t, filepath.Join(m2.Dir, "notes")); string(got) != "a line written just before\n" {
		t.Errorf("after unmount and a new mount: %q", got)
	}
}

// TestBusyUnmountByRoot: root unmounting a user's busy mount is refused
// the same way (it used to kill the daemon: the user's shell saw
// "Transport endpoint is not connected" and lost a line); root's unmount
// of the same mount works once it is free, and waits for the daemon.
func TestBusyUnmountByRoot(t *testing.T) {
	u := newUserSetup(t, nobody)
	m, err := cryptfstest.TryMount(t, u.cli, cryptfstest.MountOptions{Cipher: u.cipher, Dir: u.dir("mnt"), Background: true})
	mustDo(t, err)
	sh := holder(t, u.cred, "cd "+m.Dir+" && echo 'written by the user' >> notes")
	// The user's own unmount (fusermount3) is refused the same way.
	out, code := runAs(t, u.cli, "", "unmount", m.Dir)
	if code != codeBusy || !strings.Contains(out, fmt.Sprintf("pid %d (sleep): cwd %s", sh.Process.Pid, m.Dir)) {
		t.Errorf("the user's unmount of the busy mount: exit %d, want %d naming pid %d\n%s", code, codeBusy, sh.Process.Pid, out)
	}
	out, code = runAs(t, cryptfstest.NewCLI(t), "", "unmount", m.Dir)
	if code != codeBusy || !strings.Contains(out, fmt.Sprintf("pid %d (sleep): cwd %s", sh.Process.Pid, m.Dir)) {
		t.Fatalf("root's unmount of the user's busy mount: exit %d, want %d naming pid %d\n%s", code, codeBusy, sh.Process.Pid, out)
	}
	select {
	case <-m.Done():
		t.Fatal("the user's daemon exited after root's refused unmount")
	default:
	}
	// The user's shell still works in it.
	check := exec.Command("sh", "-c", "cd "+m.Dir+" && cat notes && echo more >> notes")
	check.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
	if b, err := check.CombinedOutput(); err != nil || string(b) != "written by the user\n" {
		t.Errorf("the user after root's refused unmount: %q, %v", b, err)
	}
	stop(sh)
	d := daemonOf(t, m)
	if out, code := runAs(t, cryptfstest.NewCLI(t), "", "unmount", m.Dir); code != 0 {
		t.Fatalf("root's unmount once free: exit %d\n%s", code, out)
	}
	if d.Running() {
		t.Errorf("root's unmount returned before the user's daemon exited")
	}
	m2, err := cryptfstest.TryMount(t, u.cli, cryptfstest.MountOptions{Cipher: u.cipher, Dir: u.dir("mnt2"), Background: true})
	mustDo(t, err)
	if b := u.sh(t, "cat "+filepath.Join(m2.Dir, "notes")); b != "written by the user\nmore\n" {
		t.Errorf("after root's unmount and a new mount: %q", b)
	}
}

// TestUnmountFromAnotherShell: the owner's shells differ (su, sudo, cron,
// ssh: another XDG_RUNTIME_DIR, HOME, TMPDIR); status, stats and unmount
// find the daemon from the mount and unmount cleanly (the daemon exits).
func TestUnmountFromAnotherShell(t *testing.T) {
	u := newUserSetup(t, nobody)
	desktop := u.dir("run-desktop")
	ssh := u.dir("run-ssh")
	u.cli.Env = []string{"XDG_RUNTIME_DIR=" + desktop, "TMPDIR=" + desktop, "HOME=" + desktop}
	m, err := cryptfstest.TryMount(t, u.cli, cryptfstest.MountOptions{Cipher: u.cipher, Dir: u.dir("mnt"), Background: true})
	mustDo(t, err)
	u.sh(t, "echo x > "+filepath.Join(m.Dir, "f"))
	other := *u.cli
	other.Env = []string{"XDG_RUNTIME_DIR=" + ssh, "TMPDIR=" + ssh, "HOME=" + ssh}
	ctx := context.Background()
	st, err := other.Status(ctx, m.Dir)
	if err != nil || st.PID != m.PID() {
		t.Errorf("status from another shell: %+v, %v; want pid %d", st, err, m.PID())
	}
	if _, err := other.Stats(ctx, m.Dir); err != nil {
		t.Errorf("stats from another shell: %v", err)
	}
	d := daemonOf(t, m)
	if out, code := runAs(t, &other, "", "unmount", m.Dir); code != 0 {
		t.Fatalf("unmount from another shell: exit %d\n%s", code, out)
	}
	if d.Running() {
		t.Errorf("the daemon still runs after unmount returned")
	}
	if cryptfstest.IsMounted(m.Dir) {
		t.Errorf("still mounted")
	}
}

// TestDeadMount: after kill -9 of the daemon, status says the mount is
// dead (exit 21) and what to do; unmount removes it without --force, also
// while a process still sits in it.
func TestDeadMount(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Background: true})
			if busy {
				holder(t, nil, "cd "+m.Dir)
			}
			mustDo(t, m.Kill())
			cli := cryptfstest.NewCLI(t)
			out, code := runAs(t, cli, "", "status", m.Dir)
			if code != codeDeadMount || !strings.Contains(out, "dead mount") || !strings.Contains(out, "cryptfs unmount "+m.Dir) {
				t.Errorf("status of a dead mount: exit %d, want %d\n%s", code, codeDeadMount, out)
			}
			if out, code := runAs(t, cli, "", "stats", m.Dir); code != codeDeadMount {
				t.Errorf("stats of a dead mount: exit %d, want %d\n%s", code, codeDeadMount, out)
			}
			out, code = runAs(t, cli, "", "unmount", m.Dir)
			if code != 0 || !strings.Contains(out, "dead mount") {
				t.Errorf("unmount of a dead mount: exit %d\n%s", code, out)
			}
			if cryptfstest.IsMounted(m.Dir) {
				t.Errorf("the dead mount is still there")
			}
			// The tree mounts again.
			m2 := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: m.Cipher})
			cryptfstest.Unmount(t, m2)
		})
	}
}

// TestUnmountWithoutSocket: a daemon whose control socket is gone (its
// runtime directory was cleaned, as logind does at the last logout) is
// still found through the tree's lock: status says it runs and how to
// unmount, and unmount works and waits for it.
func TestUnmountWithoutSocket(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Background: true})
	st, err := m.Status(context.Background())
	mustDo(t, err)
	mustDo(t, os.Remove(fmt.Sprintf("/run/cryptfs/%d.sock", st.Device)))
	cli := cryptfstest.NewCLI(t)
	out, code := runAs(t, cli, "", "status", m.Dir)
	if code == 0 || !strings.Contains(out, fmt.Sprintf("its daemon (pid %d) runs but does not answer", m.PID())) {
		t.Errorf("status without the socket: exit %d\n%s", code, out)
	}
	if out, code := runAs(t, cli, "", "unmount", m.Dir); code != 0 {
		t.Fatalf("unmount without the socket: exit %d\n%s", code, out)
	}
	if st.Running() {
		t.Errorf("unmount returned before the daemon exited")
	}
}

// TestForceUnmount: --force unmounts a busy mount, saying that unwritten
// data is lost; the daemon exits.
func TestForceUnmount(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Background: true})
	holder(t, nil, "cd "+m.Dir)
	out, code := runAs(t, cryptfstest.NewCLI(t), "", "unmount", "--force", m.Dir)
	if code != 0 || !strings.Contains(out, "warning: --force aborts") || !strings.Contains(out, "lost") {
		t.Errorf("unmount --force: exit %d\n%s", code, out)
	}
	if cryptfstest.IsMounted(m.Dir) {
		t.Errorf("still mounted after --force")
	}
	select {
	case <-m.Done():
	case <-time.After(30 * time.Second):
		t.Errorf("the daemon still runs 30 s after --force")
	}
}

// recoveryKeyOf returns the recovery key in init's output.
func recoveryKeyOf(t *testing.T, out string) string {
	t.Helper()
	k := regexp.MustCompile(`(?m)^    ([0-9A-Z]{8}(-[0-9A-Z]{8})+)$`).FindStringSubmatch(out)
	if k == nil {
		t.Fatalf("no recovery key in:\n%s", out)
	}
	return k[1]
}

// TestRecover: with cryptfs.conf deleted or truncated, mount refuses and
// points to recover; mount --recovery-key mounts read-only without a
// config; recover (the recovery key and a new password) writes a config
// with which the data reads back. Another tree's key, and a valid config,
// are refused without writing anything; so is a mounted tree.
func TestRecover(t *testing.T) {
	for _, flags := range [][]string{nil, {"--deterministic-names"}} {
		t.Run(fmt.Sprintf("init%v", flags), func(t *testing.T) { testRecover(t, flags) })
	}
}

func testRecover(t *testing.T, initFlags []string) {
	cryptfstest.RequireFUSE(t)
	cli := cryptfstest.NewCLI(t)
	ctx := context.Background()
	cipher := filepath.Join(t.TempDir(), "cipher")
	res, err := cli.Init(ctx, cipher, initFlags...)
	mustDo(t, err)
	key := recoveryKeyOf(t, string(res.Stdout))
	files := map[string]string{
		"top.txt":                "at the top\n",
		"Documents/a/b/deep.txt": strings.Repeat("deep ", 2000),
		"Documents/" + strings.Repeat("long name ", 20): "a long name",
	}
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	for name, data := range files {
		mustDo(t, os.MkdirAll(filepath.Dir(filepath.Join(m.Dir, name)), 0o755))
		mustDo(t, os.WriteFile(filepath.Join(m.Dir, name), []byte(data), 0o644))
	}
	// Recover refuses while the tree is mounted (and its config is valid).
	if out, code := runAs(t, cli, key+"\nnew\n", "recover", "--insecure-kdf", "--force", cipher); code != codeTreeInUse {
		t.Errorf("recover of a mounted tree: exit %d, want %d\n%s", code, codeTreeInUse, out)
	}
	cryptfstest.Unmount(t, m)
	if out, code := runAs(t, cli, key+"\nnew\n", "recover", "--insecure-kdf", cipher); code != codeConfigValid {
		t.Errorf("recover over a valid config: exit %d, want %d\n%s", code, codeConfigValid, out)
	}

	conf := filepath.Join(cipher, "cryptfs.conf")
	checkData := func(t *testing.T, dir string) {
		t.Helper()
		for name, data := range files {
			if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != data {
				t.Errorf("%s: %d bytes, %v; want the data written", name, len(got), err)
			}
		}
	}
	for _, damage := range []string{"deleted", "truncated"} {
		t.Run(damage, func(t *testing.T) {
			if damage == "deleted" {
				mustDo(t, os.Remove(conf))
			} else {
				mustDo(t, os.Chmod(conf, 0o600))
				mustDo(t, os.Truncate(conf, 0))
			}
			mnt := newDir(t, "mnt")
			cleanupMount(t, mnt)
			out, code := runAs(t, cli, cryptfstest.Password+"\n", "mount", "--insecure-kdf", cipher, mnt)
			if (code != codeNoConfig && code != codeBadConfig) || !strings.Contains(out, "cryptfs recover "+cipher) || strings.Contains(out, "cryptfs init") {
				t.Errorf("mount with the config %s: exit %d\n%s", damage, code, out)
			}
			// The recovery key alone mounts, read-only.
			out, code = runAs(t, cli, key+"\n", "mount", "--insecure-kdf", "--recovery-key", cipher, mnt)
			if code != 0 || !strings.Contains(out, "read-only") {
				t.Fatalf("mount --recovery-key without a config: exit %d\n%s", code, out)
			}
			checkData(t, mnt)
			if err := os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
				t.Errorf("writing through the config-less mount: %v, want EROFS", err)
			}
			if out, code := runAs(t, cli, "", "unmount", mnt); code != 0 {
				t.Fatalf("unmount: %s", out)
			}
			// Another tree's key decrypts nothing here: refused, nothing written.
			other, err := cli.Init(ctx, filepath.Join(t.TempDir(), "other"), initFlags...)
			mustDo(t, err)
			out, code = runAs(t, cli, recoveryKeyOf(t, string(other.Stdout))+"\nnew password\n", "recover", "--insecure-kdf", cipher)
			if code != codeWrongKey || !strings.Contains(out, "not this tree's key") {
				t.Errorf("recover with another tree's key: exit %d, want %d\n%s", code, codeWrongKey, out)
			}
			if st, err := os.Stat(conf); (damage == "deleted" && err == nil) || (damage == "truncated" && (err != nil || st.Size() != 0)) {
				t.Errorf("the wrong key wrote a config: %v %v", st, err)
			}
			// The right key, and a new password.
			out, code = runAs(t, cli, key+"\nnew password\n", "recover", "--insecure-kdf", cipher)
			if code != 0 || !strings.Contains(out, "authenticates") {
				t.Fatalf("recover: exit %d\n%s", code, out)
			}
			nc := cryptfstest.NewCLI(t)
			nc.Password = "new password"
			rm, err := cryptfstest.TryMount(t, nc, cryptfstest.MountOptions{Cipher: cipher})
			mustDo(t, err)
			checkData(t, rm.Dir)
			mustDo(t, os.WriteFile(filepath.Join(rm.Dir, "after"), []byte("recovered"), 0o644))
			mustDo(t, rm.Unmount(ctx))
			if _, err := nc.Fsck(ctx, cipher); err != nil {
				t.Errorf("fsck after recovery: %v", err)
			}
			// Back to the harness password for the next round.
			_, code = runAs(t, cli, key+"\n"+cryptfstest.Password+"\n", "recover", "--insecure-kdf", "--force", cipher)
			if code != 0 {
				t.Fatalf("recover --force: exit %d", code)
			}
		})
	}
}

// TestPlantedRuntimeDir (issue 13.5): without /run/user/<uid>, a user's
// runtime directory is /tmp/cryptfs-<uid>; one another user created first
// (mode 0777, a symlink where the log goes) is refused, and the log is not
// written through the symlink; so is a --log-file that is a symlink.
func TestPlantedRuntimeDir(t *testing.T) {
	const attacker = nobody
	// The victim: a system user (fusermount3 wants a user name) with
	// neither runtime directory yet.
	uid := -1
	for _, name := range []string{"games", "man", "lp", "news", "backup", "list", "irc"} {
		usr, err := user.Lookup(name)
		if err != nil {
			continue
		}
		id, _ := strconv.Atoi(usr.Uid)
		_, err1 := os.Lstat(fmt.Sprintf("/tmp/cryptfs-%d", id))
		_, err2 := os.Lstat(fmt.Sprintf("/run/user/%d", id))
		if id > 0 && err1 != nil && err2 != nil {
			uid = id
			break
		}
	}
	if uid < 0 {
		t.Skip("skipping: no system user without a runtime directory to play the victim")
	}
	tmpDir := fmt.Sprintf("/tmp/cryptfs-%d", uid)
	u := newUserSetup(t, uid)
	mnt := u.dir("mnt")
	cleanupMount(t, mnt)
	// The attacker's directory and the file the log would reach.
	mustDo(t, os.Mkdir(tmpDir, 0o777))
	t.Cleanup(func() { os.RemoveAll(tmpDir) })
	mustDo(t, os.Chmod(tmpDir, 0o777))
	mustDo(t, os.Chown(tmpDir, attacker, attacker))
	// The attacker's file, which the victim could write (as the log).
	loot := filepath.Join(filepath.Dir(u.cipher), "loot")
	mustDo(t, os.WriteFile(loot, nil, 0o666))
	mustDo(t, os.Chmod(loot, 0o666))
	mustDo(t, os.Chown(loot, attacker, attacker))
	// The default log's name depends on the mountpoint; plant it too.
	logName := defaultLogName(mnt)
	mustDo(t, os.Symlink(loot, filepath.Join(tmpDir, logName)))
	mustDo(t, os.Lchown(filepath.Join(tmpDir, logName), attacker, attacker))

	out, code := runAs(t, u.cli, cryptfstest.Password+"\n", "mount", "--insecure-kdf", "--debug", u.cipher, mnt)
	if code == 0 || !strings.Contains(out, "refusing the runtime directory") || !strings.Contains(out, "owned by uid 65534") || !strings.Contains(out, "mode 0777") {
		t.Errorf("mount with a planted runtime directory: exit %d\n%s", code, out)
	}
	if cryptfstest.IsMounted(mnt) {
		t.Errorf("mounted despite the planted runtime directory")
	}
	// The user's own directory, but a symlink where the log goes.
	mustDo(t, os.RemoveAll(tmpDir))
	mustDo(t, os.Mkdir(tmpDir, 0o700))
	mustDo(t, os.Chown(tmpDir, uid, uid))
	mustDo(t, os.Symlink(loot, filepath.Join(tmpDir, logName)))
	out, code = runAs(t, u.cli, cryptfstest.Password+"\n", "mount", "--insecure-kdf", "--debug", u.cipher, mnt)
	if code == 0 || !strings.Contains(out, "symlink") {
		t.Errorf("mount with a symlink in place of the log: exit %d\n%s", code, out)
	}
	out, code = runAs(t, u.cli, cryptfstest.Password+"\n", "mount", "--insecure-kdf", "--log-file", filepath.Join(tmpDir, logName), u.cipher, mnt)
	if code == 0 || !strings.Contains(out, "symlink") {
		t.Errorf("mount with --log-file a symlink: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(loot); len(b) != 0 {
		t.Errorf("the daemon's log reached the planted file:\n%s", b)
	}
	if cryptfstest.IsMounted(mnt) {
		t.Errorf("mounted despite the symlinked log")
	}
	// Once the directory is sound, the mount works and uses it.
	mustDo(t, os.Remove(filepath.Join(tmpDir, logName)))
	m, err := cryptfstest.TryMount(t, u.cli, cryptfstest.MountOptions{Cipher: u.cipher, Dir: mnt, Background: true})
	mustDo(t, err)
	if !strings.HasPrefix(m.LogFile, tmpDir+"/") {
		t.Errorf("log file %s, want one in %s", m.LogFile, tmpDir)
	}
	mustDo(t, m.Unmount(context.Background()))
}

// defaultLogName is the name cmd/cryptfs gives the default log file of a
// mount at mnt: mount-<first 6 bytes of sha256(mountpoint), hex>.log.
func defaultLogName(mnt string) string {
	sum := sha256.Sum256([]byte(mnt))
	return "mount-" + hex.EncodeToString(sum[:6]) + ".log"
}

// syncedBuffer collects a command's output while the test reads it.
type syncedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConfigSwapDuringUnlock (issue 13.7): replacing cryptfs.conf while
// the password is read (here by --extpass, which runs after the config was
// loaded) cannot change the background daemon's flags: it runs with the
// config that was verified, and a new directory gets its own IV. A
// relative --config works in the background as well.
func TestConfigSwapDuringUnlock(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cli := cryptfstest.NewCLI(t)
	ctx := context.Background()
	base := t.TempDir()
	cipher, evil := filepath.Join(base, "cipher"), filepath.Join(base, "evil")
	_, err := cli.Init(ctx, cipher)
	mustDo(t, err)
	_, err = cli.Init(ctx, evil, "--deterministic-names")
	mustDo(t, err)
	swap := fmt.Sprintf("cp %s %s.new && chmod 0400 %s.new && mv -f %s.new %s && echo '%s'",
		filepath.Join(evil, "cryptfs.conf"), filepath.Join(cipher, "x"), filepath.Join(cipher, "x"),
		filepath.Join(cipher, "x"), filepath.Join(cipher, "cryptfs.conf"), cryptfstest.Password)
	mnt := newDir(t, "mnt")
	cleanupMount(t, mnt)
	out, code := runAs(t, cli, "", "mount", "--insecure-kdf", "--extpass", swap, cipher, mnt)
	if code != 0 {
		t.Fatalf("mount: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(cipher, "cryptfs.conf")); !bytes.Contains(b, []byte("deterministic-names")) {
		t.Fatalf("the config was not swapped during the unlock; the test proves nothing")
	}
	mustDo(t, os.Mkdir(filepath.Join(mnt, "sub"), 0o755))
	if out, code := runAs(t, cli, "", "unmount", mnt); code != 0 {
		t.Fatalf("unmount: %s", out)
	}
	var dirs []string
	ents, err := os.ReadDir(cipher)
	mustDo(t, err)
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 1 {
		t.Fatalf("cipher tree directories %v, want the one made", dirs)
	}
	if _, err := os.Stat(filepath.Join(cipher, dirs[0], ".cryptfs.diriv")); err != nil {
		t.Errorf("the new directory has no IV: the daemon ran with the swapped config's flags (%v)", err)
	}

	// A relative --config, from another working directory.
	conf := filepath.Join(base, "kept.conf")
	b, err := os.ReadFile(filepath.Join(evil, "cryptfs.conf"))
	mustDo(t, err)
	mustDo(t, os.WriteFile(conf, b, 0o400))
	cmd := cli.Command(ctx, "mount", "--insecure-kdf", "--config", "kept.conf", evil, mnt)
	cmd.Dir = base
	cmd.Stdin = strings.NewReader(cryptfstest.Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount with a relative --config: %v\n%s", err, out)
	}
	if out, code := runAs(t, cli, "", "unmount", mnt); code != 0 {
		t.Fatalf("unmount: %s", out)
	}
}

// TestMountSaysOneLine: a background mount prints one line saying where,
// which tier and where the log is; -q prints nothing.
func TestMountSaysOneLine(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cli := cryptfstest.NewCLI(t)
	cipher := cryptfstest.Init(t)
	mnt := newDir(t, "mnt")
	cleanupMount(t, mnt)
	logFile := filepath.Join(t.TempDir(), "log")
	res, err := cli.Run(context.Background(), cryptfstest.Password+"\n", "mount", "--insecure-kdf", "--fast-path=kernel-cache", "--log-file", logFile, cipher, mnt)
	mustDo(t, err)
	want := fmt.Sprintf("Mounted %s at %s (fast path: kernel-cache; log: %s)\n", cipher, mnt, logFile)
	if string(res.Stdout) != want || len(res.Stderr) != 0 {
		t.Errorf("mount printed %q on stdout, %q on stderr; want %q", res.Stdout, res.Stderr, want)
	}
	_, code := runAs(t, cli, "", "unmount", mnt)
	if code != 0 {
		t.Fatal("unmount failed")
	}
	res, err = cli.Run(context.Background(), cryptfstest.Password+"\n", "mount", "-q", "--insecure-kdf", cipher, mnt)
	mustDo(t, err)
	if len(res.Output) != 0 {
		t.Errorf("mount -q printed %q", res.Output)
	}
	runAs(t, cli, "", "unmount", mnt)
}

// TestStatsWatch: stats --watch INTERVAL prints the totals, then what
// happened in each interval under a timestamp: a file created shows up
// as one CREATE in one interval, not again in the next.
func TestStatsWatch(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Background: true, FastPath: "kernel-cache"})
	cmd := cryptfstest.NewCLI(t).Command(context.Background(), "stats", "--watch", "300ms", m.Dir)
	var out syncedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	mustDo(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	blocks := func() []string { return strings.Split(out.String(), "\n== ")[1:] }
	waitBlocks := func(n int) {
		deadline := time.Now().Add(20 * time.Second)
		for len(blocks()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d interval blocks after 20 s:\n%s", n, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitBlocks(1)
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "new-file"), []byte("x"), 0o644))
	n := len(blocks())
	waitBlocks(n + 3)
	creates := 0
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \(\+300ms\)\n`)
	for _, b := range blocks() {
		if !stamp.MatchString(b) {
			t.Errorf("block without a timestamp heading: %q", b)
		}
		for _, l := range strings.Split(b, "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "CREATE" {
				if f[1] != "1" {
					t.Errorf("CREATE line %q: want 1 upcall in the interval", l)
				}
				creates++
			}
		}
	}
	if creates != 1 {
		t.Errorf("CREATE in %d intervals, want exactly 1:\n%s", creates, out.String())
	}
}

// TestRootPathsNoSymlinks (issue 13.9): as root, mount and unmount refuse
// a path with a symlink in it (a user who controls the component could
// redirect them) and leave everything as it was.
func TestRootPathsNoSymlinks(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cli := cryptfstest.NewCLI(t)
	cipher := cryptfstest.Init(t)
	base := t.TempDir()
	real := filepath.Join(base, "real")
	mustDo(t, os.MkdirAll(filepath.Join(real, "mnt"), 0o755))
	mustDo(t, os.Symlink(real, filepath.Join(base, "link")))
	viaLink := filepath.Join(base, "link", "mnt")
	cleanupMount(t, filepath.Join(real, "mnt"))
	out, code := runAs(t, cli, cryptfstest.Password+"\n", "mount", "--insecure-kdf", cipher, viaLink)
	if code != codeUsage || !strings.Contains(out, "symlink") {
		t.Errorf("root mount through a symlink: exit %d\n%s", code, out)
	}
	cipherLink := filepath.Join(base, "cipher-link")
	mustDo(t, os.Symlink(cipher, cipherLink))
	out, code = runAs(t, cli, cryptfstest.Password+"\n", "mount", "--insecure-kdf", cipherLink, filepath.Join(real, "mnt"))
	if code != codeUsage || !strings.Contains(out, "symlink") {
		t.Errorf("root mount of a cipher directory through a symlink: exit %d\n%s", code, out)
	}
	if cryptfstest.IsMounted(filepath.Join(real, "mnt")) {
		t.Fatal("mounted through a symlink")
	}
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Dir: filepath.Join(real, "mnt"), Background: true})
	out, code = runAs(t, cli, "", "unmount", viaLink)
	if code != codeUsage || !strings.Contains(out, "symlink") {
		t.Errorf("root unmount through a symlink: exit %d\n%s", code, out)
	}
	if !cryptfstest.IsMounted(m.Dir) {
		t.Errorf("the unmount through a symlink removed the mount")
	}
}
