package fstest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// opResult is what one side returned for an operation; both sides must agree on all of it.
type opResult struct {
	errno unix.Errno
	n     int64  // bytes written, read or mapped
	data  []byte // bytes read
	info  string // stat fields an operation reports (utimens, slot-stat)
}

func (r opResult) String() string {
	s := "ok"
	if r.errno != 0 {
		s = unix.ErrnoName(r.errno)
	}
	if r.n != 0 {
		s += fmt.Sprintf(" n=%d", r.n)
	}
	if r.info != "" {
		s += " " + r.info
	}
	return s
}

// diff describes how got (the SUT's result) differs from want (the reference's), or "".
func (r opResult) diff(want opResult) string {
	if r.errno != want.errno || r.n != want.n || r.info != want.info {
		return fmt.Sprintf("got %s, reference got %s", r, want)
	}
	if d := diffBytes(r.data, want.data); d != "" {
		return "data read differs from the reference: " + d
	}
	return ""
}

// side applies operations to one directory.
type side struct {
	root   string
	slots  [NumSlots]int // descriptors, -1 when closed
	helper *mmapHelper
}

func newSide(root string, h *mmapHelper) (*side, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("model directory %s: %w", root, err)
	}
	s := &side{root: abs, helper: h}
	for i := range s.slots {
		s.slots[i] = -1
	}
	return s, nil
}

func (s *side) close() {
	for i, fd := range s.slots {
		if fd >= 0 {
			unix.Close(fd)
			s.slots[i] = -1
		}
	}
}

func (s *side) path(rel string) string {
	if rel == "" {
		return s.root
	}
	return s.root + "/" + rel
}

// errnoOf extracts the errno of err (EIO for anything without one).
func errnoOf(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EIO
}

// apply performs op and reports its result. err is a failure of the checker itself.
func (s *side) apply(op Op) (opResult, error) {
	var r opResult
	p := s.path(op.Path)
	switch op.Kind {
	case OpWrite:
		fd, err := retry(func() (int, error) { return unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644) })
		if err != nil {
			return opResult{errno: errnoOf(err)}, nil
		}
		r = pwriteAll(fd, randBytes(op.Seed, int(op.Len)), op.Off)
		if err := retry0(func() error { return unix.Close(fd) }); err != nil && r.errno == 0 {
			r.errno = errnoOf(err)
		}
	case OpRead:
		fd, err := retry(func() (int, error) { return unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
		if err != nil {
			return opResult{errno: errnoOf(err)}, nil
		}
		r = preadAll(fd, op.Len, op.Off)
		unix.Close(fd)
	case OpTruncate:
		r.errno = errnoOf(retry0(func() error { return unix.Truncate(p, op.Len) }))
	case OpFallocate:
		fd, err := retry(func() (int, error) { return unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0) })
		if err != nil {
			return opResult{errno: errnoOf(err)}, nil
		}
		r.errno = errnoOf(retry0(func() error { return unix.Fallocate(fd, op.Mode, op.Off, op.Len) }))
		if err := retry0(func() error { return unix.Close(fd) }); err != nil && r.errno == 0 {
			r.errno = errnoOf(err)
		}
	case OpMmapWrite:
		rep, err := s.helper.do(mmapRequest{Path: p, Off: op.Off, Len: op.Len, Seed: op.Seed})
		if err != nil {
			return r, err
		}
		r.errno, r.n = unix.Errno(rep.Errno), rep.N
	case OpRename:
		r.errno = errnoOf(retry0(func() error { return unix.Rename(p, s.path(op.To)) }))
	case OpLink:
		r.errno = errnoOf(retry0(func() error { return unix.Link(p, s.path(op.To)) }))
	case OpUnlink:
		r.errno = errnoOf(retry0(func() error { return unix.Unlink(p) }))
	case OpMkdir:
		r.errno = errnoOf(retry0(func() error { return unix.Mkdir(p, 0o755) }))
	case OpRmdir:
		r.errno = errnoOf(retry0(func() error { return unix.Rmdir(p) }))
	case OpSymlink:
		r.errno = errnoOf(retry0(func() error { return unix.Symlink(op.Target, p) }))
	case OpSetxattr:
		v := randBytes(op.Seed, int(op.Len))
		r.errno = errnoOf(retry0(func() error { return unix.Lsetxattr(p, op.Name, v, int(op.Mode)) }))
	case OpRemovexattr:
		r.errno = errnoOf(retry0(func() error { return unix.Lremovexattr(p, op.Name) }))
	case OpChmod:
		r.errno = errnoOf(retry0(func() error { return unix.Chmod(p, op.Mode) }))
	case OpUtimens:
		ts := []unix.Timespec{
			{Sec: op.Times[0][0], Nsec: op.Times[0][1]},
			{Sec: op.Times[1][0], Nsec: op.Times[1][1]},
		}
		err := retry0(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, op.Flags) })
		if r.errno = errnoOf(err); r.errno == 0 {
			var st unix.Stat_t
			statFn := unix.Stat
			if op.Flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
				statFn = unix.Lstat
			}
			if err := retry0(func() error { return statFn(p, &st) }); err != nil {
				r.info = "stat after utimens: " + errnoName(err)
				break
			}
			// Only the times that were set are defined; an omitted one is whatever it was.
			if op.Times[0][1] != unix.UTIME_OMIT {
				r.info += " atime=" + tsString(st.Atim)
			}
			if op.Times[1][1] != unix.UTIME_OMIT {
				r.info += " mtime=" + tsString(st.Mtim)
			}
		}
	case OpFsync:
		fd, err := retry(func() (int, error) { return unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
		if err != nil {
			return opResult{errno: errnoOf(err)}, nil
		}
		r.errno = errnoOf(retry0(func() error { return unix.Fsync(fd) }))
		unix.Close(fd)
	case OpOpen:
		if fd := s.slots[op.Slot]; fd >= 0 {
			unix.Close(fd)
			s.slots[op.Slot] = -1
		}
		fd, err := retry(func() (int, error) { return unix.Open(p, op.Flags|unix.O_CLOEXEC, 0o644) })
		if err != nil {
			return opResult{errno: errnoOf(err)}, nil
		}
		s.slots[op.Slot] = fd
	case OpSlotWrite, OpSlotRead, OpSlotTrunc, OpSlotStat, OpClose:
		fd := s.slots[op.Slot]
		if fd < 0 {
			return opResult{errno: unix.EBADF}, nil
		}
		switch op.Kind {
		case OpSlotWrite:
			r = pwriteAll(fd, randBytes(op.Seed, int(op.Len)), op.Off)
		case OpSlotRead:
			r = preadAll(fd, op.Len, op.Off)
		case OpSlotTrunc:
			r.errno = errnoOf(retry0(func() error { return unix.Ftruncate(fd, op.Len) }))
		case OpSlotStat:
			var st unix.Stat_t
			if err := retry0(func() error { return unix.Fstat(fd, &st) }); err != nil {
				r.errno = errnoOf(err)
				break
			}
			r.info = fmt.Sprintf("size=%d mode=%#o nlink=%d", st.Size, st.Mode, st.Nlink)
		case OpClose:
			s.slots[op.Slot] = -1
			r.errno = errnoOf(unix.Close(fd))
		}
	default:
		return r, fmt.Errorf("unknown model operation %q", op.Kind)
	}
	return r, nil
}

// pwriteAll writes all of data at off, looping over short writes.
func pwriteAll(fd int, data []byte, off int64) opResult {
	var r opResult
	for len(data) > 0 {
		n, err := retry(func() (int, error) { return unix.Pwrite(fd, data, off) })
		if err != nil {
			r.errno = errnoOf(err)
			break
		}
		data, off, r.n = data[n:], off+int64(n), r.n+int64(n)
	}
	return r
}

// preadAll reads up to n bytes at off, looping over short reads until end of file.
func preadAll(fd int, n, off int64) opResult {
	var r opResult
	buf := make([]byte, n)
	got := 0
	for got < len(buf) {
		k, err := retry(func() (int, error) { return unix.Pread(fd, buf[got:], off+int64(got)) })
		if err != nil {
			r.errno = errnoOf(err)
			break
		}
		if k == 0 {
			break
		}
		got += k
	}
	r.data, r.n = buf[:got], int64(got)
	return r
}

// runner applies operations to the SUT and the reference and compares.
type runner struct {
	sut, ref *side
	helper   *mmapHelper
	remount  func() (string, error)
}

func newRunner(sut, ref string, remount func() (string, error)) (*runner, error) {
	h, err := startMmapHelper()
	if err != nil {
		return nil, err
	}
	s, err := newSide(sut, h)
	if err != nil {
		h.close()
		return nil, err
	}
	rf, err := newSide(ref, h)
	if err != nil {
		h.close()
		return nil, err
	}
	return &runner{sut: s, ref: rf, helper: h, remount: remount}, nil
}

func (r *runner) close() {
	r.sut.close()
	r.ref.close()
	r.helper.close()
}

// step applies op to both sides and compares the results.
func (r *runner) step(i int, op Op) (*Divergence, opResult, error) {
	if op.Kind == OpRemount {
		r.sut.close()
		r.ref.close()
		if r.remount == nil {
			return nil, opResult{}, nil // nothing to remount: closing the slots is all
		}
		root, err := r.remount()
		if err != nil {
			return nil, opResult{}, fmt.Errorf("operation %d: remount: %w", i, err)
		}
		if r.sut, err = newSide(root, r.helper); err != nil {
			return nil, opResult{}, err
		}
		return nil, opResult{}, nil
	}
	got, err := r.sut.apply(op)
	if err != nil {
		return nil, got, fmt.Errorf("operation %d (%s) on %s: %w", i, op, r.sut.root, err)
	}
	want, err := r.ref.apply(op)
	if err != nil {
		return nil, want, fmt.Errorf("operation %d (%s) on %s: %w", i, op, r.ref.root, err)
	}
	if d := got.diff(want); d != "" {
		op := op
		return &Divergence{Index: i, Op: &op, Detail: d}, want, nil
	}
	return nil, want, nil
}

// check compares the two trees.
func (r *runner) check(i int) *Divergence {
	if err := CompareTrees(r.sut.root, r.ref.root); err != nil {
		return &Divergence{Index: i, Detail: err.Error()}
	}
	return nil
}

// The mmap helper: a child process (the test binary re-executed with mmapHelperEnv set)
// that serves mmap writes, one JSON request per line on its standard input, one JSON
// reply per line on its standard output. The init function below serves it before any
// test runs, so every test binary that links this package can be the helper.
const mmapHelperEnv = "FSTEST_MMAP_HELPER"

type mmapRequest struct {
	Path string `json:"path"`
	Off  int64  `json:"off"`
	Len  int64  `json:"len"`
	Seed uint64 `json:"seed"`
}

type mmapReply struct {
	Errno int    `json:"errno"`
	N     int64  `json:"n"`
	Fatal string `json:"fatal,omitempty"`
}

func init() {
	if os.Getenv(mmapHelperEnv) == "1" {
		os.Exit(mmapHelperMain(os.Stdin, os.Stdout))
	}
}

func mmapHelperMain(in io.Reader, out io.Writer) int {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var req mmapRequest
		var rep mmapReply
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			rep.Fatal = fmt.Sprintf("decode request: %v", err)
		} else {
			rep = mmapWrite(req)
		}
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(os.Stderr, "fstest mmap helper:", err)
			return 2
		}
	}
	return 0
}

// mmapWrite maps [Off, Off+Len) of the file, clipped to its size (a mapping past the end
// of a file cannot be written), copies the data in, syncs and unmaps.
func mmapWrite(req mmapRequest) (rep mmapReply) {
	// A page that cannot be read in (EIO from the filesystem) raises SIGBUS when touched;
	// report it as EFAULT instead of dying.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			rep = mmapReply{Errno: int(unix.EFAULT)}
		}
	}()
	fd, err := retry(func() (int, error) { return unix.Open(req.Path, unix.O_RDWR|unix.O_CLOEXEC, 0) })
	if err != nil {
		return mmapReply{Errno: int(errnoOf(err))}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return mmapReply{Errno: int(errnoOf(err))}
	}
	end := min(req.Off+req.Len, st.Size)
	if req.Off >= end {
		return mmapReply{}
	}
	page := int64(os.Getpagesize())
	start := req.Off &^ (page - 1)
	m, err := unix.Mmap(fd, start, int(end-start), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return mmapReply{Errno: int(errnoOf(err))}
	}
	data := randBytes(req.Seed, int(req.Len))
	n := copy(m[req.Off-start:], data[:end-req.Off])
	err = unix.Msync(m, unix.MS_SYNC)
	if uerr := unix.Munmap(m); err == nil {
		err = uerr
	}
	return mmapReply{Errno: int(errnoOf(err)), N: int64(n)}
}

// mmapHelper is the parent's end of a running helper process.
type mmapHelper struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr bytes.Buffer
}

func startMmapHelper() (*mmapHelper, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("mmap helper: find test executable: %w", err)
	}
	h := &mmapHelper{cmd: exec.Command(exe)}
	h.cmd.Env = append(os.Environ(), mmapHelperEnv+"=1")
	h.cmd.Stderr = &h.stderr
	if h.in, err = h.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("mmap helper: %w", err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("mmap helper: %w", err)
	}
	h.out = bufio.NewReader(stdout)
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("mmap helper: start: %w", err)
	}
	return h, nil
}

func (h *mmapHelper) do(req mmapRequest) (mmapReply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	raw, err := json.Marshal(req)
	if err != nil {
		return mmapReply{}, fmt.Errorf("mmap helper: encode: %w", err)
	}
	if _, err := h.in.Write(append(raw, '\n')); err != nil {
		return mmapReply{}, fmt.Errorf("mmap helper: send: %w (stderr: %s)", err, h.stderr.String())
	}
	line, err := h.out.ReadBytes('\n')
	if err != nil {
		return mmapReply{}, fmt.Errorf("mmap helper: receive: %w (stderr: %s)", err, h.stderr.String())
	}
	var rep mmapReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return rep, fmt.Errorf("mmap helper: bad reply %q: %w", line, err)
	}
	if rep.Fatal != "" {
		return rep, fmt.Errorf("mmap helper: %s", rep.Fatal)
	}
	return rep, nil
}

func (h *mmapHelper) close() {
	h.in.Close()
	h.cmd.Wait()
}

// fmtTime formats a {sec, nsec} pair of an OpUtimens.
func fmtTime(t [2]int64) string {
	switch t[1] {
	case unix.UTIME_OMIT:
		return "omit"
	case unix.UTIME_NOW:
		return "now"
	}
	return tsString(unix.Timespec{Sec: t[0], Nsec: t[1]})
}

// fmtOpenFlags names the open flags the generator uses.
func fmtOpenFlags(f int) string {
	var parts []string
	switch f & unix.O_ACCMODE {
	case unix.O_RDONLY:
		parts = append(parts, "O_RDONLY")
	case unix.O_WRONLY:
		parts = append(parts, "O_WRONLY")
	default:
		parts = append(parts, "O_RDWR")
	}
	for _, fl := range []struct {
		bit  int
		name string
	}{{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}} {
		if f&fl.bit != 0 {
			parts = append(parts, fl.name)
		}
	}
	if rest := f &^ (unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_APPEND); rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(parts, "|")
}
