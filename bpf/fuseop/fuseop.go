package fuseop

import "strconv"

// Opcode is a FUSE request opcode (fuse_in_header.opcode).
type Opcode uint32

// The FUSE opcodes, numbered as in enum fuse_opcode.
const (
	Lookup        Opcode = 1
	Forget        Opcode = 2
	Getattr       Opcode = 3
	Setattr       Opcode = 4
	Readlink      Opcode = 5
	Symlink       Opcode = 6
	Mknod         Opcode = 8
	Mkdir         Opcode = 9
	Unlink        Opcode = 10
	Rmdir         Opcode = 11
	Rename        Opcode = 12
	Link          Opcode = 13
	Open          Opcode = 14
	Read          Opcode = 15
	Write         Opcode = 16
	Statfs        Opcode = 17
	Release       Opcode = 18
	Fsync         Opcode = 20
	Setxattr      Opcode = 21
	Getxattr      Opcode = 22
	Listxattr     Opcode = 23
	Removexattr   Opcode = 24
	Flush         Opcode = 25
	Init          Opcode = 26
	Opendir       Opcode = 27
	Readdir       Opcode = 28
	Releasedir    Opcode = 29
	Fsyncdir      Opcode = 30
	Getlk         Opcode = 31
	Setlk         Opcode = 32
	Setlkw        Opcode = 33
	Access        Opcode = 34
	Create        Opcode = 35
	Interrupt     Opcode = 36
	Bmap          Opcode = 37
	Destroy       Opcode = 38
	Ioctl         Opcode = 39
	Poll          Opcode = 40
	NotifyReply   Opcode = 41
	BatchForget   Opcode = 42
	Fallocate     Opcode = 43
	Readdirplus   Opcode = 44
	Rename2       Opcode = 45
	Lseek         Opcode = 46
	CopyFileRange Opcode = 47
	Setupmapping  Opcode = 48
	Removemapping Opcode = 49
	Syncfs        Opcode = 50
	Tmpfile       Opcode = 51
	Statx         Opcode = 52
	CuseInit      Opcode = 4096
)

var names = map[Opcode]string{
	Lookup:        "LOOKUP",
	Forget:        "FORGET",
	Getattr:       "GETATTR",
	Setattr:       "SETATTR",
	Readlink:      "READLINK",
	Symlink:       "SYMLINK",
	Mknod:         "MKNOD",
	Mkdir:         "MKDIR",
	Unlink:        "UNLINK",
	Rmdir:         "RMDIR",
	Rename:        "RENAME",
	Link:          "LINK",
	Open:          "OPEN",
	Read:          "READ",
	Write:         "WRITE",
	Statfs:        "STATFS",
	Release:       "RELEASE",
	Fsync:         "FSYNC",
	Setxattr:      "SETXATTR",
	Getxattr:      "GETXATTR",
	Listxattr:     "LISTXATTR",
	Removexattr:   "REMOVEXATTR",
	Flush:         "FLUSH",
	Init:          "INIT",
	Opendir:       "OPENDIR",
	Readdir:       "READDIR",
	Releasedir:    "RELEASEDIR",
	Fsyncdir:      "FSYNCDIR",
	Getlk:         "GETLK",
	Setlk:         "SETLK",
	Setlkw:        "SETLKW",
	Access:        "ACCESS",
	Create:        "CREATE",
	Interrupt:     "INTERRUPT",
	Bmap:          "BMAP",
	Destroy:       "DESTROY",
	Ioctl:         "IOCTL",
	Poll:          "POLL",
	NotifyReply:   "NOTIFY_REPLY",
	BatchForget:   "BATCH_FORGET",
	Fallocate:     "FALLOCATE",
	Readdirplus:   "READDIRPLUS",
	Rename2:       "RENAME2",
	Lseek:         "LSEEK",
	CopyFileRange: "COPY_FILE_RANGE",
	Setupmapping:  "SETUPMAPPING",
	Removemapping: "REMOVEMAPPING",
	Syncfs:        "SYNCFS",
	Tmpfile:       "TMPFILE",
	Statx:         "STATX",
	CuseInit:      "CUSE_INIT",
}

// String returns the kernel's name of o without the FUSE_ prefix
// ("LOOKUP"), or "OP_<n>" for a number the table does not know.
func (o Opcode) String() string {
	if n, ok := names[o]; ok {
		return n
	}
	return "OP_" + strconv.FormatUint(uint64(o), 10)
}

// Known reports whether o is an opcode of the FUSE protocol.
func (o Opcode) Known() bool {
	_, ok := names[o]
	return ok
}
