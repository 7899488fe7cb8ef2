package fastpath

import (
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
)

// AttrFromInodeAttributes converts attributes exactly as jacobsa/fuse does
// for its own LOOKUP and GETATTR replies (convertAttributes in
// conversions.go), so an answer from the fast path is byte-for-byte the
// answer the daemon would give: st_blocks from Size in 512-byte units,
// blksize 0 (the kernel's default), times as Unix seconds and nanoseconds,
// the mode with its type bits, and rdev kept whenever the mode has a bit of
// S_IFCHR or S_IFBLK set (jacobsa's test, which also keeps it for
// directories, symlinks and sockets). Crtime and flags are not sent on
// Linux.
func AttrFromInodeAttributes(ino uint64, a fuseops.InodeAttributes) Attr {
	out := Attr{
		Ino:    ino,
		Size:   a.Size,
		Blocks: (a.Size + 512 - 1) / 512,
		Nlink:  a.Nlink,
		Uid:    a.Uid,
		Gid:    a.Gid,
		Mode:   fuse.ConvertGoMode(a.Mode),
	}
	out.Atime, out.Atimensec = convertTime(a.Atime)
	out.Mtime, out.Mtimensec = convertTime(a.Mtime)
	out.Ctime, out.Ctimensec = convertTime(a.Ctime)
	if out.Mode&(syscall.S_IFCHR|syscall.S_IFBLK) != 0 {
		out.Rdev = a.Rdev
	}
	return out
}

// convertTime is jacobsa/fuse's convertTime.
func convertTime(t time.Time) (secs uint64, nsec uint32) {
	totalNano := t.UnixNano()
	secs = uint64(totalNano / 1e9)
	nsec = uint32(totalNano % 1e9)
	return secs, nsec
}
