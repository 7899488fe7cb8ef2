package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// Status describes a running mount.
type Status struct {
	PID        int       `json:"pid"`
	Mountpoint string    `json:"mountpoint"`
	CipherDir  string    `json:"cipher_dir"`
	Tier       string    `json:"fast_path"`
	TierReason string    `json:"fast_path_reason,omitempty"`
	ReadOnly   bool      `json:"read_only"`
	Device     uint32    `json:"device"` // FUSE connection (major<<20|minor)
	Started    time.Time `json:"started"`
	LogFile    string    `json:"log_file,omitempty"`
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

type request struct {
	Cmd string `json:"cmd"`
}

// Dir returns the runtime directory for sockets: $CRYPTFS_RUNTIME_DIR if
// set, else /run/cryptfs for root and $XDG_RUNTIME_DIR/cryptfs otherwise.
func Dir() string {
	if d := os.Getenv("CRYPTFS_RUNTIME_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/cryptfs"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "cryptfs")
	}
	return filepath.Join(os.TempDir(), "cryptfs-"+strconv.Itoa(os.Geteuid()))
}

// SocketPath returns the socket path of the connection with device dev.
func SocketPath(dev uint32) string {
	return filepath.Join(Dir(), fmt.Sprintf("%d-%d.sock", dev>>20, dev&(1<<20-1)))
}

// Server listens on the socket for dev and answers until Close.
type Server struct {
	l    net.Listener
	path string
	ino  uint64 // the socket file this server created

	wg    sync.WaitGroup // the accept loop and the connections being answered
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Listen creates the socket for dev.
func Listen(dev uint32, h Handler) (*Server, error) {
	if err := os.MkdirAll(Dir(), 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", Dir(), err)
	}
	path := SocketPath(dev)
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
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err != nil {
				return
			}
			var req request
			if json.Unmarshal(line, &req) != nil {
				return
			}
			var reply any
			switch req.Cmd {
			case "status":
				reply = h.Status()
			case "stats":
				reply = h.Stats()
			default:
				reply = map[string]string{"error": "unknown command " + strconv.Quote(req.Cmd)}
			}
			json.NewEncoder(c).Encode(reply)
		}()
	}
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

func call(dev uint32, cmd string, out any) error {
	c, err := net.DialTimeout("unix", SocketPath(dev), 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNoDaemon, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "{\"cmd\":%q}\n", cmd); err != nil {
		return err
	}
	return json.NewDecoder(c).Decode(out)
}

// GetStatus asks the daemon of connection dev for its status.
func GetStatus(dev uint32) (Status, error) {
	var s Status
	err := call(dev, "status", &s)
	return s, err
}

// GetStats asks the daemon of connection dev for its request figures.
func GetStats(dev uint32) (Stats, error) {
	var s Stats
	err := call(dev, "stats", &s)
	return s, err
}

// Device returns the FUSE connection number (major<<20|minor) of the
// mount at mountpoint, from the mount table, without touching the mount.
func Device(mountpoint string) (uint32, error) { return mountinfo.FUSEDevice(mountpoint) }
