package mountinfo

import (
	"fmt"
	"strings"
	"testing"
)

const mountinfoSample = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:45 / /mnt/plain rw,nosuid,nodev,relatime shared:20 - fuse reqstatstest rw,user_id=0,group_id=0
41 22 0:46 / /mnt/with\040space rw,relatime shared:21 - fuse.cryptfs /cipher\040dir rw,user_id=1000,group_id=1000
42 22 0:47 / /mnt/stacked rw,relatime shared:22 - fuse a rw,user_id=0,group_id=0
43 42 0:48 / /mnt/stacked rw,relatime shared:23 - fuse.cryptfs b rw,user_id=0,group_id=0
44 22 8:17 / /mnt/blk rw,relatime shared:24 - fuseblk /dev/sdb1 rw,user_id=0,group_id=0
45 22 0:30 / /mnt/tmp rw,relatime shared:25 - tmpfs tmpfs rw
46 22 4095:1048575 / /mnt/maxdev rw,relatime shared:26 - fuse x rw
47 22 0:50 / /mnt/optional rw,relatime shared:27 master:3 unbindable - fuse y rw
`

func TestFUSEDevice(t *testing.T) {
	tests := []struct {
		mountpoint string
		want       uint32
		wantErr    string
	}{
		{"/mnt/plain", 45, ""},
		{"/mnt/with space", 46, ""},
		{"/mnt/stacked", 48, ""},
		{"/mnt/blk", 8<<20 | 17, ""},
		{"/mnt/maxdev", 0xffffffff, ""},
		{"/mnt/optional", 50, ""},
		{"/mnt/tmp", 0, "not FUSE"},
		{"/", 0, "not FUSE"},
		{"/mnt/none", 0, "not a mount point"},
		{"/mnt/with\\040space", 0, "not a mount point"},
	}
	ms, err := parse(strings.NewReader(mountinfoSample))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		got, err := fuseDevice(ms, tt.mountpoint)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("fuseDevice(%q) = %d, %v; want error containing %q", tt.mountpoint, got, err, tt.wantErr)
			}
		case err != nil || got != tt.want:
			t.Errorf("fuseDevice(%q) = %d, %v; want %d", tt.mountpoint, got, err, tt.want)
		}
	}
}

// TestParseFields: every field a caller uses, from lines with and without
// optional fields, escapes in the source and the super options.
func TestParseFields(t *testing.T) {
	ms, err := parse(strings.NewReader(mountinfoSample))
	if err != nil {
		t.Fatal(err)
	}
	m := ms[2]
	if m.ID != 41 || m.Parent != 22 || m.Root != "/" || m.Mountpoint != "/mnt/with space" || m.FSType != "fuse.cryptfs" ||
		m.Source != "/cipher dir" || m.SuperOptions != "rw,user_id=1000,group_id=1000" || !m.IsCryptfs() {
		t.Errorf("parsed %+v", m)
	}
	if uid, err := m.OwnerUID(); err != nil || uid != 1000 {
		t.Errorf("OwnerUID = %d, %v; want 1000", uid, err)
	}
	if _, err := ms[6].OwnerUID(); err == nil {
		t.Errorf("OwnerUID of a mount without user_id succeeded")
	}
	if o := ms[8]; o.ID != 47 || o.FSType != "fuse" || o.Source != "y" || o.SuperOptions != "rw" {
		t.Errorf("line with optional fields: %+v", o)
	}
	var below []int
	for _, b := range Below(ms, 22) {
		below = append(below, b.ID)
	}
	if got := fmt.Sprint(below); got != "[40 41 42 43 44 45 46 47]" {
		t.Errorf("Below(22) = %v", got)
	}
	if b := Below(ms, 42); len(b) != 1 || b[0].ID != 43 {
		t.Errorf("Below(42) = %+v, want the stacked mount 43", b)
	}
}

func TestUnescape(t *testing.T) {
	tests := []struct{ in, want string }{
		{`/plain`, `/plain`},
		{`/a\040b`, `/a b`},
		{`/tab\011nl\012bs\134`, "/tab\tnl\nbs\\"},
		{`/short\04`, `/short\04`},
		{`/not\089octal`, `/not\089octal`},
	}
	for _, tt := range tests {
		if got := unescape(tt.in); got != tt.want {
			t.Errorf("unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParse: no line of the mount table makes Parse panic, and a parsed
// mount has the fields the line's separator promises.
func FuzzParse(f *testing.F) {
	for _, l := range strings.Split(mountinfoSample, "\n") {
		f.Add(l)
	}
	f.Add(`1 2 3:4 / / rw - `)
	f.Add(`1 2 3:4 / / rw shared:1 master:2 - fuse.cryptfs /a\040b rw,user_id=x`)
	f.Fuzz(func(t *testing.T, line string) {
		m, ok := Parse(line)
		if !ok {
			return
		}
		if m.FSType == "" {
			t.Errorf("Parse(%q) = %+v: no file system type", line, m)
		}
		m.OwnerUID()
		m.Option("user_id")
	})
}
