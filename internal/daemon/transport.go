package daemon

import (
	"fmt"

	"github.com/jacobsa/fuse"
)

// Poll is whether the reader of /dev/fuse polls the device for a short,
// self-tuning window after each reply before it sleeps in read(2)
// (fuse.MountConfig.EnableAdaptivePolling): cryptfs mount --poll. It
// never applies to FUSE over io_uring.
type Poll int

const (
	// PollAuto is the default: see Poll.Enabled.
	PollAuto Poll = iota
	// PollAdaptive polls /dev/fuse (when it is the transport in use).
	PollAdaptive
	// PollOff always sleeps in read(2) at once.
	PollOff
)

// ParsePoll parses a --poll value: auto, adaptive or off.
func ParsePoll(s string) (Poll, error) {
	switch s {
	case "auto", "":
		return PollAuto, nil
	case "adaptive":
		return PollAdaptive, nil
	case "off":
		return PollOff, nil
	}
	return 0, fmt.Errorf("unknown --poll %q: want auto, adaptive or off", s)
}

func (p Poll) String() string {
	switch p {
	case PollAdaptive:
		return "adaptive"
	case PollOff:
		return "off"
	}
	return "auto"
}

// Enabled reports whether a mount asked for p polls /dev/fuse. Auto is
// off: measured on a 2-vCPU machine (docs/performance.md, "Adaptive
// polling"), polling did not make the round-trip-bound workloads faster
// and cost daemon CPU per request.
func (p Poll) Enabled() bool {
	return p == PollAdaptive
}

// transportStatus is what cryptfs status shows of the transport in use:
// its name ("uring" or "dev") and why, from what was asked for and what
// jacobsa/fuse reports, e.g. "auto: 2 queues of 16, 2 pinned to their
// CPU", "auto: no FUSE over io_uring: the kernel does not offer it
// (fuse enable_uring is N)" or "requested, adaptive polling (adaptive)".
func transportStatus(asked fuse.Transport, poll Poll, st fuse.TransportStatus) (name, reason string) {
	name = st.Transport.String()
	switch {
	case st.Transport == fuse.TransportURing:
		reason = fmt.Sprintf("%s: %d queues of %d, %d pinned to their CPU", asked, st.Queues, st.QueueDepth, st.Pinned)
	case st.Fallback != "":
		reason = fmt.Sprintf("%s: no FUSE over io_uring: %s", asked, st.Fallback)
	case asked == fuse.TransportDev:
		reason = "requested"
	default:
		reason = asked.String()
	}
	if st.AdaptivePolling {
		// Off needs no word here: status shows Poll on a line of its own.
		reason += fmt.Sprintf(", adaptive polling (%s)", poll)
	}
	return name, reason
}

// pollStatus is control.Status.Poll: "adaptive" or "off" over /dev/fuse,
// "" over io_uring.
func pollStatus(st fuse.TransportStatus) string {
	switch {
	case st.Transport == fuse.TransportURing:
		return ""
	case st.AdaptivePolling:
		return "adaptive"
	}
	return "off"
}
