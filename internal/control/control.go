package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"github.com/cryptfs/cryptfs/internal/peercred"
)

// Status describes a running mount.
type Status struct {
	PID        int    `json:"pid"`
	Mountpoint string `json:"mountpoint"`
	CipherDir  string `json:"cipher_dir"`
	Tier       string `json:"fast_path"`
	TierReason string `json:"fast_path_reason,omitempty"`
	// FastPathWanted is the --fast-path the mount asked for (auto, ebpf,
	// kernel-cache or off) and EBPFWanted whether that includes the ebpf
	// tier (auto or ebpf); when it does and Tier is not "ebpf",
	// TierReason says why in plain words.
	FastPathWanted string `json:"fast_path_wanted,omitempty"`
	EBPFWanted     bool   `json:"ebpf_wanted"`
	// Kernel is the kernel's FUSE as the daemon found it when it chose
	// the tier (nil in reverse mode, which never uses the fast path).
	Kernel   *KernelFuse `json:"kernel_fuse,omitempty"`
	ReadOnly bool        `json:"read_only"`
	Device   uint32      `json:"device"` // FUSE connection (major<<20|minor)
	Started  time.Time   `json:"started"`
	LogFile  string      `json:"log_file,omitempty"`
	// StartTicks is when the daemon process started (field 22 of
	// /proc/<pid>/stat), so a reused pid is not mistaken for it.
	StartTicks uint64 `json:"start_ticks"`
	// BPFProgramID is the kernel ID of the fast-path program whose maps
	// the daemon fills (ebpf tier); tests open it to run it directly.
	BPFProgramID uint32 `json:"bpf_program_id,omitempty"`
	// Inodes is the size of the daemon's inode table now: the inodes the
	// kernel holds, their parents, open files, and in the ebpf tier up to
	// 32768 more the fast path may still answer for.
	Inodes int `json:"inodes"`
	// Transport is how the kernel's requests reach the daemon: "uring"
	// (FUSE over io_uring, one queue per CPU) or "dev" (/dev/fuse);
	// TransportReason says why (what was asked for, and why io_uring is
	// not in use when it was asked for).
	Transport       string `json:"transport,omitempty"`
	TransportReason string `json:"transport_reason,omitempty"`
	// Poll is whether the reader of /dev/fuse polls it before it sleeps:
	// "adaptive" or "off" ("" over io_uring, where it does not apply).
	Poll string `json:"poll,omitempty"`
}

// KernelFuse is what the running kernel's FUSE offers the ebpf tier
// (internal/kmod's probe, in strings so clients need not know kmod).
type KernelFuse struct {
	Release string `json:"release"`           // uname -r
	Form    string `json:"form"`              // "built-in", "loadable module, loaded", ...
	Version string `json:"version,omitempty"` // /sys/module/fuse/version ("cryptfs-..." for our module)
	Hook    string `json:"hook"`              // "yes", "no" or "unknown": /dev/fuse knows the attach ioctl
	// Summary is Form, Version and Hook in a few words.
	Summary string `json:"summary"`
}

// OpFigures are one opcode's request figures.
type OpFigures struct {
	Opcode    string   `json:"opcode"`
	Upcalls   uint64   `json:"upcalls"`          // requests that reached user space
	Daemon    uint64   `json:"daemon"`           // requests the file system handled (jacobsa/fuse answers INIT and a few others itself)
	Errors    uint64   `json:"errors,omitempty"` // of those, failed (not ENOENT, ENODATA, or EOPNOTSUPP from GETXATTR)
	FastHits  uint64   `json:"fast_path_hits"`   // answered in the kernel (ebpf tier)
	Histogram []uint64 `json:"latency_log2_ns"`  // bucket i: [2^i, 2^(i+1)) ns
	P50, P99  float64  `json:"-"`                // filled by clients
}

// Stats is the reply to a stats request.
type Stats struct {
	// Source says who counted the upcalls and their latency: "tracepoint"
	// (the eBPF program on fuse_request_send/end) or "daemon" (kernels
	// without those tracepoints, e.g. 6.1).
	Source string      `json:"source"`
	Ops    []OpFigures `json:"ops"`
}

// Running reports whether the daemon described by s still runs (a zombie
// does not count; a new process that got its pid does not either).
func (s Status) Running() bool {
	start, state, ok := ProcessStart(s.PID)
	return ok && start == s.StartTicks && state != 'Z'
}

// ProcessStart returns the start time (clock ticks since boot) and the
// state letter of process pid, from /proc/<pid>/stat.
func ProcessStart(pid int) (start uint64, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22 overall
	if err != nil || len(f[0]) != 1 {
		return 0, 0, false
	}
	return start, f[0][0], true
}

// Handler answers requests.
type Handler interface {
	Status() Status
	Stats() Stats
}

// PathHandler is a Handler that also maps paths between the plaintext
// view and the cipher tree (cryptfs path encrypt|decrypt of a mounted
// tree, without asking for the password again).
type PathHandler interface {
	// Paths maps each plaintext path (relative to the mount's root) to
	// its path in the cipher tree (relative to the cipher directory), or
	// back when decrypt is set.
	Paths(decrypt bool, paths []string) ([]string, error)
}

type request struct {
	Cmd   string   `json:"cmd"`
	Paths []string `json:"paths,omitempty"` // path-encrypt, path-decrypt
}

// pathsReply is the reply to path-encrypt and path-decrypt.
type pathsReply struct {
	Paths []string `json:"paths"`
}

// Limits of the protocol: a request is one short line, a reply one JSON
// document; both sides give up on a peer that is slower than ioTimeout.
const (
	maxRequest = 64 << 10 // a few paths of PATH_MAX
	maxReply   = 1 << 20
)

var ioTimeout = 5 * time.Second // a variable for tests

// SocketName is the control socket's name in the runtime directory: the
// connection's device number (major<<20|minor) in decimal.
func SocketName(dev uint32) string { return strconv.FormatUint(uint64(dev), 10) + ".sock" }

// Server listens on the socket for dev and answers until Close.
type Server struct {
	l    net.Listener
	path string
	ino  uint64 // the socket file this server created

	wg    sync.WaitGroup // the accept loop and the connections being answered
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Listen creates the control socket for the connection dev in this
// user's runtime directory (RuntimeDir).
func Listen(dev uint32, h Handler) (*Server, error) {
	dir, err := RuntimeDir()
	if err != nil {
		return nil, err
	}
	return ListenAt(filepath.Join(dir, SocketName(dev)), h)
}

// ListenAt creates the control socket at path (in a directory the caller
// checked). Only root and this process's user may talk to it: the
// socket's mode is 0600, and each client's credentials (SO_PEERCRED) are
// checked as well.
func ListenAt(path string, h Handler) (*Server, error) {
	os.Remove(path) // a stale socket of a dead daemon for a reused device number
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	s := &Server{l: l, path: path, ino: fileIno(path), conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve(h)
	return s, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

func (s *Server) serve(h Handler) {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			answer(c, h)
		}()
	}
}

// answer reads one request from c and writes the reply.
func answer(c net.Conn, h Handler) {
	c.SetDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReaderSize(io.LimitReader(c, maxRequest), maxRequest).ReadSlice('\n')
	if err != nil {
		return // too long, too slow, or cut short
	}
	if uid, err := peercred.UID(c); err != nil || (uid != 0 && uid != os.Geteuid()) {
		json.NewEncoder(c).Encode(map[string]string{"error": "permission denied"})
		return
	}
	if reply := handle(line, h); reply != nil {
		json.NewEncoder(c).Encode(reply)
	}
}

// handle answers one request line (a client's bytes: anything at all);
// nil means no answer (not a request).
func handle(line []byte, h Handler) any {
	var req request
	if json.Unmarshal(line, &req) != nil {
		return nil
	}
	switch req.Cmd {
	case "status":
		return h.Status()
	case "stats":
		return h.Stats()
	case "path-encrypt", "path-decrypt":
		ph, ok := h.(PathHandler)
		if !ok {
			return map[string]string{"error": "this mount does not map paths"}
		}
		out, err := ph.Paths(req.Cmd == "path-decrypt", req.Paths)
		if err != nil {
			return map[string]string{"error": err.Error()}
		}
		return pathsReply{Paths: out}
	}
	return map[string]string{"error": "unknown command " + strconv.Quote(req.Cmd)}
}

// Close stops serving, cuts the connections still open and waits until no
// Handler method runs any more (the caller may then release what they
// read), and removes the socket, unless the path has been taken over
// since: device numbers are reused at once, so a new mount's daemon may
// already have its socket there.
func (s *Server) Close() error {
	if ul, ok := s.l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	err := s.l.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.SetDeadline(time.Now())
	}
	s.mu.Unlock()
	s.wg.Wait()
	if fileIno(s.path) == s.ino {
		os.Remove(s.path)
	}
	return err
}

func fileIno(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// ErrNoDaemon means no daemon answers for the mount.
var ErrNoDaemon = errors.New("no cryptfs daemon answers for this mount")

// ErrImpostor means the process listening on a mount's control socket
// runs as neither the mount's owner nor root.
var ErrImpostor = errors.New("the control socket is served by another user: not this mount's daemon")

// callAt sends cmd to the socket at path, whose server must run as owner
// or root, and decodes the reply into out. refused reports that the
// socket exists but nobody listens (its daemon is gone).
func callAt(path string, owner int, cmd string, out any) (refused bool, err error) {
	return callReq(path, owner, request{Cmd: cmd}, out)
}

// callReq is callAt with a whole request.
func callReq(path string, owner int, req request, out any) (refused bool, err error) {
	c, err := net.DialTimeout("unix", path, ioTimeout)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED), fmt.Errorf("%w (%w)", ErrNoDaemon, err)
	}
	defer c.Close()
	uid, err := peercred.UID(c)
	if err != nil {
		return false, err
	}
	if uid != owner && uid != 0 {
		return false, fmt.Errorf("%s: %w (uid %d, the mount belongs to uid %d)", path, ErrImpostor, uid, owner)
	}
	c.SetDeadline(time.Now().Add(2 * ioTimeout))
	line, err := json.Marshal(req)
	if err != nil {
		return false, err
	}
	if len(line) >= maxRequest {
		return false, fmt.Errorf("the request is longer than %d bytes", maxRequest)
	}
	if _, err := c.Write(append(line, '\n')); err != nil {
		return false, err
	}
	data, err := io.ReadAll(io.LimitReader(c, maxReply+1))
	if err != nil {
		return false, fmt.Errorf("read the reply of %s: %w", path, err)
	}
	if len(data) > maxReply {
		return false, fmt.Errorf("the reply of %s is longer than %d bytes", path, maxReply)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return false, fmt.Errorf("%s: %s", path, e.Error)
	}
	return false, json.Unmarshal(data, out)
}

// call asks the daemon serving m: at the socket named after m's device in
// each runtime directory of m's owner (never the caller's).
func call(m mountinfo.Mount, cmd string, out any) (refused bool, err error) {
	return callMount(m, request{Cmd: cmd}, out)
}

// callMount is call with a whole request.
func callMount(m mountinfo.Mount, req request, out any) (refused bool, err error) {
	owner, err := m.OwnerUID()
	if err != nil {
		return false, err
	}
	dirs := runtimeDirs(owner)
	err = fmt.Errorf("%w (no control socket %s in %s)", ErrNoDaemon, SocketName(m.Device()), strings.Join(dirs, " or "))
	for _, dir := range dirs {
		r, cerr := callReq(filepath.Join(dir, SocketName(m.Device())), owner, req, out)
		if cerr == nil {
			return false, nil
		}
		refused = refused || r
		if !errors.Is(cerr, fs.ErrNotExist) {
			err = cerr
		}
	}
	return refused, err
}

// StatusOf asks the daemon that serves the mount m for its status.
func StatusOf(m mountinfo.Mount) (Status, error) {
	var s Status
	_, err := call(m, "status", &s)
	if err == nil && s.Device != m.Device() {
		err = fmt.Errorf("%w: the socket of connection %d answered for connection %d", ErrNoDaemon, m.Device(), s.Device)
	}
	return s, err
}

// StatsOf asks the daemon that serves the mount m for its request figures.
func StatsOf(m mountinfo.Mount) (Stats, error) {
	var s Stats
	_, err := call(m, "stats", &s)
	return s, err
}

// PathsOf asks the daemon that serves the mount m to map paths: each
// plaintext path to its cipher path, or back when decrypt is set (see
// PathHandler).
func PathsOf(m mountinfo.Mount, decrypt bool, paths []string) ([]string, error) {
	req := request{Cmd: "path-encrypt", Paths: paths}
	if decrypt {
		req.Cmd = "path-decrypt"
	}
	var r pathsReply
	if _, err := callMount(m, req, &r); err != nil {
		return nil, err
	}
	if len(r.Paths) != len(paths) {
		return nil, fmt.Errorf("the daemon of %s mapped %d paths of %d", m.Mountpoint, len(r.Paths), len(paths))
	}
	return r.Paths, nil
}

// mountOf finds the mount of connection dev in the mount table.
func mountOf(dev uint32) (mountinfo.Mount, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return mountinfo.Mount{}, err
	}
	for _, m := range ms {
		if m.IsFUSE() && m.Device() == dev {
			return m, nil
		}
	}
	return mountinfo.Mount{}, fmt.Errorf("connection %d: %w", dev, mountinfo.ErrNotMounted)
}

// GetStatus asks the daemon of connection dev for its status.
func GetStatus(dev uint32) (Status, error) {
	m, err := mountOf(dev)
	if err != nil {
		return Status{}, err
	}
	return StatusOf(m)
}

// GetStats asks the daemon of connection dev for its request figures.
func GetStats(dev uint32) (Stats, error) {
	m, err := mountOf(dev)
	if err != nil {
		return Stats{}, err
	}
	return StatsOf(m)
}

// Device returns the FUSE connection number (major<<20|minor) of the
// mount at mountpoint, from the mount table, without touching the mount.
func Device(mountpoint string) (uint32, error) { return mountinfo.FUSEDevice(mountpoint) }
