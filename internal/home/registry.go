package home

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/daemon"
)

// Where the files of encrypted homes live. Variables so that the package's
// own tests can point them at temporary directories; nothing else changes
// them.
var (
	RegistryDir = "/etc/cryptfs/home"     // USER.conf, one per encrypted home
	CipherBase  = "/home/.cryptfs"        // default parent of the cipher directories
	RunDir      = "/run/cryptfs/sessions" // session state, logs and sockets by uid
)

// Entry is the registry entry of one user's encrypted home.
type Entry struct {
	User       string
	Cipher     string        // the cipher directory (absolute)
	Mountpoint string        // where the plaintext appears: the user's home (absolute)
	Idle       time.Duration // unmount after this long without use (0: never)
	FastPath   string        // the --fast-path of the daemon ("" for auto)
	Transport  string        // the --transport of the daemon ("" for auto, as cryptfs mount)
	Poll       string        // the --poll of the daemon ("" for auto, as cryptfs mount)
}

// Errors of Load.
var (
	ErrNoEntry   = errors.New("no encrypted home registered")
	ErrUntrusted = errors.New("registry file not trusted")
)

// ValidUser reports whether name is a user name the registry accepts: 1 to
// 32 characters from [A-Za-z0-9._-], not starting with '-' or '.'. Names
// become file names here, so nothing else (no '/', no "..") gets through;
// the PAM module applies the same rule.
func ValidUser(name string) bool {
	if len(name) == 0 || len(name) > 32 || name[0] == '-' || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// EntryPath returns the registry file of user.
func EntryPath(user string) string { return filepath.Join(RegistryDir, user+".conf") }

// DefaultCipher returns the default cipher directory of user.
func DefaultCipher(user string) string { return filepath.Join(CipherBase, user) }

// Load reads the registry entry of user. It returns an error wrapping
// ErrNoEntry when there is none, and one wrapping ErrUntrusted when the
// file or a directory above it is not root's alone (owned by root, not
// writable by group or others, the file a regular file and no symlink):
// such an entry is never used.
func Load(user string) (Entry, error) {
	if !ValidUser(user) {
		return Entry{}, fmt.Errorf("%q: %w (not a valid user name)", user, ErrNoEntry)
	}
	for _, dir := range []string{filepath.Dir(RegistryDir), RegistryDir} {
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return Entry{}, fmt.Errorf("%s: %w", user, ErrNoEntry)
			}
			return Entry{}, fmt.Errorf("%s: %w", dir, err)
		}
		if err := rootOnly(dir, &st, unix.S_IFDIR); err != nil {
			return Entry{}, err
		}
	}
	path := EntryPath(user)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Entry{}, fmt.Errorf("%s: %w", user, ErrNoEntry)
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return Entry{}, fmt.Errorf("%s: %w: a symlink", path, ErrUntrusted)
		}
		return Entry{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Entry{}, err
	}
	if err := rootOnly(path, &st, unix.S_IFREG); err != nil {
		return Entry{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return Entry{}, fmt.Errorf("read %s: %w", path, err)
	}
	e, err := Parse(data)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", path, err)
	}
	e.User = user
	return e, nil
}

// rootOnly checks that st (of path) is of type typ, owned by root and not
// writable by group or others.
func rootOnly(path string, st *unix.Stat_t, typ uint32) error {
	switch {
	case st.Mode&unix.S_IFMT != typ:
		return fmt.Errorf("%s: %w: not a regular file or directory as expected", path, ErrUntrusted)
	case st.Uid != 0:
		return fmt.Errorf("%s: %w: owned by uid %d, not root", path, ErrUntrusted, st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s: %w: writable by group or others (mode %04o)", path, ErrUntrusted, st.Mode&0o7777)
	}
	return nil
}

// Parse parses the text of a registry file: "key = value" lines, '#'
// comments and blank lines. Keys: cipher and mountpoint (required,
// absolute clean paths), idle (a Go duration, 0 for none), fast-path
// (auto, kernel-cache, off or ebpf), transport (auto, uring or dev) and
// poll (auto, adaptive or off), the last three as the cryptfs mount flags
// of those names. Unknown or repeated keys are errors.
func Parse(data []byte) (Entry, error) {
	var e Entry
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return Entry{}, fmt.Errorf("line %d: want key = value", n)
		}
		if seen[k] {
			return Entry{}, fmt.Errorf("line %d: %s given twice", n, k)
		}
		seen[k] = true
		switch k {
		case "cipher", "mountpoint":
			if !filepath.IsAbs(v) || filepath.Clean(v) != v || v == "/" {
				return Entry{}, fmt.Errorf("line %d: %s must be an absolute, clean path other than /, not %q", n, k, v)
			}
			if k == "cipher" {
				e.Cipher = v
			} else {
				e.Mountpoint = v
			}
		case "idle":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return Entry{}, fmt.Errorf("line %d: idle must be a duration such as 30m (0 for none), not %q", n, v)
			}
			e.Idle = d
		case "fast-path":
			if _, err := daemon.ParseMode(v); err != nil {
				return Entry{}, fmt.Errorf("line %d: fast-path: %w", n, err)
			}
			e.FastPath = v
		case "transport":
			if _, err := fuse.ParseTransport(v); err != nil {
				return Entry{}, fmt.Errorf("line %d: transport: %w", n, err)
			}
			e.Transport = v
		case "poll":
			if _, err := daemon.ParsePoll(v); err != nil {
				return Entry{}, fmt.Errorf("line %d: poll: %w", n, err)
			}
			e.Poll = v
		default:
			return Entry{}, fmt.Errorf("line %d: unknown key %q", n, k)
		}
	}
	if err := sc.Err(); err != nil {
		return Entry{}, err
	}
	if e.Cipher == "" || e.Mountpoint == "" {
		return Entry{}, errors.New("cipher and mountpoint are required")
	}
	if within(e.Cipher, e.Mountpoint) || within(e.Mountpoint, e.Cipher) {
		return Entry{}, fmt.Errorf("the cipher directory %s and the mountpoint %s must not contain each other", e.Cipher, e.Mountpoint)
	}
	return e, nil
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Marshal returns the text of the registry file of e.
func (e Entry) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The encrypted home of %s (cryptfs home migrate). Read by the PAM module pam_cryptfs.\n", e.User)
	fmt.Fprintf(&b, "cipher = %s\nmountpoint = %s\n", e.Cipher, e.Mountpoint)
	if e.Idle > 0 {
		fmt.Fprintf(&b, "idle = %s\n", e.Idle)
	}
	if e.FastPath != "" {
		fmt.Fprintf(&b, "fast-path = %s\n", e.FastPath)
	}
	if e.Transport != "" {
		fmt.Fprintf(&b, "transport = %s\n", e.Transport)
	}
	if e.Poll != "" {
		fmt.Fprintf(&b, "poll = %s\n", e.Poll)
	}
	return b.Bytes()
}

// Save writes the registry entry of e.User atomically (mode 0644, root),
// creating the registry directories (0755) when missing.
func Save(e Entry) error {
	if !ValidUser(e.User) {
		return fmt.Errorf("%q is not a valid user name", e.User)
	}
	if _, err := Parse(e.Marshal()); err != nil {
		return fmt.Errorf("registry entry of %s: %w", e.User, err)
	}
	for _, dir := range []string{filepath.Dir(RegistryDir), RegistryDir} {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return writeFileAtomic(EntryPath(e.User), e.Marshal(), 0o644)
}

// Remove deletes the registry entry of user (no error if there is none).
func Remove(user string) error {
	if !ValidUser(user) {
		return fmt.Errorf("%q is not a valid user name", user)
	}
	if err := os.Remove(EntryPath(user)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// writeFileAtomic writes data to path: a temporary file beside it, fsync,
// rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
