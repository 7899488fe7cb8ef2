package fastpath

import (
	"os"
	"testing"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"
)

func TestAttrFromInodeAttributes(t *testing.T) {
	at := time.Unix(1700000000, 123)
	mt := time.Unix(1700000100, 999999999)
	ct := time.Unix(1700000200, 0)
	base := func(mode os.FileMode, size uint64, rdev uint32) fuseops.InodeAttributes {
		return fuseops.InodeAttributes{
			Size: size, Nlink: 3, Mode: mode, Rdev: rdev,
			Atime: at, Mtime: mt, Ctime: ct, Crtime: time.Unix(5, 0),
			Uid: 1000, Gid: 100,
		}
	}
	times := func(a Attr) Attr {
		a.Atime, a.Atimensec = 1700000000, 123
		a.Mtime, a.Mtimensec = 1700000100, 999999999
		a.Ctime, a.Ctimensec = 1700000200, 0
		a.Nlink, a.Uid, a.Gid = 3, 1000, 100
		return a
	}
	tests := []struct {
		desc string
		ino  uint64
		in   fuseops.InodeAttributes
		want Attr
	}{
		{"regular file, rdev dropped", 2, base(0o644, 1000, 5),
			times(Attr{Ino: 2, Size: 1000, Blocks: 2, Mode: unix.S_IFREG | 0o644})},
		{"empty file", 3, base(0o600, 0, 0),
			times(Attr{Ino: 3, Mode: unix.S_IFREG | 0o600})},
		{"one block exactly", 4, base(0o600, 512, 0),
			times(Attr{Ino: 4, Size: 512, Blocks: 1, Mode: unix.S_IFREG | 0o600})},
		{"one byte over a block", 5, base(0o600, 513, 0),
			times(Attr{Ino: 5, Size: 513, Blocks: 2, Mode: unix.S_IFREG | 0o600})},
		{"directory keeps rdev (jacobsa's S_IFCHR|S_IFBLK bit test)", 6, base(os.ModeDir|0o755, 4096, 7),
			times(Attr{Ino: 6, Size: 4096, Blocks: 8, Mode: unix.S_IFDIR | 0o755, Rdev: 7})},
		{"character device", 7, base(os.ModeDevice|os.ModeCharDevice|0o620, 0, 0x0801),
			times(Attr{Ino: 7, Mode: unix.S_IFCHR | 0o620, Rdev: 0x0801})},
		{"block device", 8, base(os.ModeDevice|0o660, 0, 0x0802),
			times(Attr{Ino: 8, Mode: unix.S_IFBLK | 0o660, Rdev: 0x0802})},
		{"symlink", 9, base(os.ModeSymlink|0o777, 11, 0),
			times(Attr{Ino: 9, Size: 11, Blocks: 1, Mode: unix.S_IFLNK | 0o777})},
		{"fifo, rdev dropped", 10, base(os.ModeNamedPipe|0o600, 0, 9),
			times(Attr{Ino: 10, Mode: unix.S_IFIFO | 0o600})},
		{"socket", 11, base(os.ModeSocket|0o600, 0, 0),
			times(Attr{Ino: 11, Mode: unix.S_IFSOCK | 0o600})},
		{"setuid, setgid, sticky", 12, base(os.ModeSetuid|os.ModeSetgid|os.ModeSticky|0o755, 1, 0),
			times(Attr{Ino: 12, Size: 1, Blocks: 1, Mode: unix.S_IFREG | unix.S_ISUID | unix.S_ISGID | unix.S_ISVTX | 0o755})},
		{"time before 1970 (jacobsa's truncating division)", 13,
			fuseops.InodeAttributes{Mode: 0o600, Atime: time.Unix(-1, 500), Mtime: time.Unix(0, 0), Ctime: time.Unix(0, 0)},
			Attr{Ino: 13, Mode: unix.S_IFREG | 0o600, Atime: 0, Atimensec: 3294967796}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := AttrFromInodeAttributes(tt.ino, tt.in); got != tt.want {
				t.Errorf("AttrFromInodeAttributes:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
