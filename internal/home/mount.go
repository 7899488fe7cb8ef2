package home

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/daemon"
	"github.com/cryptfs/cryptfs/internal/fusefs"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// The descriptors a home daemon (RunDaemon) inherits.
const (
	fdSecret = 3 // the password or key, read to its end
	fdStatus = 4 // the daemon's reports: "unlocked", then "ok" or "error KIND MESSAGE"
	fdGo     = 5 // root's answer after "unlocked": "mount" once mounted, else closed
	fdDevice = 6 // the /dev/fuse descriptor root mounts
	fdRewrap = 7 // the listening re-wrap socket (MountOptions.Rewrap)
)

// Timeouts of the mount handshake.
const (
	unlockTimeout = 2 * time.Minute  // the KDF, as the user
	readyTimeout  = 30 * time.Second // from mount(2) to a mount that answers
	exitTimeout   = 30 * time.Second // from unmount to the daemon's exit
)

// MountOptions say how Mount mounts a home.
type MountOptions struct {
	Entry Entry
	// User owns the mount and the daemon runs as this user; nil means
	// root (Migrate's private mount, which only root may use).
	User *User
	// Secret is the password, or the master key when Key is set.
	Secret []byte
	Key    bool
	// Log receives the daemon's standard output and error (nil: discarded).
	Log *os.File
	// Rewrap opens the re-wrap socket (SocketPath) for the daemon, so
	// that root can re-wrap the key under a new password without the old
	// one while the home is mounted (ChangePassword).
	Rewrap bool
	// DieWithCaller makes the daemon unmount and exit when the calling
	// process dies (SIGTERM as parent-death signal).
	DieWithCaller bool
	// Exe is the cryptfs binary that runs the daemon; "" means this very
	// binary (/proc/self/exe, which works even where the user may not
	// search the directories above it).
	Exe string
	// AllowWeakKDF accepts a config with KDF parameters below the floor
	// (tests only).
	AllowWeakKDF bool
}

// ErrWrongPassword means the password does not unlock the cipher
// directory's config. It wraps config.ErrWrongPassword.
var ErrWrongPassword = fmt.Errorf("the password does not unlock it: %w", config.ErrWrongPassword)

// Mount mounts the home of o.Entry: the daemon starts as o.User and
// unlocks the config with o.Secret; only then does root mount(2) the
// mountpoint (opened without following symlinks, owned by the user or
// root) for that user on a /dev/fuse descriptor the daemon serves. It
// returns once the mount answers, with the daemon's Proc. On error nothing
// is mounted and no daemon runs.
func Mount(o MountOptions) (Proc, error) {
	e := o.Entry
	uid, gid := 0, 0
	if o.User != nil {
		uid, gid = o.User.UID, o.User.GID
	}
	mfd, err := openDir(e.Mountpoint, uid)
	if err != nil {
		return Proc{}, err
	}
	defer unix.Close(mfd)
	dev, err := daemon.OpenDevice()
	if err != nil {
		return Proc{}, err
	}
	defer dev.Close()

	secretR, secretW, err := os.Pipe()
	if err != nil {
		return Proc{}, err
	}
	defer secretR.Close()
	defer secretW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return Proc{}, err
	}
	defer statusR.Close()
	defer statusW.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		return Proc{}, err
	}
	defer goR.Close()
	defer goW.Close()
	files := []*os.File{secretR, statusW, goR, dev}
	if o.Rewrap {
		l, err := bindRewrap(uid)
		if err != nil {
			return Proc{}, err
		}
		defer l.Close()
		files = append(files, l)
	}

	exe := o.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	args := []string{"home", "daemon"}
	if o.Key {
		args = append(args, "--key")
	}
	if o.Rewrap {
		args = append(args, "--rewrap")
	}
	if o.AllowWeakKDF {
		args = append(args, "--insecure-kdf")
	}
	if e.Idle > 0 {
		args = append(args, "--idle", e.Idle.String())
	}
	if e.FastPath != "" {
		args = append(args, "--fast-path", e.FastPath)
	}
	if e.Transport != "" {
		args = append(args, "--transport", e.Transport)
	}
	if e.Poll != "" {
		args = append(args, "--poll", e.Poll)
	}
	args = append(args, "--", e.Cipher, e.Mountpoint)
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.ExtraFiles = files
	if o.Log != nil {
		cmd.Stdout, cmd.Stderr = o.Log, o.Log
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if o.User != nil {
		cmd.SysProcAttr.Credential = o.User.Credential()
	}
	if o.DieWithCaller {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("start the daemon: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	secretR.Close()
	statusW.Close()
	goR.Close()
	_, err = secretW.Write(o.Secret)
	secretW.Close()
	if err != nil {
		stop()
		return Proc{}, fmt.Errorf("hand the secret to the daemon: %w", err)
	}

	status := bufio.NewReader(statusR)
	if err := expect(statusR, status, "unlocked", unlockTimeout); err != nil {
		stop()
		return Proc{}, err
	}
	mopts := fusefs.MountOptions{Source: e.Cipher}
	if err := daemon.MountDevice(dev, "/proc/self/fd/"+strconv.Itoa(mfd), uid, gid, mopts); err != nil {
		goW.Close() // the daemon exits without serving
		<-exited
		return Proc{}, err
	}
	dev.Close() // the daemon holds the connection now
	if _, err := goW.Write([]byte("mount\n")); err != nil {
		err = fmt.Errorf("tell the daemon to serve: %w", err)
		stop()
		unmountFailed(e.Mountpoint)
		return Proc{}, err
	}
	goW.Close()
	if err := expect(statusR, status, "ok", readyTimeout); err != nil {
		stop()
		unmountFailed(e.Mountpoint)
		return Proc{}, err
	}
	p := ProcOf(cmd.Process.Pid)
	return p, nil
}

// expect reads the daemon's next report and returns nil if it is want,
// else the error it reports (or that it said nothing in time).
func expect(f *os.File, r *bufio.Reader, want string, timeout time.Duration) error {
	f.SetReadDeadline(time.Now().Add(timeout))
	line, err := r.ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == want:
		return nil
	case strings.HasPrefix(line, "error "):
		kind, msg, _ := strings.Cut(strings.TrimPrefix(line, "error "), " ")
		if kind == "wrong-password" {
			return fmt.Errorf("%s: %w", msg, ErrWrongPassword)
		}
		return errors.New(msg)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("the daemon did not report %q within %v", want, timeout)
	default:
		return fmt.Errorf("the daemon exited before reporting %q (see its log)", want)
	}
}

// unmountFailed removes a mount whose daemon failed or was stopped before
// serving it: nothing can have been written to it.
func unmountFailed(mnt string) {
	if unix.Unmount(mnt, unix.UMOUNT_NOFOLLOW) != nil {
		unix.Unmount(mnt, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH)
	}
}

// openDir opens dir as an O_PATH descriptor without following any
// symlink on the way (openat2 RESOLVE_NO_SYMLINKS) and checks that it is a
// directory owned by uid or root.
func openDir(dir string, uid int) (int, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return -1, fmt.Errorf("open the mountpoint %s (no symlinks allowed on the way): %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Uid != uint32(uid) && st.Uid != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("the mountpoint %s is owned by uid %d, not by uid %d or root", dir, st.Uid, uid)
	}
	return fd, nil
}

// bindRewrap creates the re-wrap socket of uid (root's, 0600, in root's
// 0700 RunDir), bound but not listening, for the daemon: the daemon calls
// listen(2) itself, so that the socket's peer credentials (SO_PEERCRED,
// set by listen) are the daemon's, which root's client checks.
func bindRewrap(uid int) (*os.File, error) {
	if err := runDir(); err != nil {
		return nil, err
	}
	path := SocketPath(uid)
	os.Remove(path)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Mounted reports whether a cryptfs mount is the topmost mount at mnt.
func Mounted(mnt string) bool {
	m, err := mountinfo.At(mnt)
	return err == nil && m.FSType == "fuse.cryptfs"
}

// ErrBusy means the kernel refused to unmount because something uses the
// mount (an open file, a working directory, a mapping).
var ErrBusy = errors.New("busy")

// Unmount unmounts the home at mnt the normal way, umount2(mnt,
// UMOUNT_NOFOLLOW): never lazily, never by aborting. It returns an error
// wrapping ErrBusy when the kernel refuses because the mount is in use.
func Unmount(mnt string) error {
	err := unix.Unmount(mnt, unix.UMOUNT_NOFOLLOW)
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("unmount %s: %w", mnt, ErrBusy)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	return nil
}

// waitExit waits until p has exited, at most timeout.
func waitExit(p Proc, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.Running() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
