package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/fstest"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// End-to-end tests of `make install` / `make uninstall` (Makefile,
// scripts/install.sh) and of the systemd units they install
// (dist/systemd). They run make in the source tree with the binary under
// test (INSTALL_BIN; `-o build`, so that no test rebuilds bin/cryptfs
// under the feet of the others) into temporary directories only: nothing
// outside them is written.

const manifestPath = "/usr/share/cryptfs/install-manifest"

// sourceRoot returns the source tree to run make in, or skips.
func sourceRoot(t *testing.T) string {
	t.Helper()
	root := cryptfstest.SourceRoot()
	if root == "" {
		t.Skip("skipping: the cryptfs source tree is not here (the Makefile is needed)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("skipping: make not found (apt-get install make)")
	}
	return root
}

// runMake runs `make -s -o build TARGET VARS...` in root with
// INSTALL_BIN set to the binary under test.
func runMake(t *testing.T, root, target string, vars ...string) string {
	t.Helper()
	args := append([]string{"-s", "-C", root, "-o", "build", target, "INSTALL_BIN=" + cryptfstest.Binary(t)}, vars...)
	cmd := exec.Command("make", args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		// An outer make's flags (make test) are not for this one.
		return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// manifestEntry is one line of the install manifest.
type manifestEntry struct {
	kind   byte   // 'd', 'f' or 'l'
	sum    string // f: sha256 of the content
	target string // l: the link's target
}

func readManifest(t *testing.T, path string) map[string]manifestEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	mustDo(t, err)
	m := map[string]manifestEntry{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "d":
			m[f[1]] = manifestEntry{kind: 'd'}
		case len(f) == 3 && f[0] == "f":
			m[f[2]] = manifestEntry{kind: 'f', sum: f[1]}
		case len(f) == 3 && f[0] == "l":
			m[f[2]] = manifestEntry{kind: 'l', target: f[1]}
		default:
			t.Fatalf("%s: bad line %q", path, sc.Text())
		}
	}
	return m
}

// tree returns every path under dir (as "/"-rooted paths below it), with
// its Lstat.
func tree(t *testing.T, dir string) map[string]fs.FileInfo {
	t.Helper()
	m := map[string]fs.FileInfo{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m[strings.TrimPrefix(p, dir)] = info
		return nil
	})
	mustDo(t, err)
	return m
}

// TestInstall: `make install DESTDIR=tmp PREFIX=/usr` installs the binary,
// the mount helper links, a manual page for every command (each renders
// with man without a warning), completions that bash loads and that
// complete, and the units; the manifest lists exactly what is in the tree,
// with modes and checksums that hold; installing again changes nothing;
// `make uninstall DESTDIR=tmp` leaves nothing.
func TestInstall(t *testing.T) {
	root := sourceRoot(t)
	dest := t.TempDir()
	runMake(t, root, "install", "DESTDIR="+dest, "PREFIX=/usr")

	manifest := readManifest(t, dest+manifestPath)
	files := tree(t, dest)
	for p, info := range files {
		if p == manifestPath {
			if info.Mode() != 0o644 {
				t.Errorf("%s: mode %v, want -rw-r--r--", p, info.Mode())
			}
			continue
		}
		e, ok := manifest[p]
		if !ok {
			t.Errorf("%s is installed but not in the manifest", p)
			continue
		}
		switch e.kind {
		case 'd':
			if info.Mode() != fs.ModeDir|0o755 {
				t.Errorf("%s: mode %v, want drwxr-xr-x", p, info.Mode())
			}
		case 'l':
			target, err := os.Readlink(dest + p)
			if info.Mode()&fs.ModeSymlink == 0 || err != nil || target != e.target {
				t.Errorf("%s: %v -> %q (%v), want a link to %q", p, info.Mode(), target, err, e.target)
			}
		case 'f':
			want := fs.FileMode(0o644)
			if strings.HasPrefix(p, "/usr/bin/") {
				want = 0o755
			}
			if info.Mode() != want {
				t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
			}
			sum := sha256.Sum256(readFile(t, dest+p))
			if hex.EncodeToString(sum[:]) != e.sum {
				t.Errorf("%s: checksum differs from the manifest's", p)
			}
		}
	}
	for p := range manifest {
		if _, ok := files[p]; !ok {
			t.Errorf("the manifest lists %s, which is not installed", p)
		}
	}

	// What must be there, by what it is for.
	want := map[string]string{
		"/usr/bin/cryptfs":                                  "f",
		"/sbin/mount.fuse.cryptfs":                          "l /usr/bin/cryptfs",
		"/sbin/mount.cryptfs":                               "l /usr/bin/cryptfs",
		"/usr/share/man/man8/mount.fuse.cryptfs.8":          "f",
		"/usr/share/man/man8/mount.cryptfs.8":               "l mount.fuse.cryptfs.8",
		"/usr/share/man/man1/cryptfs.1":                     "f",
		"/usr/share/bash-completion/completions/cryptfs":    "f",
		"/usr/share/zsh/vendor-completions/_cryptfs":        "f",
		"/usr/share/fish/vendor_completions.d/cryptfs.fish": "f",
		"/usr/lib/systemd/system/cryptfs@.service":          "f",
		"/usr/lib/systemd/user/cryptfs@.service":            "f",
	}
	for _, cmd := range commands(t) {
		want["/usr/share/man/man1/cryptfs-"+cmd+".1"] = "f"
	}
	for p, w := range want {
		e, ok := manifest[p]
		kind, target, _ := strings.Cut(w, " ")
		if !ok || string(e.kind) != kind || e.target != target {
			t.Errorf("%s: installed as %+v, want %s", p, e, w)
		}
	}
	if err := filepath.WalkDir(filepath.Join(root, "dist", "pam"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(root, "dist", "pam"), p)
		if _, ok := manifest["/usr/share/cryptfs/pam/"+rel]; !ok {
			t.Errorf("dist/pam/%s is not installed", rel)
		}
		return nil
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Error(err)
	}
	for _, unit := range []string{"/usr/lib/systemd/system/cryptfs@.service", "/usr/lib/systemd/user/cryptfs@.service"} {
		u := string(readFile(t, dest+unit))
		if !strings.Contains(u, "\nExecStart=/usr/bin/cryptfs mount -f ") || strings.Contains(u, "@BINDIR@") || strings.Contains(u, "@SYSCONFDIR@") {
			t.Errorf("%s: the binary's path is not filled in:\n%s", unit, u)
		}
	}

	t.Run("man", func(t *testing.T) { checkManPages(t, dest+"/usr/share/man") })
	t.Run("bash", func(t *testing.T) {
		checkBashCompletion(t, dest+"/usr/share/bash-completion/completions/cryptfs", dest+"/usr/bin")
	})

	// Installing again (over the first install) leaves the same tree.
	before := readFile(t, dest+manifestPath)
	runMake(t, root, "install", "DESTDIR="+dest, "PREFIX=/usr")
	if after := readFile(t, dest+manifestPath); !bytes.Equal(sortedLines(before), sortedLines(after)) {
		t.Errorf("a second install changed the manifest:\n%s\nthen\n%s", before, after)
	}
	if n := len(tree(t, dest)); n != len(files) {
		t.Errorf("a second install left %d paths, the first %d", n, len(files))
	}

	// A file changed since install is kept by uninstall, with a warning.
	changed := dest + "/usr/lib/systemd/system/cryptfs@.service"
	mustDo(t, os.WriteFile(changed, []byte("# edited\n"), 0o644))
	out := runMake(t, root, "uninstall", "DESTDIR="+dest, "PREFIX=/usr")
	if !strings.Contains(out, "keeping "+changed+": changed since it was installed") {
		t.Errorf("uninstall did not say it kept the changed unit:\n%s", out)
	}
	left := tree(t, dest)
	var leftPaths []string
	for p := range left {
		leftPaths = append(leftPaths, p)
	}
	sort.Strings(leftPaths)
	wantLeft := []string{"/usr", "/usr/lib", "/usr/lib/systemd", "/usr/lib/systemd/system", "/usr/lib/systemd/system/cryptfs@.service"}
	if !slices.Equal(leftPaths, wantLeft) {
		t.Errorf("after uninstall with a changed unit: %v, want %v", leftPaths, wantLeft)
	}
	mustDo(t, os.Remove(changed))
	for _, d := range []string{"/usr/lib/systemd/system", "/usr/lib/systemd", "/usr/lib", "/usr"} {
		mustDo(t, os.Remove(dest+d))
	}

	// And a clean install, uninstalled, leaves nothing at all.
	runMake(t, root, "install", "DESTDIR="+dest, "PREFIX=/usr")
	runMake(t, root, "uninstall", "DESTDIR="+dest, "PREFIX=/usr")
	if left := tree(t, dest); len(left) != 0 {
		t.Errorf("make uninstall left %d paths: %v", len(left), left)
	}
}

func sortedLines(b []byte) []byte {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(l)
	return []byte(strings.Join(l, "\n"))
}

// commands returns the names of cryptfs's commands and their
// subcommands ("kmod-status"), from `cryptfs help`, not from the code
// that writes the pages.
func commands(t *testing.T) []string {
	t.Helper()
	var names []string
	var walk func(prefix []string)
	walk = func(prefix []string) {
		out, code := cryptfstest.Run(t, "", append(prefix, "--help")...)
		if code != 0 {
			t.Fatalf("cryptfs %s --help: exit %d\n%s", strings.Join(prefix, " "), code, out)
		}
		_, list, ok := strings.Cut(out, "Available Commands:\n")
		if !ok {
			return
		}
		for _, l := range strings.Split(list, "\n") {
			f := strings.Fields(l)
			if len(f) == 0 || !strings.HasPrefix(l, "  ") {
				break
			}
			if f[0] == "help" {
				continue
			}
			sub := append(slices.Clone(prefix), f[0])
			names = append(names, strings.Join(sub, "-"))
			walk(sub)
		}
	}
	walk(nil)
	if len(names) < 8 {
		t.Fatalf("only %d commands in cryptfs --help: %v", len(names), names)
	}
	return names
}

// checkManPages renders every page under mandir with man(1), all groff
// warnings on, and requires no warning and some text.
func checkManPages(t *testing.T, mandir string) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("skipping: man not found (apt-get install man-db)")
	}
	pages, _ := filepath.Glob(filepath.Join(mandir, "man*", "*"))
	if len(pages) < 10 {
		t.Fatalf("only %d pages under %s", len(pages), mandir)
	}
	for _, p := range pages {
		cmd := exec.Command("man", "--warnings=w", "-l", p)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		name := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		if err != nil || stderr.Len() > 0 || !strings.Contains(stdout.String(), "NAME") {
			t.Errorf("man -l %s: %v\n%s\n%s", filepath.Base(p), err, stderr.String(), stdout.String())
		}
		if !strings.Contains(strings.ToUpper(stdout.String()), strings.ToUpper(strings.TrimPrefix(name, "mount.cryptfs"))) {
			t.Errorf("man -l %s does not name itself", filepath.Base(p))
		}
	}
}

// checkBashCompletion sources the completion in bash and checks that it
// registers for cryptfs; with the bash-completion package (which it
// needs at run time, as every cobra completion does) it also completes
// `cryptfs mo<TAB>` and `cryptfs mount --fa<TAB>` with the installed
// binary on $PATH.
func checkBashCompletion(t *testing.T, file, bindir string) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("skipping: bash not found")
	}
	run := func(script string) string {
		t.Helper()
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", "set -e\n"+script, "bash", file)
		cmd.Env = append(os.Environ(), "PATH="+bindir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run(`source "$1"; complete -p cryptfs`); !strings.Contains(out, "complete -o default -F __start_cryptfs cryptfs") {
		t.Errorf("bash completion does not register for cryptfs:\n%s", out)
	}
	const lib = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("skipping the completion itself: %s not found (apt-get install bash-completion)", lib)
	}
	// compopt works only inside a completion bash itself runs: a no-op
	// here (it only sets display options such as nospace).
	out := run(`source ` + lib + `
source "$1"
compopt() { :; }
complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=(); __start_cryptfs; echo "reply:${COMPREPLY[*]}"; }
complete_words cryptfs mo
complete_words cryptfs mount --fa
`)
	for _, want := range []string{"reply:mount", "reply:--fast-path"} {
		if !strings.Contains(out, want) {
			t.Errorf("bash completion: no %q in\n%s", want, out)
		}
	}
}

// unit is a parsed systemd unit file: section -> key -> values.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	section := ""
	for _, l := range strings.Split(string(readFile(t, path)), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[':
			section = strings.Trim(l, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot parse %q", path, l)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the single value of a key.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %q, want one value", section, key, v)
	}
	return v[0]
}

// specifiers expands the systemd specifiers in s from spec ('%' maps to
// itself); any other fails the test.
func specifiers(t *testing.T, s string, spec map[byte]string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			t.Fatalf("a lone %% in %q", s)
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, ok := spec[s[i]]
		if !ok {
			t.Fatalf("specifier %%%c in %q: the test does not expand it (extend the test)", s[i], s)
		}
		b.WriteString(v)
	}
	return b.String()
}

var (
	varWord = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)$`)
	varRef  = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// expandExec turns an ExecStart= line into argv as systemd does for the
// forms our units use (systemd.service(5), "Command lines"): a word that
// is exactly $NAME becomes the value's whitespace-separated words;
// ${NAME} inside a word is replaced in place. Quotes, escapes, prefixes
// and any other '$' fail the test rather than be expanded wrongly.
func expandExec(t *testing.T, line string, env map[string]string) []string {
	t.Helper()
	if strings.ContainsAny(line, `"'\`) || strings.ContainsAny(line[:1], "-@:+!") {
		t.Fatalf("ExecStart=%s: quoting, escapes and prefixes are not expanded by the test (extend it)", line)
	}
	var argv []string
	for _, w := range strings.Fields(line) {
		if m := varWord.FindStringSubmatch(w); m != nil {
			argv = append(argv, strings.Fields(env[m[1]])...)
			continue
		}
		w = varRef.ReplaceAllStringFunc(w, func(r string) string { return env[varRef.FindStringSubmatch(r)[1]] })
		if strings.Contains(w, "$") {
			t.Fatalf("ExecStart=%s: cannot expand %q", line, w)
		}
		argv = append(argv, w)
	}
	return argv
}

// readEnvFile reads a simple EnvironmentFile (KEY=VALUE lines, comments).
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, l := range strings.Split(string(readFile(t, path)), "\n") {
		if l = strings.TrimSpace(l); l == "" || l[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: %q", path, l)
		}
		env[k] = v
	}
	return env
}

// installPrefix runs make install with every directory inside base, so
// that the units name a binary that exists ($base/usr/bin/cryptfs), and
// make uninstall when the test ends.
func installPrefix(t *testing.T, root, base string) {
	t.Helper()
	vars := []string{"PREFIX=" + base + "/usr", "MOUNTHELPERDIR=" + base + "/sbin", "SYSCONFDIR=" + base + "/etc",
		"PAMMODDIR=" + base + "/security"}
	runMake(t, root, "install", vars...)
	t.Cleanup(func() { runMake(t, root, "uninstall", vars...) })
}

// TestSystemdUnits: the installed units pass `systemd-analyze verify`
// (system and --user) without a word, their Documentation= pages
// included; then each unit's ExecStart=, expanded from a config file as
// systemd would, mounts for real with READY=1 on NOTIFY_SOCKET, and
// SIGTERM (systemctl stop) unmounts. The system unit runs under the
// unit's own NoNewPrivileges= and CapabilityBoundingSet= (setpriv does
// what systemd does) and the POSIX suite passes on its mount with
// --allow-other; the user unit runs as nobody through fusermount3.
// PID 1 is not systemd here, so no unit is started by systemd itself.
func TestSystemdUnits(t *testing.T) {
	root := sourceRoot(t)
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("skipping: systemd-analyze not found (apt-get install systemd)")
	}
	// Below a directory everyone may enter: nobody runs the user unit's
	// binary from there.
	base, err := os.MkdirTemp("", "cryptfs-install-")
	mustDo(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	mustDo(t, os.Chmod(base, 0o755))
	installPrefix(t, root, base)
	system := base + "/usr/lib/systemd/system/cryptfs@.service"
	user := base + "/usr/lib/systemd/user/cryptfs@.service"

	t.Run("verify", func(t *testing.T) {
		runtime := t.TempDir()
		for _, args := range [][]string{
			{"verify", filepath.Join(filepath.Dir(system), "cryptfs@data.service")},
			{"--user", "verify", filepath.Join(filepath.Dir(user), "cryptfs@private.service")},
		} {
			cmd := exec.Command("systemd-analyze", args...)
			cmd.Env = append(os.Environ(), "MANPATH="+base+"/usr/share/man", "XDG_RUNTIME_DIR="+runtime, "SYSTEMD_LOG_LEVEL=info")
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	t.Run("system", func(t *testing.T) {
		cryptfstest.RequireFUSE(t)
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("skipping: setpriv not found (apt-get install util-linux)")
		}
		u := parseUnit(t, system)
		checkKnownKeys(t, u, "NoNewPrivileges", "CapabilityBoundingSet", "LockPersonality", "RestrictRealtime", "RestrictNamespaces", "SystemCallArchitectures")
		if u.one(t, "Service", "Type") != "notify" || u.one(t, "Service", "NoNewPrivileges") != "yes" {
			t.Fatalf("%s: want Type=notify and NoNewPrivileges=yes", system)
		}
		cipher := cryptfstest.Init(t)
		mnt := filepath.Join(t.TempDir(), "mnt")
		mustDo(t, os.Mkdir(mnt, 0o755))
		pass := filepath.Join(t.TempDir(), "pass")
		mustDo(t, os.WriteFile(pass, []byte(cryptfstest.Password+"\n"), 0o600))
		spec := map[byte]string{'i': "data", 'I': "data"}
		envFile := specifiers(t, u.one(t, "Service", "EnvironmentFile"), spec)
		if want := base + "/etc/cryptfs/mounts/data.conf"; envFile != want {
			t.Errorf("EnvironmentFile=%s, want %s", envFile, want)
		}
		mustDo(t, os.MkdirAll(filepath.Dir(envFile), 0o755))
		mustDo(t, os.WriteFile(envFile, []byte("# cryptfs@data\nCIPHERDIR="+cipher+"\nMOUNTPOINT="+mnt+
			"\nOPTIONS=--passfile="+pass+" --allow-other --insecure-kdf\n"), 0o600))
		argv := expandExec(t, specifiers(t, u.one(t, "Service", "ExecStart"), spec), readEnvFile(t, envFile))
		// What systemd does before exec: no new privileges, the bounding set.
		var caps []string
		for _, c := range strings.Fields(u.one(t, "Service", "CapabilityBoundingSet")) {
			caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
		}
		argv = append([]string{setpriv, "--no-new-privs", "--bounding-set=-all," + strings.Join(caps, ","), "--"}, argv...)
		d := startUnit(t, argv, nil, nil, mnt)
		d.status(t, cryptfstest.NewCLI(t), mnt)
		if got, ours := processField(t, d.cmd.Process.Pid, "CapBnd"), processField(t, os.Getpid(), "CapBnd"); got == "" || got == ours {
			t.Fatalf("the daemon's bounding set is %q, ours %q: the unit's limits were not applied", got, ours)
		}
		if !testing.Short() {
			fstest.Run(t, mnt, cryptfsOptions())
		} else {
			mustDo(t, os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644))
		}
		d.stop(t, mnt)
	})

	t.Run("user", func(t *testing.T) {
		cryptfstest.UserFUSE(t)
		const uid, gid = 65534, 65534 // nobody, nogroup
		u := parseUnit(t, user)
		checkKnownKeys(t, u, "LockPersonality", "RestrictRealtime", "SystemCallArchitectures")
		if _, ok := u["Service"]["NoNewPrivileges"]; ok {
			t.Errorf("%s sets NoNewPrivileges=, which stops the setuid fusermount3", user)
		}
		home, err := os.MkdirTemp(base, "home-")
		mustDo(t, err)
		mustDo(t, os.Chmod(home, 0o755))
		dirs := map[string]string{}
		for _, d := range []string{"cipher", "mnt", "run", "config"} {
			dirs[d] = filepath.Join(home, d)
			mustDo(t, os.Mkdir(dirs[d], 0o700))
			mustDo(t, os.Chown(dirs[d], uid, gid))
		}
		cli := &cryptfstest.CLI{Bin: cryptfstest.Binary(t), Cred: &syscall.Credential{Uid: uid, Gid: gid},
			Env: []string{"XDG_RUNTIME_DIR=" + dirs["run"]}}
		_, err = cli.Init(context.Background(), dirs["cipher"])
		mustDo(t, err)
		pass := filepath.Join(dirs["config"], "pass")
		mustDo(t, os.WriteFile(pass, []byte(cryptfstest.Password+"\n"), 0o600))
		mustDo(t, os.Chown(pass, uid, gid))
		spec := map[byte]string{'i': "private", 'I': "private", 'E': dirs["config"]} // %E: $XDG_CONFIG_HOME
		envFile := specifiers(t, u.one(t, "Service", "EnvironmentFile"), spec)
		mustDo(t, os.MkdirAll(filepath.Dir(envFile), 0o755))
		mustDo(t, os.WriteFile(envFile, []byte("CIPHERDIR="+dirs["cipher"]+"\nMOUNTPOINT="+dirs["mnt"]+
			"\nOPTIONS=--passfile="+pass+" --insecure-kdf\n"), 0o644))
		argv := expandExec(t, specifiers(t, u.one(t, "Service", "ExecStart"), spec), readEnvFile(t, envFile))
		d := startUnit(t, argv, &syscall.Credential{Uid: uid, Gid: gid},
			[]string{"XDG_RUNTIME_DIR=" + dirs["run"], "HOME=" + home}, dirs["mnt"])
		e, _ := mountAt(t, dirs["mnt"])
		if !slices.Contains(e.super, fmt.Sprintf("user_id=%d", uid)) {
			t.Errorf("the user unit's mount has super options %v, want user_id=%d", e.super, uid)
		}
		if owner := processUID(t, d.cmd.Process.Pid); owner != uid {
			t.Errorf("the daemon runs as uid %d, want %d", owner, uid)
		}
		d.status(t, cli, dirs["mnt"])
		d.stop(t, dirs["mnt"])
	})
}

// checkKnownKeys fails the test when a unit's [Service] has a key the test
// neither emulates nor has reasoned about, so that a new directive gets a
// look before it ships. The seccomp-based ones listed by the caller
// (LockPersonality, RestrictRealtime, RestrictNamespaces,
// SystemCallArchitectures) are not emulated: they forbid personality
// changes, realtime scheduling, new namespaces and non-native system
// calls, none of which the daemon makes.
func checkKnownKeys(t *testing.T, u unit, extra ...string) {
	t.Helper()
	known := append([]string{"Type", "NotifyAccess", "EnvironmentFile", "ExecStart", "TimeoutStopSec"}, extra...)
	for k := range u["Service"] {
		if !slices.Contains(known, k) {
			t.Errorf("[Service] %s: this test does not know what it does to the daemon (extend the test)", k)
		}
	}
}

// unitDaemon is a unit's ExecStart= process, run as systemd would.
type unitDaemon struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// startUnit runs argv (as cred, with env added) with NOTIFY_SOCKET and
// standard input on /dev/null, and waits for READY=1 and a FUSE mount at
// mnt. The process and mount are torn down when the test ends.
func startUnit(t *testing.T, argv []string, cred *syscall.Credential, env []string, mnt string) *unitDaemon {
	t.Helper()
	notify, err := cryptfstest.ListenNotify(true)
	mustDo(t, err)
	t.Cleanup(func() { notify.Close() })

	d := &unitDaemon{cmd: exec.Command(argv[0], argv[1:]...), out: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd.Env = append(append(os.Environ(), env...), "NOTIFY_SOCKET="+notify.Path)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.Dir = "/"
	if cred != nil {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	mustDo(t, d.cmd.Start())
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(30 * time.Second):
				d.cmd.Process.Kill()
				<-d.done
			}
		}
		if cryptfstest.IsMounted(mnt) {
			cryptfstest.Detach(mnt)
		}
	})
	select {
	case err := <-notify.Ready():
		mustDo(t, err)
	case err := <-d.done:
		d.done <- err
		t.Fatalf("%s exited before READY=1: %v\n%s", strings.Join(argv, " "), err, d.out)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no READY=1 after 30 s\n%s", strings.Join(argv, " "), d.out)
	}
	if !cryptfstest.IsMounted(mnt) {
		t.Fatalf("READY=1 but nothing mounted at %s\n%s", mnt, d.out)
	}
	return d
}

// status runs cryptfs status for the unit's mount at mnt and checks that
// it names the unit's main process (NotifyAccess=main holds).
func (d *unitDaemon) status(t *testing.T, cli *cryptfstest.CLI, mnt string) {
	t.Helper()
	st, err := cli.Status(context.Background(), mnt)
	mustDo(t, err)
	if st.PID != d.cmd.Process.Pid {
		t.Errorf("status names pid %d, want the unit's main process %d", st.PID, d.cmd.Process.Pid)
	}
}

// stop does what systemctl stop does (SIGTERM to the main process) and
// checks that the daemon exits with status 0 and the mount is gone.
func (d *unitDaemon) stop(t *testing.T, mnt string) {
	t.Helper()
	mustDo(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Errorf("after SIGTERM the daemon exited with %v\n%s", err, d.out)
		}
	case <-time.After(90 * time.Second): // the units' TimeoutStopSec
		t.Fatalf("the daemon did not exit within 90 s of SIGTERM\n%s", d.out)
	}
	if cryptfstest.IsMounted(mnt) {
		t.Errorf("%s still mounted after the unit stopped", mnt)
	}
}

// processField returns a field of /proc/PID/status.
func processField(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	mustDo(t, err)
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
