package fuse

import "fmt"

// Transport is how a connection receives the kernel's requests and sends
// its replies.
type Transport int

const (
	// TransportDev reads requests from /dev/fuse and writes replies to it,
	// one request per read(2). The zero value: Mount calls ServeOps once.
	TransportDev Transport = iota

	// TransportAuto uses FUSE over io_uring where the kernel offers it
	// (Linux 6.14 or later, built with CONFIG_FUSE_IO_URING, with the fuse
	// module's enable_uring parameter set when the file system is mounted)
	// and /dev/fuse otherwise.
	TransportAuto

	// TransportURing uses FUSE over io_uring or fails to mount.
	TransportURing
)

// String returns the name ParseTransport accepts.
func (t Transport) String() string {
	switch t {
	case TransportDev:
		return "dev"
	case TransportAuto:
		return "auto"
	case TransportURing:
		return "uring"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// ParseTransport parses "dev", "auto" or "uring".
func ParseTransport(s string) (Transport, error) {
	for _, t := range []Transport{TransportDev, TransportAuto, TransportURing} {
		if s == t.String() {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown transport %q (want dev, auto or uring)", s)
}

// TransportStatus says how a mounted file system talks to the kernel.
type TransportStatus struct {
	// TransportDev or TransportURing: the one in use.
	Transport Transport

	// With TransportURing: the number of queues (one per possible CPU), the
	// entries of each, and how many queue threads are pinned to their CPU
	// (a queue of a CPU that is offline, or outside the process's allowed
	// CPUs, runs unpinned).
	Queues, QueueDepth, Pinned int

	// Why io_uring is not in use although MountConfig.Transport asked for
	// it ("" otherwise).
	Fallback string

	// Whether readers of /dev/fuse poll it before they sleep
	// (MountConfig.EnableAdaptivePolling).
	AdaptivePolling bool
}

// String is a one-line summary, e.g. "uring (2 queues of 8, 2 pinned)" or
// "dev (io_uring: enable_uring is off)".
func (s TransportStatus) String() string {
	out := s.Transport.String()
	switch {
	case s.Transport == TransportURing:
		out += fmt.Sprintf(" (%d queues of %d, %d pinned)", s.Queues, s.QueueDepth, s.Pinned)
	case s.Fallback != "":
		out += " (io_uring: " + s.Fallback + ")"
	}
	if s.AdaptivePolling {
		out += ", adaptive polling"
	}
	return out
}
