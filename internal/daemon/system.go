package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// readaheadKB is the readahead of the mount's backing device: the largest
// READ jacobsa/fuse accepts (1 MiB) instead of the kernel's 128 KiB, so a
// sequential reader costs a quarter of the requests and each request
// decrypts enough blocks to use every core.
const readaheadKB = 1024

// raiseReadahead sets the readahead of the FUSE connection's bdi (root
// only; a failure just leaves the kernel's default).
func raiseReadahead(dev uint32, log zerolog.Logger) {
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", dev>>20, dev&(1<<20-1))
	if err := os.WriteFile(path, []byte(strconv.Itoa(readaheadKB)), 0); err != nil {
		log.Debug().Err(err).Msg("cannot raise the readahead; sequential reads use the kernel's default")
	}
}

// raiseFileLimit lifts the descriptor limit as far as allowed: the daemon
// holds one O_PATH descriptor per directory the kernel knows.
func raiseFileLimit() {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	if os.Geteuid() == 0 {
		if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
			if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > lim.Max {
				lim.Max = n
			}
		}
	}
	lim.Cur = lim.Max
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
}

// sdNotify tells systemd about our state when it asked (Type=notify: it
// sets NOTIFY_SOCKET, a datagram socket path, "@" for the abstract
// namespace).
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// zerologWriter routes jacobsa/fuse's own log lines to the debug log.
type zerologWriter struct{ log zerolog.Logger }

func (w zerologWriter) Write(p []byte) (int, error) {
	w.log.Debug().Str("component", "jacobsa/fuse").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
