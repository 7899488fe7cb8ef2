package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Encrypted home directories through a real PAM stack: pamtester against a
// service of the test's own (pam_unix and pam_cryptfs.so), real users, a
// home moved in with cryptfs home migrate. See home_helpers_test.go for
// what the tests touch on the system and how it is put back.

// TestHomePAMLoginLogout: login with the right password mounts the home
// (a daemon running as the user) and the files read back as they were; a
// second session keeps it mounted when the first closes; the last close
// unmounts, the daemon exits, the mountpoint shows only what it showed
// before (nothing) and the cipher tree only ciphertext. The module's
// messages reach syslog.
func TestHomePAMLoginLogout(t *testing.T) {
	homeTools(t)
	service, bin := pamService(t)
	slog := captureSyslog(t)
	u := newTestUser(t)
	marker := fillHome(t, u)
	before := treeSumAs(t, u.Home, 0, 0)
	migrateHome(t, bin, u)

	cipher := "/home/.cryptfs/" + u.Name
	locked := listNames(t, u.Home)
	if len(locked) != 0 {
		t.Errorf("the locked home shows %v, want nothing", locked)
	}
	checkCiphertext(t, cipher, marker, before)

	login(t, service, u, u.Password)
	if !homeMounted(u) {
		t.Fatalf("not mounted after login\n%s", homeLog(u))
	}
	daemons := homeDaemons(u)
	if len(daemons) != 1 {
		t.Fatalf("want one home daemon running as uid %d, found %v", u.UID, daemons)
	}
	if got := treeSumAs(t, u.Home, u.UID, u.GID); withoutRoot(got) != withoutRoot(before) {
		t.Errorf("the mounted home differs from the home before the migration:\n%s", lineDiff(withoutRoot(got), withoutRoot(before)))
	}

	// A second session; the first one's close keeps the home.
	login(t, service, u, u.Password)
	if d := homeDaemons(u); len(d) != 1 || d[0] != daemons[0] {
		t.Errorf("the second login changed the daemon: %v, want %v", d, daemons)
	}
	logout(t, service, u)
	if !homeMounted(u) {
		t.Fatalf("the first of two sessions closed and the home was unmounted\n%s", homeLog(u))
	}
	if out, err := asUser(u, "cat "+u.Home+"/Documents/letters/one.txt"); err != nil || !strings.Contains(out, marker) {
		t.Errorf("reading the home with one session left: %v: %q", err, out)
	}

	logout(t, service, u)
	if homeMounted(u) {
		t.Fatalf("still mounted after the last session closed\n%s", homeLog(u))
	}
	if !waitFor(10*time.Second, func() bool { return len(homeDaemons(u)) == 0 }) {
		t.Errorf("the home daemon still runs after the last logout: %v", homeDaemons(u))
	}
	if got := listNames(t, u.Home); len(got) != 0 {
		t.Errorf("after logout the mountpoint shows %v, want nothing (as before the login)", got)
	}
	checkCiphertext(t, cipher, marker, before)

	log := homeLog(u)
	for _, want := range []string{"mounted the encrypted home", "2 sessions open", "1 sessions still open", "the last session closed; unmounted"} {
		if !strings.Contains(log, want) {
			t.Errorf("the home log lacks %q:\n%s", want, log)
		}
	}
	if slog != nil {
		all := slog.All()
		if !strings.Contains(all, "pam_cryptfs") || !strings.Contains(all, "mounted the encrypted home "+u.Home) {
			t.Errorf("syslog did not get the module's messages:\n%s", all)
		}
	}
	noSecrets(t, u, slog, u.Password)
}

// TestHomePAMWrongPassword: a wrong password fails authentication for a
// user with an encrypted home and mounts nothing; a user without one logs
// in and out through the same stack as if the module were not there; a
// login password changed behind cryptfs's back (chpasswd) still logs in,
// without the home, and the log and the user are told why. No password
// is ever logged.
func TestHomePAMWrongPassword(t *testing.T) {
	homeTools(t)
	service, bin := pamService(t)
	slog := captureSyslog(t)
	u := newTestUser(t)
	fillHome(t, u)
	migrateHome(t, bin, u)
	plain := newTestUser(t)

	wrong := "wrong-" + randName("")
	r := pamtester(t, service, u, wrong+"\n", nil, "authenticate", "open_session")
	if r.Err == nil {
		t.Fatalf("authentication with a wrong password succeeded:\n%s", r.Out)
	}
	if homeMounted(u) {
		t.Errorf("a wrong password mounted the home")
	}

	// The user without an encrypted home: the module does nothing.
	login(t, service, plain, plain.Password)
	logout(t, service, plain)
	if _, err := os.Stat(fmt.Sprintf("/run/cryptfs/sessions/%d", plain.UID)); err == nil {
		t.Errorf("the module kept session state for a user without an encrypted home")
	}
	if p := uidProcesses(plain.UID); len(p) != 0 {
		t.Errorf("processes of the user without an encrypted home after logout: %v", p)
	}
	if r := pamtester(t, service, plain, wrong+"\n", nil, "authenticate"); r.Err == nil {
		t.Errorf("a wrong password authenticated the user without an encrypted home")
	}

	// The login password changed without PAM: login works, the home stays
	// locked, and the log and the user hear why.
	old := u.Password
	setPassword(t, u, "Changed-"+randName(""))
	r = pamtester(t, service, u, u.Password+"\n", nil, "authenticate", "open_session")
	if r.Err != nil {
		t.Fatalf("a login password out of sync with the home blocked the login: %v\n%s", r.Err, r.Out)
	}
	if homeMounted(u) {
		t.Errorf("the home was mounted with a password that should not open it")
	}
	const why = "the login password does not unlock the encrypted home"
	if !strings.Contains(homeLog(u), why) {
		t.Errorf("the home log does not say why the home stayed locked:\n%s", homeLog(u))
	}
	if !strings.Contains(r.Out, "cryptfs: ") || !strings.Contains(r.Out, why) {
		t.Errorf("the user was not told why the home stayed locked:\n%s", r.Out)
	}
	logout(t, service, u)
	noSecrets(t, u, slog, wrong, old, u.Password, plain.Password)
}

// TestHomePAMPasswd: a password change through PAM re-wraps the home's
// key: by the user (the old password from PAM), and by root without the
// old password while the home is mounted (through the running daemon);
// while it is not mounted, the log says what the user runs, and that
// command works.
func TestHomePAMPasswd(t *testing.T) {
	homeTools(t)
	service, bin := pamService(t)
	u := newTestUser(t)
	marker := fillHome(t, u)
	migrateHome(t, bin, u)
	cipher := "/home/.cryptfs/" + u.Name
	readBack := func(what string) {
		t.Helper()
		login(t, service, u, u.Password)
		if !homeMounted(u) {
			t.Fatalf("%s: the new password did not mount the home\n%s", what, homeLog(u))
		}
		if out, err := asUser(u, "cat "+u.Home+"/Documents/letters/one.txt"); err != nil || !strings.Contains(out, marker) {
			t.Errorf("%s: reading the home: %v: %q", what, err, out)
		}
		logout(t, service, u)
	}

	// The user runs passwd (set-uid root: real uid the user's).
	next := "Next-" + randName("")
	setpriv := []string{"--ruid", strconv.Itoa(u.UID), "--euid", "0"}
	r := pamtester(t, service, u, u.Password+"\n"+next+"\n"+next+"\n", setpriv, "chauthtok")
	if r.Err != nil {
		t.Fatalf("chauthtok by the user: %v\n%s\n%s", r.Err, r.Out, homeLog(u))
	}
	u.Password = next
	if !strings.Contains(homeLog(u), "re-wrapped the key") {
		t.Errorf("no re-wrap in the home log:\n%s", homeLog(u))
	}
	if _, err := os.Lstat(filepath.Join(cipher, "cryptfs.conf.bak")); err == nil {
		t.Errorf("a config backup that opens with the old password stayed")
	}
	readBack("after the user's passwd")

	// Root resets it while the home is mounted.
	login(t, service, u, u.Password)
	reset := "Reset-" + randName("")
	if r := pamtester(t, service, u, reset+"\n"+reset+"\n", nil, "chauthtok"); r.Err != nil {
		t.Fatalf("chauthtok by root: %v\n%s", r.Err, r.Out)
	}
	u.Password = reset
	if !strings.Contains(homeLog(u), "through its running daemon") {
		t.Errorf("no re-wrap through the daemon in the home log:\n%s", homeLog(u))
	}
	logout(t, service, u)
	readBack("after root's passwd while mounted")

	// Root resets it while the home is not mounted: the log says what the
	// user runs, and running it fixes the login.
	previous := u.Password
	lost := "Lost-" + randName("")
	if r := pamtester(t, service, u, lost+"\n"+lost+"\n", nil, "chauthtok"); r.Err != nil {
		t.Fatalf("chauthtok by root: %v\n%s", r.Err, r.Out)
	}
	u.Password = lost
	command := "cryptfs passwd " + cipher
	if !strings.Contains(homeLog(u), command) {
		t.Fatalf("the home log does not tell the user to run %q:\n%s", command, homeLog(u))
	}
	login(t, service, u, u.Password)
	if homeMounted(u) {
		t.Errorf("mounted with a password the key was never wrapped under")
	}
	logout(t, service, u)
	if out, err := asUserEnv(u, `printf '%s\n%s\n' "$OLD" "$NEW" | `+bin+` passwd `+cipher, "OLD="+previous, "NEW="+u.Password); err != nil {
		t.Fatalf("%s as the user: %v\n%s", command, err, out)
	}
	readBack("after the user ran " + command)
}

// TestHomePAMBusyLogout: the last close of a home in use (a process of
// the user's still in it) does not unmount it, lazily or otherwise: the
// home stays mounted and the log names the process; once it exits the
// home is unmounted in the background. A session that opens meanwhile
// keeps it.
func TestHomePAMBusyLogout(t *testing.T) {
	homeTools(t)
	service, bin := pamService(t)
	u := newTestUser(t)
	fillHome(t, u)
	migrateHome(t, bin, u)

	login(t, service, u, u.Password)
	holder := startAsUser(t, u, u.Home, "exec sleep 300")
	logout(t, service, u)
	if !homeMounted(u) {
		t.Fatalf("the home was unmounted although a process has its working directory in it\n%s", homeLog(u))
	}
	want := fmt.Sprintf("pid %d (sleep, uid %d): cwd", holder.Process.Pid, u.UID)
	if log := homeLog(u); !strings.Contains(log, "still in use") || !strings.Contains(log, want) {
		t.Errorf("the home log does not name the holder (%q):\n%s", want, log)
	}
	if out, err := asUser(u, "ls "+u.Home+"/Documents"); err != nil {
		t.Errorf("the busy home does not answer: %v: %s", err, out)
	}
	holder.Process.Kill()
	holder.Wait()
	if !waitFor(20*time.Second, func() bool { return !homeMounted(u) }) {
		t.Fatalf("still mounted 20 s after the last holder exited\n%s", homeLog(u))
	}
	// The line is written once the daemon has exited, a moment after the
	// unmount.
	if !waitFor(20*time.Second, func() bool { return strings.Contains(homeLog(u), "no longer in use; unmounted") }) {
		t.Errorf("the background unmount is not logged:\n%s", homeLog(u))
	}

	// A session opens while the background unmount waits: it stays.
	login(t, service, u, u.Password)
	holder = startAsUser(t, u, u.Home, "exec sleep 300")
	logout(t, service, u)
	login(t, service, u, u.Password)
	holder.Process.Kill()
	holder.Wait()
	time.Sleep(5 * time.Second) // two rounds of the background unmount
	if !homeMounted(u) {
		t.Fatalf("unmounted under an open session\n%s", homeLog(u))
	}
	logout(t, service, u)
	if homeMounted(u) {
		t.Fatalf("still mounted after the last session closed\n%s", homeLog(u))
	}
}

// homeDaemons returns the pids of u's home daemons.
func homeDaemons(u *testUser) []int {
	var out []int
	for _, pid := range uidProcesses(u.UID) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmd, []byte("home\x00daemon")) {
			out = append(out, pid)
		}
	}
	return out
}

// listNames lists a directory as root (the locked home: the directory
// underneath, no mount).
func listNames(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(dir)
	mustDo(t, err)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	mustDo(t, err)
	return names
}

// withoutRoot drops treeSum's line of the top directory, whose mode the
// cipher directory's decides (0700).
func withoutRoot(sum string) string {
	_, rest, _ := strings.Cut(sum, "\n")
	return rest
}

// lineDiff lists the lines of got not in want and of want not in got.
func lineDiff(got, want string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	g, w := in(got), in(want)
	var b strings.Builder
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// checkCiphertext checks that the cipher tree shows no plaintext: no
// name of the home's (sum is its treeSum), no content or attribute value
// holding marker. It reads with O_NOATIME, so the tree's access times stay.
func checkCiphertext(t *testing.T, cipher, marker string, sum string) {
	t.Helper()
	names := map[string]bool{}
	for _, l := range strings.Split(sum, "\n") {
		if p, _, ok := strings.Cut(l, " "); ok && p != "." {
			names[filepath.Base(p)] = true
		}
	}
	var walk func(path string)
	walk = func(path string) {
		var st unix.Stat_t
		mustDo(t, unix.Lstat(path, &st))
		if names[filepath.Base(path)] {
			t.Errorf("plaintext name in the cipher tree: %s", path)
		}
		typ := st.Mode & unix.S_IFMT
		if typ == unix.S_IFLNK || typ == unix.S_IFIFO {
			return
		}
		xs, err := readUserXattrs(path)
		mustDo(t, err)
		for _, x := range xs {
			if strings.Contains(x, fmt.Sprintf("%x", marker)) {
				t.Errorf("plaintext in an extended attribute of %s", path)
			}
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOATIME|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		mustDo(t, err)
		f := os.NewFile(uintptr(fd), path)
		defer f.Close()
		if typ == unix.S_IFREG {
			data, err := io.ReadAll(f)
			mustDo(t, err)
			if bytes.Contains(data, []byte(marker)) {
				t.Errorf("plaintext in the cipher file %s", path)
			}
			return
		}
		ents, err := f.Readdirnames(-1)
		mustDo(t, err)
		for _, e := range ents {
			walk(filepath.Join(path, e))
		}
	}
	walk(cipher)
}

// noSecrets checks that none of the passwords appears in anything cryptfs
// logs: the home log, the session state, the module's syslog lines.
func noSecrets(t *testing.T, u *testUser, slog *syslogCapture, passwords ...string) {
	t.Helper()
	var logs []string
	ents, _ := os.ReadDir("/run/cryptfs/sessions")
	for _, e := range ents {
		if data, err := os.ReadFile(filepath.Join("/run/cryptfs/sessions", e.Name())); err == nil {
			logs = append(logs, string(data))
		}
	}
	if data, err := os.ReadFile("/run/cryptfs/migrate/" + u.Name + ".log"); err == nil {
		logs = append(logs, string(data))
	}
	if slog != nil {
		logs = append(logs, slog.All())
	}
	all := strings.Join(logs, "\n")
	if len(all) == 0 {
		t.Errorf("no log to check")
	}
	for _, pw := range passwords {
		if strings.Contains(all, pw) {
			t.Errorf("a password appears in the logs")
		}
	}
}
