package mountinfo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one line of the mount table.
type Mount struct {
	ID, Parent   int // mount IDs (unique system-wide; fdinfo's mnt_id)
	Major, Minor uint32
	Root         string // the mount's root within its file system
	Mountpoint   string
	FSType       string // e.g. "ext4", "fuse.cryptfs"
	Source       string // e.g. "/dev/sda1"; a cryptfs mount's cipher directory
	SuperOptions string // the file system's options, e.g. "rw,user_id=1000,group_id=1000"
}

// Option returns the value of a super option ("user_id" -> "1000") and
// whether the mount has it.
func (m Mount) Option(name string) (string, bool) {
	for _, o := range strings.Split(m.SuperOptions, ",") {
		k, v, _ := strings.Cut(o, "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// OwnerUID returns the uid a FUSE mount belongs to (its user_id option:
// the user who mounted it, whose daemon serves it).
func (m Mount) OwnerUID() (int, error) {
	v, ok := m.Option("user_id")
	if !ok {
		return -1, fmt.Errorf("%s: no user_id in the mount options %q", m.Mountpoint, m.SuperOptions)
	}
	uid, err := strconv.Atoi(v)
	if err != nil || uid < 0 {
		return -1, fmt.Errorf("%s: bad user_id %q", m.Mountpoint, v)
	}
	return uid, nil
}

// IsCryptfs reports whether the mount is a cryptfs mount.
func (m Mount) IsCryptfs() bool { return m.FSType == "fuse.cryptfs" }

// Device returns the mount's device number, major<<20|minor.
func (m Mount) Device() uint32 { return m.Major<<20 | m.Minor }

// IsFUSE reports whether the mount is a FUSE file system.
func (m Mount) IsFUSE() bool {
	return m.FSType == "fuse" || m.FSType == "fuseblk" || strings.HasPrefix(m.FSType, "fuse.")
}

// Read returns the mount table of this process.
func Read() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	return parse(f)
}

func parse(r io.Reader) ([]Mount, error) {
	var ms []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if m, ok := Parse(sc.Text()); ok {
			ms = append(ms, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return ms, nil
}

// Parse parses one line of /proc/<pid>/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func Parse(line string) (Mount, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+1 >= len(fields) {
		return Mount{}, false
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(fields[0]); err != nil {
		return Mount{}, false
	}
	if m.Parent, err = strconv.Atoi(fields[1]); err != nil {
		return Mount{}, false
	}
	if _, err := fmt.Sscanf(fields[2], "%d:%d", &m.Major, &m.Minor); err != nil {
		return Mount{}, false
	}
	m.Root = unescape(fields[3])
	m.Mountpoint = unescape(fields[4])
	m.FSType = fields[sep+1]
	if sep+2 < len(fields) {
		m.Source = unescape(fields[sep+2])
	}
	if sep+3 < len(fields) {
		m.SuperOptions = unescape(fields[sep+3])
	}
	return m, true
}

// unescape undoes the kernel's octal escapes (\040 for space, \011 tab,
// \012 newline, \134 backslash).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// ErrNotMounted means nothing is mounted at the path.
var ErrNotMounted = errors.New("not a mount point")

// At returns the topmost mount at path (made absolute and cleaned;
// symlinks are not resolved).
func At(path string) (Mount, error) {
	ms, err := Read()
	if err != nil {
		return Mount{}, err
	}
	return at(ms, path)
}

func at(ms []Mount, path string) (Mount, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Mount{}, err
	}
	var top Mount
	found := false
	for _, m := range ms {
		if m.Mountpoint == abs {
			top, found = m, true // later lines are stacked on earlier ones
		}
	}
	if !found {
		return Mount{}, fmt.Errorf("%s: %w", abs, ErrNotMounted)
	}
	return top, nil
}

// Below returns the mounts stacked inside the mount with ID id (its
// children, their children, ...), from the table ms.
func Below(ms []Mount, id int) []Mount {
	var out []Mount
	ids := map[int]bool{id: true}
	for changed := true; changed; {
		changed = false
		for _, m := range ms {
			if ids[m.Parent] && !ids[m.ID] {
				ids[m.ID] = true
				out = append(out, m)
				changed = true
			}
		}
	}
	return out
}

// FUSEDevice returns the device number of the FUSE connection mounted at
// path, from the mount table alone.
func FUSEDevice(path string) (uint32, error) {
	ms, err := Read()
	if err != nil {
		return 0, err
	}
	return fuseDevice(ms, path)
}

func fuseDevice(ms []Mount, path string) (uint32, error) {
	m, err := at(ms, path)
	if err != nil {
		return 0, err
	}
	if !m.IsFUSE() {
		return 0, fmt.Errorf("%s: mounted file system is %s, not FUSE", m.Mountpoint, m.FSType)
	}
	if m.Major >= 1<<12 || m.Minor >= 1<<20 {
		return 0, fmt.Errorf("%s: device %d:%d out of range", m.Mountpoint, m.Major, m.Minor)
	}
	return m.Device(), nil
}

// AbortFUSE aborts the FUSE connection dev through fusectl (mounting it at
// /sys/fs/fuse/connections if needed): requests pending on a dead or hung
// daemon fail at once instead of leaving processes in D state.
func AbortFUSE(dev uint32) error {
	const ctl = "/sys/fs/fuse/connections"
	conn := filepath.Join(ctl, fmt.Sprint(dev))
	if _, err := os.Stat(conn); err != nil {
		if err := unix.Mount("fusectl", ctl, "fusectl", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount fusectl: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(conn, "abort"), []byte("1"), 0); err != nil {
		return fmt.Errorf("abort FUSE connection %d: %w", dev, err)
	}
	return nil
}
