package holders

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// Holder is one reason a process keeps the mount busy.
type Holder struct {
	PID  int
	Comm string // the command name (/proc/PID/comm; "?" if gone)
	UID  int    // the real uid (-1 if gone)
	What string // "cwd", "root", "executable", "open file" or "memory map"
	Path string // what it holds, as the kernel names it ("" if unknown)
}

func (h Holder) String() string {
	s := fmt.Sprintf("pid %d (%s, uid %d): %s", h.PID, h.Comm, h.UID, h.What)
	if h.Path != "" {
		s += " " + h.Path
	}
	return s
}

// Result is what Find found.
type Result struct {
	Mount     mountinfo.Mount   // the mount asked about
	Submounts []mountinfo.Mount // the mounts inside it (each keeps it busy)
	Holders   []Holder          // ordered by pid
	// Unreadable counts the processes whose links, descriptors or maps
	// the caller was not allowed to read.
	Unreadable int
}

// String lists the holders and the mounts inside the mount, one per line,
// and says how many processes could not be inspected.
func (r Result) String() string {
	var b strings.Builder
	for _, h := range r.Holders {
		b.WriteString(h.String())
		b.WriteByte('\n')
	}
	for _, m := range r.Submounts {
		fmt.Fprintf(&b, "a mount inside it: %s (%s)\n", m.Mountpoint, m.FSType)
	}
	if r.Unreadable > 0 {
		fmt.Fprintf(&b, "(%d processes not inspected: no permission to read their /proc entries)\n", r.Unreadable)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// At finds what keeps the topmost mount at path busy (see Find).
func At(path string) (Result, error) {
	m, err := mountinfo.At(path)
	if err != nil {
		return Result{}, err
	}
	return Find(m)
}

// Find scans every process for what keeps the mount m, or a mount inside
// it, busy. The caller's own process is included (a caller with a
// descriptor on the mount holds it too).
func Find(m mountinfo.Mount) (Result, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return Result{}, err
	}
	r := Result{Mount: m, Submounts: mountinfo.Below(ms, m.ID)}
	ids := map[int]bool{m.ID: true}
	devs := map[string]bool{mapsDevice(m): true}
	for _, s := range r.Submounts {
		ids[s.ID] = true
		devs[mapsDevice(s)] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return Result{}, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		hs, denied := scan(pid, ids, devs)
		if denied {
			r.Unreadable++
		}
		r.Holders = append(r.Holders, hs...)
	}
	slices.SortStableFunc(r.Holders, func(a, b Holder) int { return a.PID - b.PID })
	return r, nil
}

// Describe names what keeps the mount at path busy on one line, for a
// log: the holders and mounts inside it separated by "; ", or why they
// could not be found.
func Describe(path string) string {
	r, err := At(path)
	if err != nil {
		return err.Error()
	}
	if len(r.Holders) == 0 && len(r.Submounts) == 0 && r.Unreadable == 0 {
		return "no process found (a reference that just went away?)"
	}
	return strings.ReplaceAll(r.String(), "\n", "; ")
}

// mapsDevice is m's device number as /proc/PID/maps writes it.
func mapsDevice(m mountinfo.Mount) string { return fmt.Sprintf("%02x:%02x", m.Major, m.Minor) }

// scan returns what process pid holds on the mounts ids (mappings: on the
// devices devs), and whether some of it could not be read for lack of
// permission. A process that exits meanwhile holds nothing.
func scan(pid int, ids map[int]bool, devs map[string]bool) (hs []Holder, denied bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	comm := "?"
	if b, err := os.ReadFile(dir + "/comm"); err == nil {
		comm = strings.TrimSpace(string(b))
	}
	base := Holder{PID: pid, Comm: comm, UID: realUID(dir)}
	add := func(what, path string) {
		h := base
		h.What, h.Path = what, path
		hs = append(hs, h)
	}
	note := func(err error) {
		if errors.Is(err, os.ErrPermission) {
			denied = true
		}
	}
	for _, l := range []struct{ link, what string }{{"cwd", "cwd"}, {"root", "root"}, {"exe", "executable"}} {
		id, err := linkMountID(dir + "/" + l.link)
		note(err)
		if err == nil && ids[id] {
			target, _ := os.Readlink(dir + "/" + l.link)
			add(l.what, target)
		}
	}
	fds, err := os.ReadDir(dir + "/fdinfo")
	note(err)
	for _, fd := range fds {
		id, err := mountinfo.FdinfoMountID(dir + "/fdinfo/" + fd.Name())
		note(err)
		if err == nil && ids[id] {
			target, _ := os.Readlink(dir + "/fd/" + fd.Name())
			add("open file", target)
		}
	}
	mapped, err := mappedFiles(dir+"/maps", devs)
	note(err)
	for _, name := range mapped {
		add("memory map", name)
	}
	return hs, denied
}

// linkMountID returns the mount ID of what a /proc/PID/{cwd,root,exe}
// link points at. Opening the link with O_PATH jumps straight to its
// dentry without a lookup on the file system, so it costs the mount
// nothing.
func linkMountID(link string) (int, error) {
	fd, err := unix.Open(link, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: link, Err: err}
	}
	defer unix.Close(fd)
	return mountinfo.MountID(fd)
}

// mappedFiles returns the files on the devices devs ("major:minor" in
// hex) that a /proc/PID/maps lists, each once.
func mappedFiles(maps string, devs map[string]bool) ([]string, error) {
	f, err := os.Open(maps)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || !devs[fs[3]] || fs[4] == "0" {
			continue
		}
		name := "inode " + fs[4]
		if len(fs) > 5 {
			name = strings.Join(fs[5:], " ")
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out, sc.Err()
}

// realUID returns the real uid of a /proc/PID directory's process (-1 if
// it is gone).
func realUID(dir string) int {
	data, err := os.ReadFile(dir + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			if n, err := strconv.Atoi(f[1]); err == nil {
				return n
			}
		}
	}
	return -1
}
