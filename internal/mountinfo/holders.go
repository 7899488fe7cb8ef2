package mountinfo

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Holder is one reason a process keeps a mount busy.
type Holder struct {
	PID  int
	Comm string // the process's name (/proc/PID/comm)
	What string // "cwd", "root", "executable", "open file", "memory map"
	Path string // the path inside the mount, as the kernel names it
}

func (h Holder) String() string {
	if h.Path == "" {
		return fmt.Sprintf("pid %d (%s): %s", h.PID, h.Comm, h.What)
	}
	return fmt.Sprintf("pid %d (%s): %s %s", h.PID, h.Comm, h.What, h.Path)
}

// Holders lists the processes that keep the mounts in ms busy (as
// `fuser -m` would): a working directory, root directory or executable
// on one of them, an open file descriptor on one (by the mnt_id of
// /proc/PID/fdinfo, exact), or a memory mapping of one of their files (by
// device number). None of the mounts' file systems is asked anything: a
// dead or hung FUSE daemon cannot hang the caller. unseen counts the
// processes whose descriptors this process may not read (other users'
// processes, for anyone but root).
func Holders(ms []Mount) (holders []Holder, unseen int, err error) {
	ids := map[int]bool{}
	devs := map[string]bool{}
	for _, m := range ms {
		ids[m.ID] = true
		devs[fmt.Sprintf("%02x:%02x", m.Major, m.Minor)] = true
	}
	d, err := os.Open("/proc")
	if err != nil {
		return nil, 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, 0, err
	}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		hs, ok := processHolders(pid, ids, devs)
		if !ok {
			unseen++
		}
		holders = append(holders, hs...)
	}
	slices.SortStableFunc(holders, func(a, b Holder) int { return a.PID - b.PID })
	return holders, unseen, nil
}

// processHolders returns what of process pid is on the mounts; ok is
// false when its descriptors could not be read (and it was not gone).
func processHolders(pid int, ids map[int]bool, devs map[string]bool) (out []Holder, ok bool) {
	base := "/proc/" + strconv.Itoa(pid)
	comm := "?"
	if b, err := os.ReadFile(base + "/comm"); err == nil {
		comm = strings.TrimSpace(string(b))
	}
	add := func(what, path string) { out = append(out, Holder{PID: pid, Comm: comm, What: what, Path: path}) }
	ok = true
	for _, l := range []struct{ link, what string }{{"cwd", "cwd"}, {"root", "root"}, {"exe", "executable"}} {
		id, err := linkMountID(base + "/" + l.link)
		if err != nil {
			if errors.Is(err, os.ErrPermission) {
				ok = false
			}
			continue
		}
		if ids[id] {
			target, _ := os.Readlink(base + "/" + l.link)
			add(l.what, target)
		}
	}
	fds, err := os.ReadDir(base + "/fdinfo")
	if err != nil && errors.Is(err, os.ErrPermission) {
		ok = false
	}
	for _, fd := range fds {
		id, err := fdinfoMountID(base + "/fdinfo/" + fd.Name())
		if err != nil || !ids[id] {
			continue
		}
		target, _ := os.Readlink(base + "/fd/" + fd.Name())
		add("open file", target)
	}
	if f, err := os.Open(base + "/maps"); err == nil {
		seen := map[string]bool{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// address perms offset dev inode path
			fields := strings.Fields(sc.Text())
			if len(fields) >= 6 && devs[fields[3]] && fields[4] != "0" && !seen[fields[5]] {
				seen[fields[5]] = true
				add("memory map", strings.Join(fields[5:], " "))
			}
		}
		f.Close()
	}
	return out, ok
}

// linkMountID returns the mount ID of what a /proc/PID/{cwd,root,exe}
// link points to: it is opened O_PATH (the walk jumps straight to the
// dentry; nothing asks its file system) and the mnt_id of the descriptor
// read.
func linkMountID(link string) (int, error) {
	fd, err := unix.Open(link, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return -1, os.ErrPermission
		}
		return -1, err
	}
	defer unix.Close(fd)
	return MountID(fd)
}

// fdinfoMountID reads the mnt_id line of an fdinfo file.
func fdinfoMountID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "mnt_id:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return -1, fmt.Errorf("%s: no mnt_id", path)
}
