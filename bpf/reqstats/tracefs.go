package reqstats

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// tracefsDir returns a directory where tracefs is mounted, mounting it at
// /sys/kernel/tracing when none is (cilium/ebpf's tracepoint attach needs
// it and looks for it the same way).
func tracefsDir() (string, error) {
	if dir, err := findTracefs(); err != nil || dir != "" {
		return dir, err
	}
	const dir = "/sys/kernel/tracing"
	if err := unix.Mount("nodev", dir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil &&
		!errors.Is(err, unix.EBUSY) {
		return "", fmt.Errorf("no tracefs mounted, and mount tracefs on %s: %w", dir, err)
	}
	return dir, nil
}

// findTracefs returns the mount point of a tracefs, or of a debugfs with a
// tracing directory, from /proc/self/mountinfo; "" if there is none.
func findTracefs() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var debugfs string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseMountinfoLine(sc.Text())
		if !ok {
			continue
		}
		switch m.fstype {
		case "tracefs":
			return m.mountpoint, nil
		case "debugfs":
			if _, err := os.Stat(filepath.Join(m.mountpoint, "tracing", "events")); err == nil && debugfs == "" {
				debugfs = filepath.Join(m.mountpoint, "tracing")
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mount table: %w", err)
	}
	return debugfs, nil
}

type mountinfo struct {
	major, minor uint32
	mountpoint   string
	fstype       string
}

// parseMountinfoLine parses one line of /proc/<pid>/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfoLine(line string) (mountinfo, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+1 >= len(fields) {
		return mountinfo{}, false
	}
	var m mountinfo
	if _, err := fmt.Sscanf(fields[2], "%d:%d", &m.major, &m.minor); err != nil {
		return mountinfo{}, false
	}
	m.mountpoint = unescapeMountinfo(fields[4])
	m.fstype = fields[sep+1]
	return m, true
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space, \011
// tab, \012 newline, \134 backslash).
func unescapeMountinfo(s string) string {
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
