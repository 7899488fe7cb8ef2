package home

import (
	"fmt"
	"os"
	osuser "os/user"
	"strconv"
	"strings"
	"syscall"
)

// User is an account from the password database.
type User struct {
	Name   string
	UID    int
	GID    int
	Groups []uint32 // supplementary groups
	Home   string
}

// LookupUser finds name in the password database (NSS).
func LookupUser(name string) (*User, error) {
	if !ValidUser(name) {
		return nil, fmt.Errorf("%q is not a valid user name", name)
	}
	u, err := osuser.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q", name, u.Gid)
	}
	out := &User{Name: name, UID: uid, GID: gid, Home: u.HomeDir}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.ParseUint(s, 10, 32); err == nil {
				out.Groups = append(out.Groups, uint32(g))
			}
		}
	}
	return out, nil
}

// Credential returns the credentials that run a process as u.
func (u *User) Credential() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: u.Groups}
}

// Process is a running process.
type Process struct {
	PID  int
	Comm string
	Cmd  string // the command line, arguments separated by spaces
}

func (p Process) String() string {
	if p.Cmd != "" {
		return fmt.Sprintf("pid %d (%s): %s", p.PID, p.Comm, p.Cmd)
	}
	return fmt.Sprintf("pid %d (%s)", p.PID, p.Comm)
}

// Processes lists the processes with any of their uids (real, effective,
// saved or file system) equal to uid, except those for which skip returns
// true.
func Processes(uid int, skip func(pid int) bool) ([]Process, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || (skip != nil && skip(pid)) {
			continue
		}
		dir := "/proc/" + e.Name()
		status, err := os.ReadFile(dir + "/status")
		if err != nil || !hasUID(string(status), uid) {
			continue
		}
		comm, _ := os.ReadFile(dir + "/comm")
		cmd, _ := os.ReadFile(dir + "/cmdline")
		out = append(out, Process{
			PID:  pid,
			Comm: strings.TrimSpace(string(comm)),
			Cmd:  strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")),
		})
	}
	return out, nil
}

// hasUID reports whether a /proc/PID/status text shows uid among the
// process's four uids.
func hasUID(status string, uid int) bool {
	for _, l := range strings.Split(status, "\n") {
		f := strings.Fields(l)
		if len(f) == 5 && f[0] == "Uid:" {
			for _, s := range f[1:] {
				if n, err := strconv.Atoi(s); err == nil && n == uid {
					return true
				}
			}
			return false
		}
	}
	return false
}
