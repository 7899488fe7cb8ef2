package home

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
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
