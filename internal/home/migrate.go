package home

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/fsck"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// Moving an existing home into a new cipher tree (cryptfs home migrate).
//
//  1. Checks: root; the user has no process (else they are listed); the
//     home is a directory and no mount point; no mount inside the source;
//     no extended attribute cryptfs cannot store (unless dropped); enough
//     free space for the cipher tree beside what is there.
//  2. A new cipher directory (/home/.cryptfs/USER) whose key is wrapped
//     under the login password; the recovery key is shown once.
//  3. The copy, through a cryptfs mount only root can use (a daemon of
//     its own, which dies with the migration), with progress. It can be
//     interrupted at any point (kill -9 included): running migrate again
//     resumes, skipping what is complete.
//  4. Verification on the unmounted tree (fsck: every block, name,
//     xattr) and through a fresh mount against the source (every byte,
//     mode, owner, time, symlink, xattr, hard link); differences are
//     copied again once, and any that remain stop the migration.
//  5. The swap, only now: the plaintext home moves aside to HOME.before-
//     cryptfs (kept, with its permissions), an empty directory of the
//     home's owner and mode takes its place as the mountpoint, and the
//     registry entry is written, so the next login mounts the encrypted
//     home. FinishMigration deletes the kept plaintext once the user has
//     checked it; AbandonMigration undoes everything.
//
// The state of a migration lives in /home/.cryptfs/.migrations/USER.

// Migration phases.
const (
	phaseCopying  = "copying"  // steps 2 to 4, resumable
	phaseSwapping = "swapping" // step 5 under way, resumable
	phaseSwapped  = "swapped"  // waiting for finish or abandon
)

// keptSuffix names the plaintext home kept aside after the swap.
const keptSuffix = ".before-cryptfs"

// migration is the state of one user's migration.
type migration struct {
	User     string        `json:"user"`
	Home     string        `json:"home"`   // the mountpoint-to-be: the user's home
	Source   string        `json:"source"` // what is copied: the home, or --from
	Cipher   string        `json:"cipher"`
	Kept     string        `json:"kept"` // where the home directory goes at the swap
	HomeMode uint32        `json:"home_mode"`
	Phase    string        `json:"phase"`
	Idle     time.Duration `json:"idle,omitempty"`
	FastPath string        `json:"fast_path,omitempty"`
	Drop     bool          `json:"drop_unsupported_xattrs,omitempty"`
	Staging  Proc          `json:"staging"` // the daemon of the staging mount
}

func migrationDir() string             { return filepath.Join(CipherBase, ".migrations") }
func migrationPath(user string) string { return filepath.Join(migrationDir(), user) }
func stagingDir(user string) string    { return filepath.Join(filepath.Dir(RunDir), "migrate", user) }

func loadMigration(user string) (*migration, error) {
	data, err := os.ReadFile(migrationPath(user))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m migration
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", migrationPath(user), err)
	}
	return &m, nil
}

func (m *migration) save() error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(migrationPath(m.User), append(data, '\n'), 0o600)
}

// MigrateOptions say how to migrate a home.
type MigrateOptions struct {
	User string
	// From is the directory to copy instead of the user's home (a mounted
	// eCryptfs home's plaintext, say); the home directory itself still
	// becomes the mountpoint.
	From string
	// Cipher is the new cipher directory ("": /home/.cryptfs/USER).
	Cipher string
	// Password wraps the new tree's key: the user's login password, so
	// that login unlocks the home. A resumed migration unlocks with it.
	Password []byte
	Idle     time.Duration // written to the registry entry
	FastPath string        // written to the registry entry
	// DropUnsupportedXattrs copies files whose extended attributes
	// cryptfs cannot store (anything but user.*) without them.
	DropUnsupportedXattrs bool
	// Say prints a step (a line for the person running the migration).
	Say func(format string, args ...any)
	// RecoveryKey is called once, when the new tree is created, with its
	// recovery key.
	RecoveryKey func(key string)
	// Progress returns a reporter for a phase of files and bytes.
	Progress func(label string, files, bytes int64) Reporter
	// AllowWeakKDF creates the tree with cheap KDF parameters (tests only).
	AllowWeakKDF bool
}

// ErrLoggedIn means the user has processes running, so the home may change
// while it is copied.
var ErrLoggedIn = errors.New("the user is logged in")

// Migrate moves a user's home into a new cipher tree (see above). It
// resumes an interrupted migration of the same user.
func Migrate(o MigrateOptions) error {
	say := o.Say
	if say == nil {
		say = func(string, ...any) {}
	}
	if os.Geteuid() != 0 {
		return errors.New("migrating a home needs root")
	}
	u, err := LookupUser(o.User)
	if err != nil {
		return err
	}
	if u.UID == 0 {
		return errors.New("root's home is not migrated")
	}
	m, err := loadMigration(o.User)
	if err != nil {
		return err
	}
	if m != nil && m.Phase == phaseSwapped {
		return fmt.Errorf("%s's home is migrated already: once the user has logged in and checked it, run 'cryptfs home migrate --finish %s' (deletes the plaintext kept at %s), or '--abandon' to undo", o.User, o.User, m.Kept)
	}
	if m == nil {
		if _, err := Load(o.User); err == nil {
			return fmt.Errorf("%s has an encrypted home already (%s)", o.User, EntryPath(o.User))
		}
	}
	if err := checkLoggedOut(u); err != nil {
		return err
	}
	var scan *Scan
	if m == nil {
		if m, scan, err = newMigration(o, u); err != nil {
			return err
		}
	} else {
		if o.From != "" && o.From != m.Source || o.Cipher != "" && o.Cipher != m.Cipher {
			return fmt.Errorf("a migration of %s from %s to %s is under way: resume it without other --from/--cipher, or --abandon it", o.User, m.Source, m.Cipher)
		}
		say("Resuming the migration of %s from %s (phase: %s).", o.User, m.Source, m.Phase)
	}
	if m.Phase == phaseCopying {
		if err := copyPhase(o, u, m, scan, say); err != nil {
			return err
		}
	}
	return swap(m, u, say)
}

// checkLoggedOut refuses while u has any process.
func checkLoggedOut(u *User) error {
	procs, err := Processes(u.UID, nil)
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		return nil
	}
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "\n  %s", p)
	}
	return fmt.Errorf("%w: %s has %d processes; log them out (or stop them) first:%s", ErrLoggedIn, u.Name, len(procs), b.String())
}

// newMigration checks the home and the source, creates the state and the
// cipher directory, and shows the recovery key.
func newMigration(o MigrateOptions, u *User) (*migration, *Scan, error) {
	home := filepath.Clean(u.Home)
	if !filepath.IsAbs(home) || home == "/" {
		return nil, nil, fmt.Errorf("%s's home %q is not a directory that can be migrated", u.Name, u.Home)
	}
	hst, err := lstat(home)
	if err != nil {
		return nil, nil, err
	}
	if hst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, nil, fmt.Errorf("%s's home %s is not a directory", u.Name, home)
	}
	if _, err := mountinfo.At(home); err == nil {
		return nil, nil, fmt.Errorf("%s is a mount point: unmount it (an eCryptfs home: mount its plaintext elsewhere, e.g. with ecryptfs-recover-private, and pass --from DIR)", home)
	}
	source := home
	if o.From != "" {
		if source, err = filepath.Abs(o.From); err != nil {
			return nil, nil, err
		}
		if source, err = filepath.EvalSymlinks(source); err != nil {
			return nil, nil, err
		}
	}
	cipher := DefaultCipher(u.Name)
	if o.Cipher != "" {
		if cipher, err = filepath.Abs(o.Cipher); err != nil {
			return nil, nil, err
		}
	}
	for _, pair := range [][2]string{{cipher, home}, {home, cipher}, {cipher, source}, {source, cipher}} {
		if within(pair[0], pair[1]) {
			return nil, nil, fmt.Errorf("the cipher directory %s and %s must not contain each other", cipher, pair[1])
		}
	}
	if _, err := os.Lstat(cipher); err == nil {
		return nil, nil, fmt.Errorf("%s exists already: remove it or choose another --cipher", cipher)
	}
	kept := home + keptSuffix
	if _, err := os.Lstat(kept); err == nil {
		return nil, nil, fmt.Errorf("%s exists already (from an earlier migration?): move it away first", kept)
	}
	if _, err := ParseFastPath(o.FastPath); err != nil {
		return nil, nil, err
	}
	m := &migration{User: u.Name, Home: home, Source: source, Cipher: cipher, Kept: kept,
		HomeMode: hst.Mode & 0o7777, Phase: phaseCopying, Idle: o.Idle, FastPath: o.FastPath, Drop: o.DropUnsupportedXattrs}
	scan, err := preflight(m, o.Say)
	if err != nil {
		return nil, nil, err
	}
	// The tree: root's until the swap hands it to the user.
	for _, d := range []struct {
		path string
		mode uint32
	}{{CipherBase, 0o711}, {migrationDir(), 0o700}} {
		if err := os.Mkdir(d.path, os.FileMode(d.mode)); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, nil, err
		}
		if err := checkRootDir(d.path); err != nil {
			return nil, nil, err
		}
	}
	if err := m.save(); err != nil {
		return nil, nil, err
	}
	master, err := createTree(cipher, o.Password, u, o.AllowWeakKDF)
	if err != nil {
		os.RemoveAll(cipher)
		os.Remove(migrationPath(u.Name))
		return nil, nil, err
	}
	defer crypt.Wipe(master)
	if o.RecoveryKey != nil {
		o.RecoveryKey(config.RecoveryKey(master))
	}
	return m, scan, nil
}

// checkRootDir checks that dir is a directory of root's that others cannot
// write.
func checkRootDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s must be a directory owned by root and not writable by others", dir)
	}
	return nil
}

// ParseFastPath checks a --fast-path value for a home ("" is auto).
func ParseFastPath(s string) (string, error) {
	switch s {
	case "", "auto", "kernel-cache", "off":
		return s, nil
	case "ebpf":
		return "", errors.New("--fast-path=ebpf needs a root daemon; a home's daemon runs as its user (use auto or kernel-cache)")
	}
	return "", fmt.Errorf("unknown fast path %q (auto, kernel-cache or off)", s)
}

// preflight scans the source and checks that the cipher tree fits.
func preflight(m *migration, say func(string, ...any)) (*Scan, error) {
	if say == nil {
		say = func(string, ...any) {}
	}
	say("Scanning %s ...", m.Source)
	scan, err := scanTree(m.Source)
	if err != nil {
		return nil, err
	}
	if len(scan.Mounts) > 0 {
		return nil, fmt.Errorf("file systems are mounted inside %s; unmount them first: %s", m.Source, strings.Join(scan.Mounts, ", "))
	}
	if scan.UnsupportedCount > 0 && !m.Drop {
		return nil, fmt.Errorf("%d extended attributes cannot be stored in cryptfs (only user.* can), e.g.:\n  %s\nRemove them, or pass --drop-unsupported-xattrs to copy the files without them",
			scan.UnsupportedCount, strings.Join(scan.Unsupported, "\n  "))
	}
	var fs unix.Statfs_t
	dir := filepath.Dir(m.Cipher)
	for {
		if err := unix.Statfs(dir, &fs); err == nil || dir == "/" {
			break
		}
		dir = filepath.Dir(dir)
	}
	free := int64(fs.Bavail) * fs.Bsize
	need := scan.Estimate + scan.Estimate/50 + 16<<20 - diskUsage(m.Cipher) // 2% and 16 MiB to spare
	say("%d files and directories, %s; the encrypted copy needs about %s, %s free on %s.",
		scan.Entries, humanBytes(scan.Bytes), humanBytes(max(need, 0)), humanBytes(free), dir)
	if need > free {
		return nil, fmt.Errorf("not enough free space on %s: the encrypted copy needs about %s, %s are free (the plaintext stays until the migration is finished)",
			dir, humanBytes(need), humanBytes(free))
	}
	if fs.Files > 0 && int64(fs.Ffree) < scan.Entries+scan.Dirs+1000 {
		return nil, fmt.Errorf("not enough free inodes on %s: about %d needed, %d free", dir, scan.Entries+scan.Dirs, fs.Ffree)
	}
	return scan, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit && exp < 5; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// createTree creates the cipher directory (root's, 0700, until the swap)
// with a config wrapping a new key under password and the root's name IV,
// both owned by the user (whose daemon reads them). It returns the key.
func createTree(cipher string, password []byte, u *User, weak bool) ([]byte, error) {
	if err := os.Mkdir(cipher, 0o700); err != nil {
		return nil, err
	}
	opts := config.CreateOptions{}
	if weak {
		k := config.InsecureTestKDF()
		opts.KDF, opts.AllowWeakKDF = &k, true
	}
	path := filepath.Join(cipher, config.FileName)
	_, master, err := config.Create(path, password, opts)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(cipher, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		crypt.Wipe(master)
		return nil, err
	}
	defer unix.Close(fd)
	if _, err := ciphertree.WriteDirIV(fd); err != nil {
		crypt.Wipe(master)
		return nil, err
	}
	for _, name := range []string{config.FileName, crypt.DirIVFile} {
		if err := unix.Fchownat(fd, name, u.UID, u.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			crypt.Wipe(master)
			return nil, fmt.Errorf("chown %s: %w", filepath.Join(cipher, name), err)
		}
	}
	return master, nil
}

// copyPhase copies, checks and verifies (steps 3 and 4).
func copyPhase(o MigrateOptions, u *User, m *migration, scan *Scan, say func(string, ...any)) error {
	cfg, err := config.Load(filepath.Join(m.Cipher, config.FileName), config.LoadOptions{AllowWeakKDF: o.AllowWeakKDF})
	if err != nil {
		return err
	}
	master, err := cfg.Unlock(o.Password)
	if errors.Is(err, config.ErrWrongPassword) {
		return fmt.Errorf("%s: %w", m.Cipher, ErrWrongPassword)
	}
	if err != nil {
		return err
	}
	defer crypt.Wipe(master)
	if scan == nil {
		if scan, err = preflight(m, say); err != nil {
			return err
		}
	}
	staging := stagingDir(m.User)
	if err := clearStaging(m, staging); err != nil {
		return err
	}
	progress := func(label string, files, bytes int64) Reporter {
		if o.Progress == nil {
			return nopReporter{}
		}
		return o.Progress(label, files, bytes)
	}
	if err := mountStaging(m, staging, master, o.AllowWeakKDF); err != nil {
		return err
	}
	say("Copying %s into the encrypted %s ...", m.Source, m.Cipher)
	c := newCopier(m.Source, staging, m.Drop, progress("copy  ", scan.Entries, scan.Bytes))
	err = c.run()
	c.bar.Done()
	if uerr := unmountStaging(m, staging); err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("copy: %w (run the same command again to resume)", err)
	}
	if c.dropped > 0 {
		say("Dropped %d extended attributes cryptfs cannot store.", c.dropped)
	}

	say("Checking the encrypted tree (fsck) ...")
	suite, err := crypt.New(master, cfg.CryptOptions())
	if err != nil {
		return err
	}
	rep, err := fsckTree(m, suite)
	suite.Wipe()
	if err != nil {
		return err
	}
	if !rep.Clean() {
		var b strings.Builder
		for i, p := range rep.Problems {
			if i == 10 {
				fmt.Fprintf(&b, "\n  ... and %d more", len(rep.Problems)-10)
				break
			}
			fmt.Fprintf(&b, "\n  %s: %s: %s", p.Kind, p.Lower, p.Detail)
		}
		return fmt.Errorf("fsck found %d problems in the new tree; nothing was swapped:%s", len(rep.Problems), b.String())
	}

	for round := 1; ; round++ {
		if err := mountStaging(m, staging, master, o.AllowWeakKDF); err != nil {
			return err
		}
		say("Verifying every file against %s ...", m.Source)
		bar := progress("verify", scan.Entries, scan.Bytes)
		diffs, err := verifyTree(m.Source, staging, m.Drop, bar)
		bar.Done()
		if len(diffs) > 0 && err == nil && round == 1 {
			say("%d differences (the source changed?); copying them again:%s", len(diffs), listDiffs(diffs, staging, 5))
			c := newCopier(m.Source, staging, m.Drop, nil)
			for _, d := range diffs {
				c.force[d.Path] = true
			}
			err = c.run()
		}
		if uerr := unmountStaging(m, staging); err == nil {
			err = uerr
		}
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if len(diffs) == 0 {
			break
		}
		if round > 1 {
			return fmt.Errorf("the copy differs from %s; nothing was swapped:%s", m.Source, listDiffs(diffs, staging, 20))
		}
	}
	os.Remove(staging)
	say("Verified: every file, byte and attribute matches.")
	if err := withoutAtime(m, false, func(dir string) error { return chownInternal(dir, u) }); err != nil {
		return err
	}
	m.Phase = phaseSwapping
	return m.save()
}

// listDiffs lists up to n differences, paths relative to the staging
// mount, one per line.
func listDiffs(diffs []Diff, staging string, n int) string {
	var b strings.Builder
	for i, d := range diffs {
		if i == n {
			fmt.Fprintf(&b, "\n  ... and %d more", len(diffs)-n)
			break
		}
		fmt.Fprintf(&b, "\n  %s", strings.TrimPrefix(d.String(), staging+"/"))
	}
	return b.String()
}

// fsckTree checks the unmounted tree (withoutAtime, read-only), so that
// reading every block leaves the access times copied from the source as
// they are.
func fsckTree(m *migration, suite *crypt.Suite) (rep *fsck.Report, err error) {
	err = withoutAtime(m, true, func(dir string) error {
		rep, err = fsck.Check(dir, suite, nil)
		if rep != nil {
			for i := range rep.Problems {
				rep.Problems[i].Lower = m.Cipher + strings.TrimPrefix(rep.Problems[i].Lower, dir)
			}
		}
		return err
	})
	return rep, err
}

// withoutAtime runs fn on a bind mount of the cipher tree without access
// time updates (and read-only if ro): what fn reads leaves the access
// times the copy set.
func withoutAtime(m *migration, ro bool, fn func(dir string) error) error {
	dir := stagingDir(m.User) + ".bind"
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount(m.Cipher, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", m.Cipher, err)
	}
	defer unix.Unmount(dir, 0)
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOATIME)
	if ro {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", dir, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s without access times: %w", dir, err)
	}
	return fn(dir)
}

// chownInternal gives the user cryptfs's own files in the tree (directory
// IVs, long-name sidecars), which the staging daemon created as root: the
// home's daemon runs as the user and must read them.
func chownInternal(cipher string, u *User) error {
	return filepath.WalkDir(cipher, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), crypt.ReservedPrefix) || path == filepath.Join(cipher, config.FileName) {
			if err := os.Lchown(path, u.UID, u.GID); err != nil {
				return err
			}
		}
		return nil
	})
}

// mountStaging mounts the cipher tree at the staging directory, for root
// only, served by a daemon that dies with this process.
func mountStaging(m *migration, staging string, master []byte, weak bool) error {
	for _, d := range []string{filepath.Dir(RunDir), filepath.Dir(staging), staging} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	logf, err := os.OpenFile(staging+".log", os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	p, err := Mount(MountOptions{
		Entry:  Entry{User: m.User, Cipher: m.Cipher, Mountpoint: staging, FastPath: "kernel-cache"},
		Secret: master, Key: true, Log: logf, DieWithCaller: true, AllowWeakKDF: weak,
	})
	if err != nil {
		return fmt.Errorf("mount the new tree at %s: %w (its log: %s.log)", staging, err, staging)
	}
	m.Staging = p
	return m.save()
}

// unmountStaging unmounts the staging mount and waits for its daemon.
func unmountStaging(m *migration, staging string) error {
	if err := Unmount(staging); err != nil {
		return err
	}
	if !waitExit(m.Staging, exitTimeout) {
		return fmt.Errorf("the daemon of %s (pid %d) does not exit", staging, m.Staging.PID)
	}
	m.Staging = Proc{}
	return m.save()
}

// clearStaging removes what an interrupted migration left: its daemon
// (which got SIGTERM when the migration died) and its mount.
func clearStaging(m *migration, staging string) error {
	waitExit(m.Staging, exitTimeout)
	for Mounted(staging) {
		if err := Unmount(staging); err != nil {
			if !errors.Is(err, ErrBusy) {
				return err
			}
			return fmt.Errorf("%s (the mount of an interrupted migration) is in use: %s", staging, describeHolders(staging))
		}
	}
	if m.Staging.Running() {
		return fmt.Errorf("the daemon of an interrupted migration (pid %d) still runs", m.Staging.PID)
	}
	return nil
}

// swap puts the encrypted home in place of the plaintext one (step 5).
func swap(m *migration, u *User, say func(string, ...any)) error {
	if m.Phase == phaseSwapping {
		if err := checkLoggedOut(u); err != nil {
			return err
		}
		_, errHome := os.Lstat(m.Home)
		_, errKept := os.Lstat(m.Kept)
		if errKept != nil && errHome == nil {
			if err := os.Rename(m.Home, m.Kept); err != nil {
				return fmt.Errorf("move the plaintext home aside: %w", err)
			}
		}
		if _, err := os.Lstat(m.Home); errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(m.Home, os.FileMode(m.HomeMode&0o777)); err != nil {
				return err
			}
		}
		if err := emptyDir(m.Home); err != nil {
			return err
		}
		if err := os.Lchown(m.Home, u.UID, u.GID); err != nil {
			return err
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, m.Home, m.HomeMode, 0); err != nil {
			return err
		}
		if err := os.Lchown(m.Cipher, u.UID, u.GID); err != nil {
			return err
		}
		if err := os.Chmod(m.Cipher, 0o700); err != nil {
			return err
		}
		if err := Save(Entry{User: m.User, Cipher: m.Cipher, Mountpoint: m.Home, Idle: m.Idle, FastPath: m.FastPath}); err != nil {
			return err
		}
		m.Phase = phaseSwapped
		if err := m.save(); err != nil {
			return err
		}
	}
	say(`The encrypted home is in place: %s logs in with the login password and gets it at %s.
The plaintext is kept at %s until you run:
    cryptfs home migrate --finish %s     (deletes the plaintext, once the user has checked the home)
    cryptfs home migrate --abandon %s    (puts the plaintext home back, deletes the encrypted copy)`,
		m.User, m.Home, m.Kept, m.User, m.User)
	if m.Source != m.Home {
		say("The source %s was not changed; remove it yourself once you no longer need it.", m.Source)
	}
	return nil
}

// emptyDir checks that dir is an empty directory.
func emptyDir(dir string) error {
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("%s should be the empty mountpoint but holds %d entries", dir, len(names))
	}
	return nil
}

// FinishMigration deletes the plaintext home a migration kept aside.
func FinishMigration(user string, say func(string, ...any)) error {
	m, err := loadMigration(user)
	if err != nil {
		return err
	}
	if m == nil || m.Phase != phaseSwapped {
		return fmt.Errorf("no finished migration of %s to confirm", user)
	}
	if _, err := os.Lstat(m.Kept); err == nil {
		say("Deleting the plaintext home %s ...", m.Kept)
		if err := os.RemoveAll(m.Kept); err != nil {
			return err
		}
	}
	os.Remove(stagingDir(user) + ".log")
	if err := os.Remove(migrationPath(user)); err != nil {
		return err
	}
	say("Done. The deleted plaintext may still be readable from the disk's free blocks until they are reused (on SSDs, until the drive discards them); only full-disk encryption or wiping the free space removes it.")
	return nil
}

// AbandonMigration undoes a migration of user at any phase: the plaintext
// home goes back in place, the registry entry and the new cipher tree are
// deleted.
func AbandonMigration(user string, say func(string, ...any)) error {
	m, err := loadMigration(user)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("no migration of %s to abandon", user)
	}
	u, err := LookupUser(user)
	if err != nil {
		return err
	}
	if err := checkLoggedOut(u); err != nil {
		return err
	}
	if Mounted(m.Home) {
		return fmt.Errorf("the encrypted home %s is mounted; run 'cryptfs home lock %s' first", m.Home, user)
	}
	staging := stagingDir(user)
	if err := clearStaging(m, staging); err != nil {
		return err
	}
	os.Remove(staging)
	os.Remove(staging + ".log")
	if err := Remove(user); err != nil {
		return err
	}
	if _, err := os.Lstat(m.Kept); err == nil {
		if _, err := os.Lstat(m.Home); err == nil {
			if err := emptyDir(m.Home); err != nil {
				return err
			}
			if err := os.Remove(m.Home); err != nil {
				return err
			}
		}
		if err := os.Rename(m.Kept, m.Home); err != nil {
			return err
		}
		say("Put the plaintext home back at %s.", m.Home)
	}
	if _, err := os.Lstat(m.Cipher); err == nil {
		if err := os.RemoveAll(m.Cipher); err != nil {
			return err
		}
		say("Deleted the encrypted copy %s.", m.Cipher)
	}
	return os.Remove(migrationPath(user))
}

// CheckLoginPassword reports whether password is user's login password,
// asking pam_unix's helper unix_chkpwd (as root it checks any user). It
// returns an error when the helper is not installed.
func CheckLoginPassword(user string, password []byte) (bool, error) {
	var helper string
	for _, p := range []string{"/usr/sbin/unix_chkpwd", "/sbin/unix_chkpwd"} {
		if _, err := os.Stat(p); err == nil {
			helper = p
			break
		}
	}
	if helper == "" {
		return false, errors.New("unix_chkpwd (libpam-modules-bin) is not installed")
	}
	cmd := exec.Command(helper, user, "nonull")
	in := append(append([]byte(nil), password...), 0)
	defer crypt.Wipe(in)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil
	}
	return err == nil, err
}

// MigrationUnderWay reports whether a migration of user has started and
// not been finished or abandoned.
func MigrationUnderWay(user string) bool {
	m, err := loadMigration(user)
	return err == nil && m != nil
}
