package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// Issue 13.1: a root daemon serving other users (--allow-other) must not
// let a user turn a change of their own file into a change of somebody
// else's. The attack: in a lower directory they own, the user swaps their
// file's lower name with a hard link to a root-owned victim
// (renameat2(RENAME_EXCHANGE)) while asking the daemon, through the mount,
// to chmod 04777, chown, set times on, truncate or create their file. Two
// defences are tested apart: (a) the cipher root stays private even after
// a chmod 0777 of the mount root, so the user cannot even reach the lower
// tree; (b) with the cipher root widened by hand (an administrator's
// mistake), every change still lands only on the inode the daemon checked
// (dev/ino of an O_PATH descriptor) and new entries are created as their
// owner, never chowned by name.

// raceHelperEnv makes the test binary run one attacker loop (raceSpec) as
// another user instead of the tests.
const raceHelperEnv = "CRYPTFS_RACE_HELPER"

// raceSpec is one attacker loop.
type raceSpec struct {
	Role     string        `json:"role"` // loops: "swap", "setattr", "create"; steps: "mkdir", "write", "remove"
	UID      int           `json:"uid"`
	GID      int           `json:"gid"`
	A        string        `json:"a"` // swap: the two lower names; the others: the path through the mount
	B        string        `json:"b"`
	Duration time.Duration `json:"duration"`
}

// raceResult is what a loop reports on standard output.
type raceResult struct {
	Attempts int            `json:"attempts"`
	Done     int            `json:"done"`   // swaps, or changes, that succeeded
	Errnos   map[string]int `json:"errnos"` // failures by errno name
	Fatal    string         `json:"fatal,omitempty"`
}

func init() {
	if raw, ok := os.LookupEnv(raceHelperEnv); ok {
		os.Exit(raceHelper(raw))
	}
}

func raceHelper(raw string) int {
	var spec raceSpec
	res := raceResult{Errnos: map[string]int{}}
	out := func() int {
		json.NewEncoder(os.Stdout).Encode(res)
		return 0
	}
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		res.Fatal = err.Error()
		return out()
	}
	// Drop to the user (Go applies these to every thread): the test
	// binary lives in a directory the user could not execute from.
	if err := syscall.Setgroups(nil); err != nil {
		res.Fatal = "setgroups: " + err.Error()
		return out()
	}
	if err := syscall.Setgid(spec.GID); err != nil {
		res.Fatal = "setgid: " + err.Error()
		return out()
	}
	if err := syscall.Setuid(spec.UID); err != nil {
		res.Fatal = "setuid: " + err.Error()
		return out()
	}
	count := func(err error) {
		res.Attempts++
		if err == nil {
			res.Done++
			return
		}
		var e unix.Errno
		if errors.As(err, &e) {
			res.Errnos[unix.ErrnoName(e)]++
		} else {
			res.Errnos[err.Error()]++
		}
	}
	switch spec.Role {
	case "mkdir":
		count(unix.Mkdir(spec.A, 0o755))
		return out()
	case "write":
		count(os.WriteFile(spec.A, nil, 0o644))
		return out()
	case "remove":
		count(unix.Unlink(spec.A))
		return out()
	}
	past := []unix.Timespec{{Sec: 100000}, {Sec: 100000}}
	for end := time.Now().Add(spec.Duration); time.Now().Before(end); {
		switch spec.Role {
		case "swap":
			count(unix.Renameat2(unix.AT_FDCWD, spec.A, unix.AT_FDCWD, spec.B, unix.RENAME_EXCHANGE))
		case "setattr":
			count(unix.Chmod(spec.A, 0o4777))
			count(unix.Chown(spec.A, spec.UID, spec.GID))
			count(unix.UtimesNano(spec.A, past))
			count(unix.Truncate(spec.A, 0))
		case "create":
			fd, err := unix.Open(spec.A, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o6755)
			count(err)
			if err == nil {
				unix.Close(fd)
			}
			unix.Unlink(spec.A)
		default:
			res.Fatal = "unknown role " + spec.Role
			return out()
		}
	}
	return out()
}

// startRace starts one attacker loop; wait returns its result.
func startRace(t *testing.T, spec raceSpec) (wait func() raceResult) {
	t.Helper()
	exe, err := os.Executable()
	mustDo(t, err)
	raw, err := json.Marshal(spec)
	mustDo(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), spec.Duration+60*time.Second)
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), raceHelperEnv+"="+string(raw))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	mustDo(t, cmd.Start())
	return func() raceResult {
		defer cancel()
		err := cmd.Wait()
		var res raceResult
		if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil || err != nil {
			t.Fatalf("%s loop: %v %v; stdout %q stderr %q", spec.Role, err, jerr, stdout.String(), stderr.String())
		}
		if res.Fatal != "" {
			t.Fatalf("%s loop: %s", spec.Role, res.Fatal)
		}
		return res
	}
}

// victimState is what must not change about the victim.
type victimState struct {
	Mode, UID, GID uint32
	Size           int64
	Mtime          unix.Timespec
	Data           string
}

func victimNow(t *testing.T, path string) victimState {
	t.Helper()
	var st unix.Stat_t
	mustDo(t, unix.Stat(path, &st))
	data, err := os.ReadFile(path)
	mustDo(t, err)
	return victimState{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Size: st.Size, Mtime: st.Mtim, Data: string(data)}
}

// TestPrivilegeRace: see the comment at the top of this file.
func TestPrivilegeRace(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	const uid, gid = 65534, 65534 // nobody, nogroup
	for _, c := range []struct {
		name     string
		widen    bool // widen the cipher root by hand (case b)
		tier     string
		duration time.Duration
	}{
		{"private-root", false, "kernel-cache", 3 * time.Second},
		{"widened-root/kernel-cache", true, "kernel-cache", 10 * time.Second},
		{"widened-root/off", true, "off", 5 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Every directory on the way is open to the user, so that only
			// the cipher root's own mode can keep them out.
			base, err := os.MkdirTemp("", "cryptfs-race-")
			mustDo(t, err)
			t.Cleanup(func() { os.RemoveAll(base) })
			mustDo(t, os.Chmod(base, 0o755))
			cipher, mnt := filepath.Join(base, "cipher"), filepath.Join(base, "mnt")
			_, err = cryptfstest.NewCLI(t).Init(context.Background(), cipher)
			mustDo(t, err)
			victim := filepath.Join(base, "victim")
			mustDo(t, os.WriteFile(victim, []byte("root's file, not to be changed"), 0o644))
			before := victimNow(t, victim)

			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Dir: mnt,
				Args: []string{"--allow-other", "--fast-path=" + c.tier}})
			// The mount root is opened to everyone, as a shared mount's
			// root is (a /home): the cipher root must not follow.
			mustDo(t, os.Chmod(m.Dir, 0o777))
			var st unix.Stat_t
			mustDo(t, unix.Stat(m.Dir, &st))
			if st.Mode&0o7777 != 0o777 {
				t.Fatalf("mount root mode %o after chmod 0777", st.Mode&0o7777)
			}
			mustDo(t, unix.Stat(cipher, &st))
			if st.Mode&0o077 != 0 {
				t.Errorf("cipher root mode %o after a chmod 0777 of the mount root: group or others can reach it", st.Mode&0o7777)
			}
			// The user makes their directory and file through the mount.
			u, f := filepath.Join(m.Dir, "u"), filepath.Join(m.Dir, "u", "f")
			raceStep(t, uid, gid, "mkdir", u)
			raceStep(t, uid, gid, "write", f)
			raceStep(t, uid, gid, "write", filepath.Join(u, "g"))
			lowerU, lowerF, lowerG := lowerPathOf(t, cipher, "u"), lowerPathOf(t, cipher, "u/f"), lowerPathOf(t, cipher, "u/g")
			for _, p := range []string{lowerU, lowerF, lowerG} {
				mustDo(t, unix.Lstat(p, &st))
				if st.Uid != uid || st.Gid != gid {
					t.Errorf("%s: lower owner %d:%d, want the creator %d:%d", filepath.Base(p), st.Uid, st.Gid, uid, gid)
				}
			}
			raceStep(t, uid, gid, "remove", filepath.Join(u, "g"))
			// Root's hard links to the victim in the user's directory
			// (made by root: no protected_hardlinks question).
			v, v2 := filepath.Join(lowerU, "V"), filepath.Join(lowerU, "V2")
			mustDo(t, os.Link(victim, v))
			mustDo(t, os.Link(victim, v2))
			if c.widen {
				mustDo(t, os.Chmod(cipher, 0o755))
			}

			start := time.Now()
			swap := startRace(t, raceSpec{Role: "swap", UID: uid, GID: gid, A: lowerF, B: v, Duration: c.duration})
			swapNew := startRace(t, raceSpec{Role: "swap", UID: uid, GID: gid, A: lowerG, B: v2, Duration: c.duration})
			setattr := startRace(t, raceSpec{Role: "setattr", UID: uid, GID: gid, A: f, Duration: c.duration})
			create := startRace(t, raceSpec{Role: "create", UID: uid, GID: gid, A: filepath.Join(u, "g"), Duration: c.duration})
			rs, rn, ra, rc := swap(), swapNew(), setattr(), create()
			t.Logf("%v: %d swaps of %d attempts (file), %d of %d (new entry); %d of %d changes through the mount (%v); %d of %d creations (%v)",
				time.Since(start).Round(time.Millisecond), rs.Done, rs.Attempts, rn.Done, rn.Attempts, ra.Done, ra.Attempts, ra.Errnos, rc.Done, rc.Attempts, rc.Errnos)
			if after := victimNow(t, victim); after != before {
				t.Errorf("the victim changed: %+v, was %+v", after, before)
			}
			if !c.widen {
				if rs.Done != 0 || rs.Errnos["EACCES"] != rs.Attempts {
					t.Errorf("with a private cipher root the user's swaps: %d done, errors %v; want EACCES for all", rs.Done, rs.Errnos)
				}
			} else if rs.Done == 0 || rn.Done == 0 || ra.Attempts == 0 || rc.Attempts == 0 {
				t.Errorf("the race did not run: %d and %d swaps, %d changes and %d creations tried", rs.Done, rn.Done, ra.Attempts, rc.Attempts)
			}
			cryptfstest.Unmount(t, m)
		})
	}
}

// raceStep runs one step (raceHelper's "mkdir", "write" or "remove") as
// uid:gid in a child process.
func raceStep(t *testing.T, uid, gid int, role, path string) {
	t.Helper()
	if res := startRace(t, raceSpec{Role: role, UID: uid, GID: gid, A: path})(); res.Done != 1 {
		t.Fatalf("%s %s as %d:%d: %v", role, path, uid, gid, res.Errnos)
	}
}

// TestRootModeStoredApart: a chmod of the mount root is kept in
// .cryptfs.rootmode (docs/format.md 1.1) across mounts, never applied to
// the cipher root, and the file is not listed.
func TestRootModeStoredApart(t *testing.T) {
	cipher := cryptfstest.Init(t)
	var st unix.Stat_t
	mustDo(t, unix.Stat(cipher, &st))
	cipherMode := st.Mode & 0o7777
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	mustDo(t, unix.Chmod(m.Dir, 0o1757))
	cryptfstest.Unmount(t, m)
	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	mustDo(t, unix.Stat(m.Dir, &st))
	if st.Mode&0o7777 != 0o1757 {
		t.Errorf("mount root mode %o after a remount, want 1757", st.Mode&0o7777)
	}
	names, err := readNames(m.Dir)
	mustDo(t, err)
	if len(names) != 0 {
		t.Errorf("the root lists %q, want nothing", names)
	}
	cryptfstest.Unmount(t, m)
	mustDo(t, unix.Stat(cipher, &st))
	if st.Mode&0o7777 != cipherMode {
		t.Errorf("cipher root mode %o, want %o as init made it", st.Mode&0o7777, cipherMode)
	}
	data, err := os.ReadFile(filepath.Join(cipher, ".cryptfs.rootmode"))
	if err != nil || string(data) != "1757\n" {
		t.Errorf(".cryptfs.rootmode: %q, %v; want \"1757\\n\"", data, err)
	}
	fsck(t, cipher, 0)
}
