package harden

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Helpers for tests that look for key material in a process's memory
// (the process stopped, read through /proc/PID/mem: root, or the same
// user for a dumpable child).

// Mapping is one line of /proc/PID/maps and its VmFlags from smaps.
type Mapping struct {
	Start, End uint64
	Perms      string
	Path       string
	Flags      []string // VmFlags: "lo" locked, "dd" not dumped, ...
}

// HasFlag reports whether the mapping has VmFlags flag.
func (m Mapping) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// Mappings returns the mappings of process pid, with their VmFlags.
func Mappings(pid int) ([]Mapping, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok && len(out) > 0 {
			out[len(out)-1].Flags = strings.Fields(rest)
			continue
		}
		start, end, ok := strings.Cut(fields[0], "-")
		if !ok || len(fields) < 5 {
			continue
		}
		s, err1 := strconv.ParseUint(start, 16, 64)
		e, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil {
			continue // a "Key: value" line of the previous mapping
		}
		m := Mapping{Start: s, End: e, Perms: fields[1]}
		if len(fields) > 5 {
			m.Path = fields[5]
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// Hit is where a needle was found.
type Hit struct {
	Needle  int // index into the needles
	Addr    uint64
	Mapping Mapping
}

// FindInProcess reads every readable mapping of process pid (which
// should be stopped) and returns each place where one of the needles
// occurs. Mappings the kernel will not let us read ([vvar] and the like)
// are skipped.
func FindInProcess(pid int, needles [][]byte) ([]Hit, error) {
	maps, err := Mappings(pid)
	if err != nil {
		return nil, err
	}
	mem, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mem")
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	var hits []Hit
	const chunk = 4 << 20
	buf := make([]byte, chunk+64)
	for _, m := range maps {
		if !strings.HasPrefix(m.Perms, "r") || m.Path == "[vvar]" || m.Path == "[vsyscall]" || m.Path == "[vvar_vclock]" {
			continue
		}
		// Overlap consecutive chunks by 63 bytes so that no needle (at
		// most 64 bytes) is split.
		for off := m.Start; off < m.End; off += chunk {
			n := min(uint64(len(buf)), m.End-off)
			got, err := mem.ReadAt(buf[:n], int64(off))
			if err != nil && got == 0 {
				break // unreadable (e.g. a guard page)
			}
			for i, nd := range needles {
				if len(nd) > 64 {
					return nil, fmt.Errorf("needle %d longer than 64 bytes", i)
				}
				data := buf[:got]
				for at := 0; ; {
					j := bytes.Index(data[at:], nd)
					if j < 0 {
						break
					}
					addr := off + uint64(at+j)
					if at+j < chunk || off+chunk >= m.End {
						hits = append(hits, Hit{Needle: i, Addr: addr, Mapping: m})
					}
					at += j + 1
				}
			}
		}
	}
	return hits, nil
}
