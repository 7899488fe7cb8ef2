package holders

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

// Holder is one reason a process keeps the mount busy.
type Holder struct {
	PID  int
	Comm string // the command name (/proc/PID/comm)
	UID  int    // the real uid
	What string // "cwd", "root", "open file NAME" or "mapped NAME"
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s, uid %d): %s", h.PID, h.Comm, h.UID, h.What)
}

// Result is what Find found.
type Result struct {
	Holders []Holder
	// Unreadable counts the processes whose cwd, descriptors or maps the
	// caller was not allowed to read.
	Unreadable int
}

// String lists the holders, one per line, and says how many processes
// could not be inspected.
func (r Result) String() string {
	var b strings.Builder
	for _, h := range r.Holders {
		b.WriteString(h.String())
		b.WriteByte('\n')
	}
	if r.Unreadable > 0 {
		fmt.Fprintf(&b, "(%d processes not inspected: no permission to read their /proc entries)\n", r.Unreadable)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Target identifies a mount: its mount ID and device number.
type Target struct {
	ID           int
	Major, Minor uint32
	Mountpoint   string
}

// ErrNotMounted means nothing is mounted at the path.
var ErrNotMounted = errors.New("not a mount point")

// Lookup returns the topmost mount at mountpoint (an absolute, clean path)
// in this process's mount table.
func Lookup(mountpoint string) (Target, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return Target{}, err
	}
	defer f.Close()
	var t Target
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		m, ok := mountinfo.Parse(line)
		if !ok || m.Mountpoint != mountpoint {
			continue
		}
		id, err := strconv.Atoi(strings.Fields(line)[0])
		if err != nil {
			continue
		}
		t, found = Target{ID: id, Major: m.Major, Minor: m.Minor, Mountpoint: m.Mountpoint}, true
	}
	if err := sc.Err(); err != nil {
		return Target{}, err
	}
	if !found {
		return Target{}, fmt.Errorf("%s: %w", mountpoint, ErrNotMounted)
	}
	return t, nil
}

// Find scans every process for what keeps the mount t busy. The caller's
// own process is included (a caller with a descriptor on the mount holds
// it too).
func Find(t Target) (Result, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return Result{}, err
	}
	var r Result
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		hs, denied := scan(pid, t)
		if denied {
			r.Unreadable++
		}
		r.Holders = append(r.Holders, hs...)
	}
	return r, nil
}

// scan returns what process pid holds on t, and whether some of it could
// not be read for lack of permission. A process that exits meanwhile
// holds nothing.
func scan(pid int, t Target) (hs []Holder, denied bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	comm, _ := os.ReadFile(dir + "/comm")
	base := Holder{PID: pid, Comm: strings.TrimSpace(string(comm)), UID: realUID(dir)}
	add := func(what string) {
		h := base
		h.What = what
		hs = append(hs, h)
	}
	note := func(err error) {
		if errors.Is(err, os.ErrPermission) {
			denied = true
		}
	}
	for _, link := range []string{"cwd", "root"} {
		id, err := linkMountID(dir + "/" + link)
		note(err)
		if err == nil && id == t.ID {
			add(link)
		}
	}
	fds, err := os.ReadDir(dir + "/fd")
	note(err)
	for _, fd := range fds {
		id, err := fdMountID(dir + "/fdinfo/" + fd.Name())
		note(err)
		if err == nil && id == t.ID {
			name, _ := os.Readlink(dir + "/fd/" + fd.Name())
			add("open file " + name)
		}
	}
	mapped, err := mappedFiles(dir+"/maps", t.Major, t.Minor)
	note(err)
	for _, name := range mapped {
		add("mapped " + name)
	}
	return hs, denied
}

// linkMountID returns the mount ID of the directory a /proc/PID/cwd or
// root link points at. Opening the link with O_PATH jumps to the directory
// without a lookup on the file system, so it costs the mount nothing.
func linkMountID(link string) (int, error) {
	fd, err := unix.Open(link, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: link, Err: err}
	}
	defer unix.Close(fd)
	return fdMountID("/proc/self/fdinfo/" + strconv.Itoa(fd))
}

// fdMountID reads the mnt_id line of a /proc/PID/fdinfo/N file.
func fdMountID(fdinfo string) (int, error) {
	data, err := os.ReadFile(fdinfo)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "mnt_id:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("%s: no mnt_id", fdinfo)
}

// mappedFiles returns the files of device major:minor that a
// /proc/PID/maps lists, each once.
func mappedFiles(maps string, major, minor uint32) ([]string, error) {
	f, err := os.Open(maps)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x", major, minor)
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || fs[3] != want || fs[4] == "0" {
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
	data, err := os.ReadFile(filepath.Join(dir, "status"))
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
