package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// The system the home-directory tests (home_*_test.go) work on: real
// users (useradd, chpasswd; userdel -r in t.Cleanup), a PAM service of
// their own in /etc/pam.d with pam_unix and pam_cryptfs.so (built from
// internal/pam/module) by absolute path, the registry in /etc/cryptfs/home,
// cipher trees in /home/.cryptfs, session state in /run/cryptfs/sessions.
// Every file, user, mount and process a test creates there is removed in
// t.Cleanup, also when the test fails, and directories it had to create
// are removed when it leaves them empty.

// homeHelperEnv re-executes the test binary as a helper process (often as
// a test user): "treesum DIR" prints treeSum(DIR); "mmap FILE" maps FILE,
// closes it, prints "ready" and holds the mapping until its standard input
// closes.
const homeHelperEnv = "CRYPTFS_E2E_HOME_HELPER"

func init() {
	if v, ok := os.LookupEnv(homeHelperEnv); ok {
		os.Exit(homeHelper(strings.Fields(v)))
	}
}

func homeHelper(args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch {
	case len(args) == 2 && args[0] == "treesum":
		s, err := treeSum(args[1])
		if err != nil {
			return fail(err)
		}
		fmt.Print(s)
		return 0
	case len(args) == 2 && args[0] == "mmap":
		f, err := os.Open(args[1])
		if err != nil {
			return fail(err)
		}
		st, _ := f.Stat()
		mem, err := unix.Mmap(int(f.Fd()), 0, int(max(st.Size(), 1)), unix.PROT_READ, unix.MAP_SHARED)
		f.Close()
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		unix.Munmap(mem)
		return 0
	}
	return fail(fmt.Errorf("unknown helper %q", args))
}

// homeTools skips the test unless everything the home tests need is here:
// root, /dev/fuse, pamtester, useradd, a C compiler and the PAM headers.
func homeTools(t *testing.T) {
	t.Helper()
	cryptfstest.RequireFUSE(t)
	for _, tool := range []string{"pamtester", "useradd", "userdel", "chpasswd", "setpriv", "make", "cc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not found (apt-get install pamtester libpam0g-dev gcc make)", tool)
		}
	}
	if _, err := os.Stat("/usr/include/security/pam_modules.h"); err != nil {
		t.Skip("skipping: the PAM headers are missing (apt-get install libpam0g-dev)")
	}
}

// homeBuild returns the cryptfs binary, copied into a directory of the
// test's that only root may write (the module runs only such binaries),
// and pam_cryptfs.so built from the source tree into the same directory
// (mode 0755), which the test removes when it ends.
func homeBuild(t *testing.T) (bin, module string) {
	t.Helper()
	// Open to all (0755): the users of the test run the binary too.
	dir, err := os.MkdirTemp("", "cryptfs-home-e2e-")
	mustDo(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	mustDo(t, os.Chmod(dir, 0o755))
	data, err := os.ReadFile(cryptfstest.Binary(t))
	mustDo(t, err)
	bin = filepath.Join(dir, "cryptfs")
	mustDo(t, os.WriteFile(bin, data, 0o755))
	src := filepath.Join(cryptfstest.SourceRoot(), "internal", "pam", "module")
	if out, err := exec.Command("make", "-s", "-C", src, "OUT="+dir, "CRYPTFS_BIN="+bin).CombinedOutput(); err != nil {
		t.Fatalf("make -C %s: %v\n%s", src, err, out)
	}
	return bin, filepath.Join(dir, "pam_cryptfs.so")
}

// randName returns prefix and 6 random hex digits.
func randName(prefix string) string {
	var b [3]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// testUser is a user account the test created.
type testUser struct {
	Name     string
	UID, GID int
	Home     string
	Password string
}

// newTestUser creates a user with a home directory (useradd -m) and a
// password, and registers its complete removal: its processes killed, its
// home mount (if any) cut off, userdel -r, and every file cryptfs keeps
// for it (registry entry, cipher tree, migration state, session state and
// logs, the kept plaintext, the runtime directory of its daemon).
func newTestUser(t *testing.T) *testUser {
	t.Helper()
	name := randName("cfst")
	u := &testUser{Name: name, Home: "/home/" + name, Password: "Pw-" + randName("") + "-" + randName("")}
	// Directories the test may create on the way, removed at the end
	// when empty (outermost last).
	for _, d := range systemDirs {
		removeIfCreated(t, d)
	}
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { removeTestUser(t, u) })
	setPassword(t, u, u.Password)
	uid, gid := userIDs(t, name)
	u.UID, u.GID = uid, gid
	return u
}

// setPassword sets u's login password with chpasswd (not through PAM).
func setPassword(t *testing.T, u *testUser, pw string) {
	t.Helper()
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(u.Name + ":" + pw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v: %s", err, out)
	}
	u.Password = pw
}

func userIDs(t *testing.T, name string) (int, int) {
	t.Helper()
	out, err := exec.Command("id", "-u", name).Output()
	mustDo(t, err)
	uid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	mustDo(t, err)
	out, err = exec.Command("id", "-g", name).Output()
	mustDo(t, err)
	gid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	mustDo(t, err)
	return uid, gid
}

// removeTestUser removes everything of u (see newTestUser).
func removeTestUser(t *testing.T, u *testUser) {
	// Processes of the user (its home daemon among them), and the
	// daemon of an interrupted migration (root's, named by its state).
	killUID(u.UID)
	if data, err := os.ReadFile("/home/.cryptfs/.migrations/" + u.Name); err == nil {
		var st struct {
			Staging struct{ PID int } `json:"staging"`
		}
		if json.Unmarshal(data, &st) == nil && st.Staging.PID > 0 {
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.Staging.PID)); bytes.Contains(cmd, []byte("/home/.cryptfs/"+u.Name)) {
				syscall.Kill(st.Staging.PID, syscall.SIGKILL)
			}
		}
	}
	for _, mnt := range []string{u.Home, "/run/cryptfs/migrate/" + u.Name, "/run/cryptfs/migrate/" + u.Name + ".bind"} {
		cutOff(t, mnt)
	}
	if out, err := exec.Command("userdel", "-r", u.Name).CombinedOutput(); err != nil {
		t.Errorf("userdel -r %s: %v: %s", u.Name, err, out)
	}
	for _, p := range []string{
		u.Home, u.Home + ".before-cryptfs",
		"/etc/cryptfs/home/" + u.Name + ".conf",
		"/home/.cryptfs/" + u.Name, "/home/.cryptfs/.migrations/" + u.Name,
		"/run/cryptfs/migrate/" + u.Name, "/run/cryptfs/migrate/" + u.Name + ".log", "/run/cryptfs/migrate/" + u.Name + ".bind",
		fmt.Sprintf("/run/cryptfs/sessions/%d", u.UID), fmt.Sprintf("/run/cryptfs/sessions/%d.log", u.UID),
		fmt.Sprintf("/run/cryptfs/sessions/%d.sock", u.UID),
		fmt.Sprintf("/tmp/cryptfs-%d", u.UID), fmt.Sprintf("/run/user/%d/cryptfs", u.UID),
	} {
		if err := os.RemoveAll(p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// killUID kills every process with uid among its uids and waits for them.
func killUID(uid int) {
	for range 50 {
		pids := uidProcesses(uid)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// uidProcesses lists the processes (not zombies) with uid among their
// real, effective, saved and file system uids.
func uidProcesses(uid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		zombie, match := false, false
		for _, l := range strings.Split(string(data), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "State:" && f[1] == "Z" {
				zombie = true
			}
			if len(f) == 5 && f[0] == "Uid:" {
				for _, s := range f[1:] {
					if n, _ := strconv.Atoi(s); n == uid {
						match = true
					}
				}
			}
		}
		if match && !zombie {
			out = append(out, pid)
		}
	}
	return out
}

// cutOff removes any FUSE mount at mnt: its connection aborted (nothing
// can hang), then detached.
func cutOff(t *testing.T, mnt string) {
	for range 10 {
		m, err := mountinfo.At(mnt)
		if err != nil {
			return
		}
		if m.IsFUSE() {
			mountinfo.AbortFUSE(m.Device())
		}
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("cleanup: detach %s: %v", mnt, err)
			return
		}
	}
}

// removeIfCreated registers the removal of dir at the end of the test if
// it does not exist now and is empty then.
func removeIfCreated(t *testing.T, dir string) {
	if _, err := os.Lstat(dir); err == nil {
		return
	}
	t.Cleanup(func() { os.Remove(dir) })
}

// pamService writes a PAM service of the test's own, /etc/pam.d/NAME:
// pam_unix decides authentication and passwords as Debian's common-*
// files do, and pam_cryptfs.so (by absolute path, running the test's
// binary) is optional in every stack, as the README says. It is removed
// in t.Cleanup.
func pamService(t *testing.T) (service, bin string) {
	t.Helper()
	bin, mod := homeBuild(t)
	name := randName("cryptfs-test-")
	arg := mod + " cryptfs=" + bin
	text := strings.Join([]string{
		"# written by a cryptfs test (fstest/e2e); removed when it ends",
		"auth     [success=1 default=ignore] pam_unix.so nullok",
		"auth     requisite pam_deny.so",
		"auth     required pam_permit.so",
		"auth     optional " + arg,
		"account  required pam_unix.so",
		"session  required pam_unix.so",
		"session  optional " + arg,
		"password [success=1 default=ignore] pam_unix.so yescrypt",
		"password requisite pam_deny.so",
		"password required pam_permit.so",
		"password optional " + arg,
		"",
	}, "\n")
	path := "/etc/pam.d/" + name
	mustDo(t, os.WriteFile(path, []byte(text), 0o644))
	t.Cleanup(func() { os.Remove(path) })
	return name, bin
}

// pamResult is what one pamtester run did.
type pamResult struct {
	Out string
	Err error
}

// pamtester runs `pamtester SERVICE USER ops...` with stdin (each
// password on a line), as root, or under setpriv with setprivArgs when
// they are not nil (e.g. real uid the user's and effective uid root, as
// the set-uid passwd runs).
func pamtester(t *testing.T, service string, u *testUser, stdin string, setprivArgs []string, ops ...string) pamResult {
	t.Helper()
	args := append([]string{"-v", service, u.Name}, ops...)
	var cmd *exec.Cmd
	if setprivArgs != nil {
		cmd = exec.Command("setpriv", append(append(slices.Clone(setprivArgs), "pamtester"), args...)...)
	} else {
		cmd = exec.Command("pamtester", args...)
	}
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 10 * time.Second
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("pamtester %s hangs: %s", strings.Join(ops, " "), out)
	}
	return pamResult{Out: string(out), Err: err}
}

// login runs authenticate and open_session with password, failing the
// test unless both succeed.
func login(t *testing.T, service string, u *testUser, password string) {
	t.Helper()
	if r := pamtester(t, service, u, password+"\n", nil, "authenticate", "open_session"); r.Err != nil {
		t.Fatalf("login of %s: %v\n%s\nhome log:\n%s", u.Name, r.Err, r.Out, homeLog(u))
	}
}

// logout runs close_session, failing the test unless it succeeds.
func logout(t *testing.T, service string, u *testUser) {
	t.Helper()
	if r := pamtester(t, service, u, "", nil, "close_session"); r.Err != nil {
		t.Fatalf("logout of %s: %v\n%s\nhome log:\n%s", u.Name, r.Err, r.Out, homeLog(u))
	}
}

// homeLog returns the home's log (/run/cryptfs/sessions/UID.log).
func homeLog(u *testUser) string {
	data, _ := os.ReadFile(fmt.Sprintf("/run/cryptfs/sessions/%d.log", u.UID))
	return string(data)
}

// asUser runs a shell command as u (no PAM: setpriv), returning its
// output.
func asUser(u *testUser, script string) (string, error) {
	cmd := exec.Command("setpriv", "--reuid", strconv.Itoa(u.UID), "--regid", strconv.Itoa(u.GID), "--init-groups",
		"/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + u.Home}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startAsUser starts a shell command as u in dir and registers its end.
func startAsUser(t *testing.T, u *testUser, dir, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	mustDo(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// homeMounted reports whether a cryptfs mount is at u's home.
func homeMounted(u *testUser) bool {
	m, err := mountinfo.At(u.Home)
	return err == nil && m.FSType == "fuse.cryptfs"
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// migrateHome runs `cryptfs home migrate` for u with its login password
// and extra flags, failing the test if it fails.
func migrateHome(t *testing.T, bin string, u *testUser, flags ...string) string {
	t.Helper()
	args := append(append([]string{"home", "migrate"}, flags...), u.Name)
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(u.Password + "\n" + u.Password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cryptfs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fillHome gives u's home a little of everything a home holds: nested
// directories, files of several sizes (one sparse), a symlink, a hard
// link, a fifo, an extended attribute, unusual modes and old times, and
// a directory and a file of root's. It returns a marker string that each
// file's content holds (for ciphertext checks).
func fillHome(t *testing.T, u *testUser) string {
	t.Helper()
	marker := "PLAINTEXT-" + randName("")
	script := `set -e
cd "$HOME"
mkdir -p Documents/letters .config/app
printf '%s letter one\n' "$M" > Documents/letters/one.txt
printf '%s config\n' "$M" > .config/app/settings.ini
head -c 300000 /dev/urandom > Documents/random.bin
printf '%s' "$M" >> Documents/random.bin
truncate -s 5M Documents/sparse.img
printf '%s' "$M" | dd of=Documents/sparse.img bs=1 seek=4000000 conv=notrunc status=none
ln -s Documents/letters/one.txt shortcut
ln Documents/random.bin hardlink.bin
mkfifo pipe
chmod 0600 Documents/letters/one.txt
chmod 0750 Documents
touch -h -d '2003-04-05 06:07:08.123456789' Documents/letters/one.txt shortcut
touch -d '2010-01-01 00:00:00' Documents/letters
`
	out, err := asUserEnv(u, script, "M="+marker)
	if err != nil {
		t.Fatalf("filling %s: %v\n%s", u.Home, err, out)
	}
	mustDo(t, unix.Setxattr(filepath.Join(u.Home, "Documents/letters/one.txt"), "user.tag", []byte("letter "+marker), 0))
	root := filepath.Join(u.Home, "root-owned")
	mustDo(t, os.Mkdir(root, 0o755))
	mustDo(t, os.WriteFile(filepath.Join(root, "notes.txt"), []byte(marker+" root's file\n"), 0o644))
	return marker
}

func asUserEnv(u *testUser, script string, env ...string) (string, error) {
	cmd := exec.Command("setpriv", "--reuid", strconv.Itoa(u.UID), "--regid", strconv.Itoa(u.GID), "--init-groups",
		"/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + u.Home}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// treeSumAs runs treeSum(dir) in a helper process as uid/gid (the user's
// own mount refuses root: no allow_other).
func treeSumAs(t *testing.T, dir string, uid, gid int) string {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{homeHelperEnv + "=treesum " + dir}
	cmd.Dir = "/"
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("treesum %s as uid %d: %v: %s", dir, uid, err, stderr.String())
	}
	return string(out)
}

// treeSum describes a tree canonically, one line per entry in path
// order: type, mode, owner, size (regular files), modification and access
// times (taken before anything is read; see below for the exceptions),
// symlink target, device, user.*
// extended attributes, hard-link group (the first path of the inode) and
// the SHA-256 of the content. Reading uses O_NOATIME where allowed.
func treeSum(root string) (string, error) {
	var b strings.Builder
	first := map[uint64]string{}
	var walk func(rel string) error
	walk = func(rel string) error {
		path := filepath.Join(root, rel)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		typ := st.Mode & unix.S_IFMT
		fmt.Fprintf(&b, "%s type=%o mode=%04o owner=%d:%d mtime=%d.%09d", rel, typ, st.Mode&0o7777,
			st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec)
		// Access times: not of symlinks (cryptfs reads the link to
		// report its size, which moves it), nor of a further name of a
		// hard-linked file (reading the first name moved it: a FUSE read
		// does not honour O_NOATIME).
		_, again := first[st.Ino]
		if typ != unix.S_IFLNK && !(typ == unix.S_IFREG && st.Nlink > 1 && again) {
			fmt.Fprintf(&b, " atime=%d.%09d", st.Atim.Sec, st.Atim.Nsec)
		}
		if typ != unix.S_IFLNK && rel != "." {
			xs, err := readUserXattrs(path)
			if err != nil {
				return err
			}
			for _, x := range xs {
				fmt.Fprintf(&b, " xattr:%s", x)
			}
		}
		switch typ {
		case unix.S_IFREG:
			fmt.Fprintf(&b, " size=%d", st.Size)
			if st.Nlink > 1 {
				if f, ok := first[st.Ino]; ok {
					fmt.Fprintf(&b, " link-of=%s\n", f)
					return nil
				}
				first[st.Ino] = rel
			}
			sum, err := fileSum(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " sha256=%s", sum)
		case unix.S_IFLNK:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " target=%q", target)
		case unix.S_IFCHR, unix.S_IFBLK:
			fmt.Fprintf(&b, " rdev=%d", st.Rdev)
		}
		b.WriteByte('\n')
		if typ != unix.S_IFDIR {
			return nil
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOATIME|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EPERM) {
			fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		d := os.NewFile(uintptr(fd), path)
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return err
		}
		slices.Sort(names)
		for _, n := range names {
			if err := walk(filepath.Join(rel, n)); err != nil {
				return err
			}
		}
		return nil
	}
	err := walk(".")
	return b.String(), err
}

func fileSum(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOATIME|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// userXattrs lists a file's user.* attributes as name=hex(value), sorted.
func readUserXattrs(path string) ([]string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", path, err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(path, name, v)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		out = append(out, name+"="+hex.EncodeToString(v[:m]))
	}
	slices.Sort(out)
	return out, nil
}

// syslogCapture listens on /dev/log for the test when no syslog daemon
// does (it is removed at the end): the PAM module's messages arrive
// there. It returns nil when /dev/log exists already (a real syslog owns
// it; the test then checks the home log only).
type syslogCapture struct {
	mu   sync.Mutex
	msgs []string
}

func captureSyslog(t *testing.T) *syslogCapture {
	t.Helper()
	if _, err := os.Lstat("/dev/log"); err == nil {
		t.Log("/dev/log exists: the module's syslog lines are not captured (the home log is checked instead)")
		return nil
	}
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "/dev/log", Net: "unixgram"})
	if err != nil {
		t.Logf("cannot listen on /dev/log: %v", err)
		return nil
	}
	c := &syslogCapture{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 8192)
		for {
			n, _, err := l.ReadFromUnix(buf)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, string(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		os.Remove("/dev/log")
	})
	return c
}

// All returns every message so far, one per line.
func (c *syslogCapture) All() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.msgs, "\n")
}
