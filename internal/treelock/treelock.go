package treelock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// FileName is the lock file of cipher trees on file systems that refuse
// flock on a directory. It starts with .cryptfs, so it is hidden from the
// plaintext view.
const FileName = ".cryptfs.lock"

// ErrInUse means another daemon (or tool) holds the tree.
var ErrInUse = errors.New("the cipher directory is in use")

// Lock is a held tree lock.
type Lock struct {
	dir  int // O_RDONLY|O_DIRECTORY descriptor of the cipher directory
	file int // the fallback lock file's descriptor, or -1
}

// Options say how to lock.
type Options struct {
	// Shared takes a shared lock (read-only mounts) instead of an
	// exclusive one.
	Shared bool
	// NoSymlinks opens the directory without following a symlink in any
	// component of its path (mountinfo.OpenNoSymlinks): for root, whose
	// daemon must not be redirected by a user who controls a component.
	NoSymlinks bool
}

// Acquire locks the cipher directory dir (an absolute path) without
// waiting. A tree held by others gives an *InUseError (wrapping ErrInUse)
// that names them.
func Acquire(dir string, o Options) (*Lock, error) {
	fd, err := openDir(dir, o.NoSymlinks)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX | unix.LOCK_NB
	if o.Shared {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	err = flockDir(fd, how)
	if err == nil {
		return &Lock{dir: fd, file: -1}, nil
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		unix.Close(fd)
		return nil, inUse(dir, o.Shared)
	}
	if !refused(err) {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	// The file system does not lock directories: the lock file instead.
	ffd, err := openLockFile(fd, o.Shared)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: flock on the directory is not supported, and %s: %w", dir, FileName, err)
	}
	if err := flock(ffd, how); err != nil {
		unix.Close(ffd)
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, inUse(dir, o.Shared)
		}
		return nil, fmt.Errorf("lock %s: %w", filepath.Join(dir, FileName), err)
	}
	return &Lock{dir: fd, file: ffd}, nil
}

// Dir returns the descriptor of the locked directory (valid until Close):
// the very directory the lock is on, for callers that must serve exactly
// it.
func (l *Lock) Dir() int { return l.dir }

// Close releases the lock.
func (l *Lock) Close() error {
	if l.file >= 0 {
		unix.Close(l.file)
		l.file = -1
	}
	if l.dir < 0 {
		return nil
	}
	err := unix.Close(l.dir)
	l.dir = -1
	return err
}

func openDir(dir string, noSymlinks bool) (int, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if noSymlinks {
		return mountinfo.OpenNoSymlinks(dir, flags)
	}
	for {
		fd, err := unix.Open(dir, flags, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", dir, err)
		}
		return fd, nil
	}
}

// flockDir locks the directory; tests replace it to act as a file system
// that refuses.
var flockDir = flock

func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// refused reports whether a flock error means the file system does not
// lock directories (rather than a conflict).
func refused(err error) bool {
	for _, e := range []error{unix.EBADF, unix.EINVAL, unix.ENOLCK, unix.EOPNOTSUPP, unix.ENOTSUP} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func openLockFile(dfd int, shared bool) (int, error) {
	fd, err := unix.Openat(dfd, FileName, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if shared && (errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES)) {
		fd, err = unix.Openat(dfd, FileName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not a regular file", FileName)
	}
	return fd, nil
}

// Holder is a process holding a lock on a tree.
type Holder struct {
	PID    int
	Shared bool
}

// Holders returns the processes that hold a lock on the cipher directory
// dir (or on its lock file), from /proc/locks. It takes no lock.
func Holders(dir string) ([]Holder, error) {
	var keys []string
	var inodes []unix.Stat_t
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dir, err)
	}
	keys, inodes = append(keys, lockKey(st)), append(inodes, st)
	if unix.Lstat(filepath.Join(dir, FileName), &st) == nil {
		keys, inodes = append(keys, lockKey(st)), append(inodes, st)
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hs, err := parseLocks(bufio.NewScanner(f), keys)
	if err != nil {
		return nil, err
	}
	out := hs[:0]
	for _, h := range hs {
		if holdsOpen(h.PID, inodes) {
			out = append(out, h)
		}
	}
	return out, nil
}

// holdsOpen reports whether process pid may really hold a lock on one of
// inodes: /proc/locks names inodes by device and number only, and a
// directory removed while a process keeps it open (a leaked or detached
// daemon's old tree) can share its number with a new one on file systems
// that reuse inode numbers (ext4). A process that has exited (a zombie
// not reaped yet), or has no descriptor on the inode itself (only on a
// deleted one of the same number), does not hold it. Where the process's
// descriptors cannot be read, it is counted.
func holdsOpen(pid int, inodes []unix.Stat_t) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	if stat, err := os.ReadFile(proc + "/stat"); err != nil {
		return false // gone
	} else if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	ents, err := os.ReadDir(proc + "/fd")
	if err != nil {
		return true // not ours to inspect: count it
	}
	for _, e := range ents {
		link := proc + "/fd/" + e.Name()
		var st unix.Stat_t
		if unix.Stat(link, &st) != nil {
			continue
		}
		for _, in := range inodes {
			if st.Dev == in.Dev && st.Ino == in.Ino {
				if target, err := os.Readlink(link); err == nil && !strings.HasSuffix(target, " (deleted)") {
					return true
				}
			}
		}
	}
	return false
}

// lockKey is how /proc/locks names an inode: maj:min:ino, the device
// numbers in hex.
func lockKey(st unix.Stat_t) string {
	return fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
}

// parseLocks reads /proc/locks lines such as
//
//	1: FLOCK  ADVISORY  WRITE 2536 fe:00:9986234 0 EOF
//
// and returns the flock holders of the inodes in keys (maj:min:ino);
// waiters ("1: -> FLOCK ...") are not holders.
func parseLocks(sc *bufio.Scanner, keys []string) ([]Holder, error) {
	var out []Holder
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" {
			continue
		}
		match := false
		for _, k := range keys {
			match = match || f[5] == k
		}
		if !match {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil || pid <= 0 {
			continue
		}
		out = append(out, Holder{PID: pid, Shared: f[3] == "READ"})
	}
	return out, sc.Err()
}

// Probe reports whether a lock as o asks could be taken now, without
// taking one: an *InUseError if a conflicting lock is held. Where
// /proc/locks cannot be read it says nothing (nil); Acquire decides.
func Probe(dir string, o Options) error {
	hs, err := Holders(dir)
	if err != nil {
		return nil
	}
	for _, h := range hs {
		if !(o.Shared && h.Shared) {
			return inUse(dir, o.Shared)
		}
	}
	return nil
}

// InUseError says who holds a tree.
type InUseError struct {
	Dir     string
	Shared  bool              // the refused lock was shared (a read-only mount)
	Holders []Holder          // from /proc/locks (may be empty: unreadable)
	Mounts  []mountinfo.Mount // cryptfs mounts of the tree
}

func (e *InUseError) Unwrap() error { return ErrInUse }

func (e *InUseError) Error() string {
	var where, pids []string
	for _, m := range e.Mounts {
		ro := ""
		if strings.HasPrefix(m.SuperOptions, "ro,") {
			ro = " (read-only)"
		}
		where = append(where, "at "+m.Mountpoint+ro)
	}
	for _, h := range e.Holders {
		pids = append(pids, strconv.Itoa(h.PID))
	}
	s := e.Dir + " is already mounted " + strings.Join(where, " and ")
	if len(where) == 0 {
		s = e.Dir + " is already in use (locked, and no mount of it is visible here)"
	}
	switch len(pids) {
	case 0:
	case 1:
		s += " (daemon pid " + pids[0] + ")"
	default:
		s += " (daemon pids " + strings.Join(pids, ", ") + ")"
	}
	if e.Shared {
		s += ": read-only mounts may share a tree, but not with a read-write one"
	} else {
		s += ": one cryptfs daemon per cipher tree"
	}
	if len(e.Mounts) > 0 {
		s += " (unmount it first: cryptfs unmount " + e.Mounts[0].Mountpoint + ")"
	}
	return s
}

// inUse describes who holds dir.
func inUse(dir string, shared bool) *InUseError {
	e := &InUseError{Dir: dir, Shared: shared}
	e.Holders, _ = Holders(dir)
	e.Mounts = MountsOf(dir)
	return e
}

// MountsOf returns the cryptfs mounts whose cipher directory (the mount
// source) is dir, by inode: a mount made through another path to the same
// directory counts.
func MountsOf(dir string) []mountinfo.Mount {
	var want unix.Stat_t
	if err := unix.Stat(dir, &want); err != nil {
		return nil
	}
	ms, err := mountinfo.Read()
	if err != nil {
		return nil
	}
	var out []mountinfo.Mount
	for _, m := range ms {
		if !m.IsCryptfs() || !filepath.IsAbs(m.Source) {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(m.Source, &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			out = append(out, m)
		}
	}
	return out
}
