package reqstats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// Buckets is the number of latency histogram buckets.
const Buckets = 40

// slots is RS_SLOTS in reqstats.bpf.c: opcodes >= slots share slot 0.
const slots = 64

// ErrUnavailable is wrapped by errors that mean this kernel or these
// privileges cannot collect request statistics (no fuse tracepoints, no
// tracefs, no BPF, not root).
var ErrUnavailable = errors.New("FUSE request statistics unavailable")

// Collector counts the requests of one FUSE connection while it is open.
type Collector struct {
	dev   uint32
	objs  reqstatsObjects
	links []link.Link
}

// Open starts counting the requests of the FUSE connection with device
// number dev (major<<20 | minor, see mountinfo.FUSEDevice).
func Open(dev uint32) (*Collector, error) {
	tracing, err := tracefsDir()
	if err != nil {
		return nil, fmt.Errorf("reqstats: %w: %w", ErrUnavailable, err)
	}
	for _, ev := range []string{"fuse_request_send", "fuse_request_end"} {
		_, err := os.Stat(filepath.Join(tracing, "events", "fuse", ev))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reqstats: %w: kernel has no tracepoint fuse:%s (or the fuse module is not loaded): %w",
				ErrUnavailable, ev, err)
		}
		if err != nil {
			return nil, fmt.Errorf("reqstats: %w: tracepoint fuse:%s: %w (run as root)", ErrUnavailable, ev, err)
		}
	}

	spec, err := loadReqstats()
	if err != nil {
		return nil, fmt.Errorf("reqstats: parse embedded object: %w", err)
	}
	if err := spec.Variables["target_dev"].Set(dev); err != nil {
		return nil, fmt.Errorf("reqstats: set target_dev: %w", err)
	}
	c := &Collector{dev: dev}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		if unavailable(err) {
			return nil, fmt.Errorf("reqstats: load: %w: %w", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("reqstats: load: %w", err)
	}
	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{
		// end first: a request sent once send is attached always finds
		// its end attached.
		{"fuse_request_end", c.objs.FuseRequestEnd},
		{"fuse_request_send", c.objs.FuseRequestSend},
	} {
		l, err := link.Tracepoint("fuse", tp.name, tp.prog, nil)
		if err != nil {
			err = fmt.Errorf("reqstats: attach fuse:%s: %w", tp.name, err)
			if unavailable(err) {
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			c.Close()
			return nil, err
		}
		c.links = append(c.links, l)
	}
	return c, nil
}

func unavailable(err error) bool {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return false
	}
	return errors.Is(err, ebpf.ErrNotSupported) ||
		errors.Is(err, os.ErrNotExist) ||
		errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.ENOSYS)
}

// Device returns the device number the collector counts.
func (c *Collector) Device() uint32 { return c.dev }

// Close detaches the programs and frees the maps.
func (c *Collector) Close() error {
	var errs []error
	for _, l := range c.links {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.links = nil
	if err := c.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reqstats: close: %w", err)
	}
	return nil
}

// Snapshot reads the counters, summed over CPUs.
func (c *Collector) Snapshot() (Snapshot, error) {
	s := Snapshot{Device: c.dev, Ops: make(map[fuseop.Opcode]OpStats)}
	var per []reqstatsRsOpStats
	for slot := uint32(0); slot < slots; slot++ {
		if err := c.objs.OpStats.Lookup(slot, &per); err != nil {
			return Snapshot{}, fmt.Errorf("reqstats: read op_stats slot %d: %w", slot, err)
		}
		var o OpStats
		for _, p := range per {
			o.Sent += p.Sent
			o.Done += p.Done
			o.Errors += p.Errors
			o.Total += time.Duration(p.SumNs)
			for b, n := range p.Hist {
				o.Hist[b] += n
			}
		}
		if o != (OpStats{}) {
			s.Ops[fuseop.Opcode(slot)] = o
		}
	}
	return s, nil
}

// DeviceOf returns the device number of the FUSE connection mounted at
// mountpoint, as Open wants it (see mountinfo.FUSEDevice).
func DeviceOf(mountpoint string) (uint32, error) { return mountinfo.FUSEDevice(mountpoint) }
