package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
)

// The file system: a root directory with three files. The daemon's sizes
// and xattr values differ from what the program is told to answer, so each
// answer shows where it came from.
const (
	inoRoot  = fuseops.RootInodeID
	inoFile  = 2 // served by the program while attached
	inoGhost = 3 // exists for the daemon, negative entry in the program
	inoOther = 4 // unknown to the program: always an upcall

	daemonFileSize  = 5
	programFileSize = 4242
	daemonGhostSize = 7
	daemonOtherSize = 9

	xattrFast = "user.fast"
	xattrCap  = "security.capability"
)

var (
	daemonFastValue  = []byte("daemon")
	programFastValue = []byte("bpf!")
)

// ioctlAttach is FUSE_DEV_IOC_FASTPATH_ATTACH = _IOW(229, 0x80, __s32).
const ioctlAttach = 1<<30 | 4<<16 | 229<<8 | 0x80

// ctxSize is sizeof(struct fuse_fastpath_ctx).
const ctxSize = 568

type memFS struct {
	fuseutil.NotImplementedFileSystem

	mu     sync.Mutex
	counts map[string]int
}

func (fs *memFS) count(format string, args ...any) {
	fs.mu.Lock()
	fs.counts[fmt.Sprintf(format, args...)]++
	fs.mu.Unlock()
}

func (fs *memFS) snapshot() map[string]int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make(map[string]int, len(fs.counts))
	for k, v := range fs.counts {
		out[k] = v
	}
	return out
}

func attrsOf(ino fuseops.InodeID) (fuseops.InodeAttributes, bool) {
	now := time.Unix(1700000000, 0)
	a := fuseops.InodeAttributes{Nlink: 1, Mode: 0o644, Atime: now, Mtime: now, Ctime: now}
	switch ino {
	case inoRoot:
		a.Mode = os.ModeDir | 0o755
		a.Nlink = 2
	case inoFile:
		a.Size = daemonFileSize
	case inoGhost:
		a.Size = daemonGhostSize
	case inoOther:
		a.Size = daemonOtherSize
	default:
		return a, false
	}
	return a, true
}

var children = map[string]fuseops.InodeID{"file": inoFile, "ghost": inoGhost, "other": inoOther}

func (fs *memFS) LookUpInode(_ context.Context, op *fuseops.LookUpInodeOp) error {
	fs.count("LOOKUP %d/%s", op.Parent, op.Name)
	child, ok := children[op.Name]
	if op.Parent != inoRoot || !ok {
		return fuse.ENOENT
	}
	op.Entry.Child = child
	op.Entry.Attributes, _ = attrsOf(child)
	return nil
}

func (fs *memFS) GetInodeAttributes(_ context.Context, op *fuseops.GetInodeAttributesOp) error {
	fs.count("GETATTR %d", op.Inode)
	a, ok := attrsOf(op.Inode)
	if !ok {
		return fuse.ENOENT
	}
	op.Attributes = a
	return nil
}

func (fs *memFS) GetXattr(_ context.Context, op *fuseops.GetXattrOp) error {
	fs.count("GETXATTR %d/%s", op.Inode, op.Name)
	if op.Inode != inoFile || op.Name != xattrFast {
		return fuse.ENOATTR
	}
	op.BytesRead = len(daemonFastValue)
	if len(op.Dst) == 0 {
		return nil
	}
	if len(op.Dst) < len(daemonFastValue) {
		return syscall.ERANGE
	}
	copy(op.Dst, daemonFastValue)
	return nil
}

func (fs *memFS) ForgetInode(_ context.Context, op *fuseops.ForgetInodeOp) error {
	fs.count("FORGET %d", op.Inode)
	return nil
}

// serve is the child daemon: it mounts mnt, serves it and answers the
// parent's commands, one line each, on stdin/stdout.
func serve(mnt string) error {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/fuse: %w", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("hooktest", mnt, "fuse.hooktest", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	fp, err := fastpath.Load()
	if err != nil {
		return fmt.Errorf("load fast path: %w", err)
	}
	defer fp.Close()
	if err := publish(fp); err != nil {
		return err
	}
	fs := &memFS{counts: make(map[string]int)}
	mfs, err := fuse.Mount(fmt.Sprintf("/dev/fd/%d", fd), fuseutil.NewFileSystemServer(fs), &fuse.MountConfig{
		FSName:  "hooktest",
		Subtype: "hooktest",
		// With the writeback cache the kernel keeps its own size of
		// regular files and ignores the size in later replies, which
		// would hide whose answer a stat got.
		DisableWritebackCaching: true,
	})
	if err != nil {
		return fmt.Errorf("serve %s: %w", mnt, err)
	}
	info, err := fp.Program().Info()
	if err != nil {
		return fmt.Errorf("program info: %w", err)
	}
	id, _ := info.ID()
	fmt.Printf("ready %d\n", id)

	go commands(fd, fs, fp)
	if err := mfs.Join(context.Background()); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	fmt.Println("joined")
	return nil
}

// publish puts the program's answers into its maps, all with zero
// validity so that every stat reaches the FUSE request path again.
func publish(fp *fastpath.FastPath) error {
	a, _ := attrsOf(inoFile)
	a.Size = programFileSize
	if err := fp.PutAttr(inoFile, fastpath.AttrFromInodeAttributes(inoFile, a), 0); err != nil {
		return err
	}
	if err := fp.PutEntry(inoRoot, "file", inoFile, 0, 0); err != nil {
		return err
	}
	if err := fp.PutEntry(inoRoot, "ghost", 0, 0, 0); err != nil {
		return err
	}
	if err := fp.PutXattr(inoFile, xattrFast, programFastValue); err != nil {
		return err
	}
	return fp.PutXattr(inoFile, xattrCap, nil)
}

// progStats is the answer to the "stats" command.
type progStats struct {
	Hits          map[string]uint64
	ServedLookups uint64
}

func commands(fd int, fs *memFS, fp *fastpath.FastPath) {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		words := strings.Fields(in.Text())
		if len(words) == 0 {
			continue
		}
		var reply string
		switch words[0] {
		case "attach":
			reply = errnoReply(fp.Attach(fd))
		case "detach":
			reply = errnoReply(fastpath.Detach(fd))
		case "bad":
			reply = badAttach(fd, words[1])
		case "nobody":
			reply = attachAsNobody(fd, fp.Program())
		case "counts":
			b, _ := json.Marshal(fs.snapshot())
			reply = string(b)
		case "stats":
			reply = statsReply(fp)
		default:
			reply = "unknown command " + words[0]
		}
		fmt.Println(reply)
	}
}

func statsReply(fp *fastpath.FastPath) string {
	st, err := fp.Stats()
	if err != nil {
		return "error " + err.Error()
	}
	ps := progStats{Hits: make(map[string]uint64)}
	for op, s := range st {
		ps.Hits[op.String()] = s.Hits
	}
	if ps.ServedLookups, err = fp.ServedLookups(inoFile); err != nil {
		return "error " + err.Error()
	}
	b, _ := json.Marshal(ps)
	return string(b)
}

// errnoReply is "ok" or the errno's name (EINVAL), "error ..." otherwise.
func errnoReply(err error) string {
	var errno unix.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		return unix.ErrnoName(errno)
	default:
		return "error " + err.Error()
	}
}

func ioctlAttachFD(devFD, progFD int) error {
	return unix.IoctlSetPointerInt(devFD, ioctlAttach, progFD)
}

// badAttach tries to attach something the kernel must refuse, or, for
// "wholectx", a program touching exactly the whole context, which it must
// accept (and which is detached again at once).
func badAttach(devFD int, kind string) string {
	ret1 := asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}
	syscallProg := func(flags uint32, insns asm.Instructions) (*ebpf.Program, error) {
		return ebpf.NewProgram(&ebpf.ProgramSpec{
			Type: ebpf.Syscall, Flags: flags, License: "GPL", Instructions: insns,
		})
	}
	readCtx := func(off int16) asm.Instructions {
		return append(asm.Instructions{asm.LoadMem(asm.R2, asm.R1, off, asm.DWord)}, ret1...)
	}
	var prog *ebpf.Program
	var err error
	switch kind {
	case "socketfilter":
		prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
			Type: ebpf.SocketFilter, License: "GPL", Instructions: ret1,
		})
	case "nonsleepable":
		prog, err = syscallProg(0, ret1)
		if err != nil {
			// 6.1's verifier refuses non-sleepable syscall programs
			// outright, before the ioctl can see one.
			return "loadfail"
		}
	case "bigctx":
		prog, err = syscallProg(unix.BPF_F_SLEEPABLE, readCtx(ctxSize))
	case "wholectx":
		prog, err = syscallProg(unix.BPF_F_SLEEPABLE, readCtx(ctxSize-8))
	case "badfd":
		return errnoReply(ioctlAttachFD(devFD, 1<<20))
	case "notbpf":
		f, err := os.Open("/dev/null")
		if err != nil {
			return "error " + err.Error()
		}
		defer f.Close()
		return errnoReply(ioctlAttachFD(devFD, int(f.Fd())))
	default:
		return "error unknown kind " + kind
	}
	if err != nil {
		return "error load: " + err.Error()
	}
	defer prog.Close()
	reply := errnoReply(ioctlAttachFD(devFD, prog.FD()))
	if kind == "wholectx" && reply == "ok" {
		if err := ioctlAttachFD(devFD, -1); err != nil {
			return "error detach: " + err.Error()
		}
	}
	return reply
}

// attachAsNobody runs "hooktest tryattach" as uid/gid 65534 (no
// capabilities) with the /dev/fuse fd and the program fd as fds 3 and 4.
func attachAsNobody(devFD int, prog *ebpf.Program) string {
	dup := func(fd int, name string) (*os.File, error) {
		nfd, err := unix.Dup(fd)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(nfd), name), nil
	}
	dev, err := dup(devFD, "fuse")
	if err != nil {
		return "error " + err.Error()
	}
	defer dev.Close()
	p, err := dup(prog.FD(), "prog")
	if err != nil {
		return "error " + err.Error()
	}
	defer p.Close()
	self, err := os.Executable()
	if err != nil {
		return "error " + err.Error()
	}
	cmd := exec.Command(self, "tryattach")
	cmd.ExtraFiles = []*os.File{dev, p}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "error tryattach: " + err.Error()
	}
	return strings.TrimSpace(string(out))
}

// tryAttach is the unprivileged helper: attach fd 4 to the connection of
// fd 3 and print the result.
func tryAttach() {
	fmt.Println(errnoReply(ioctlAttachFD(3, 4)))
}
