package daemon

import (
	"fmt"

	"github.com/jacobsa/fuse"
)

// transportStatus is what cryptfs status shows of the transport in use:
// its name ("uring" or "dev") and why, from what was asked for and what
// jacobsa/fuse reports, e.g. "auto: 2 queues of 16, 2 pinned to their
// CPU" or "auto: no FUSE over io_uring: the kernel does not offer it
// (fuse enable_uring is N)".
func transportStatus(asked fuse.Transport, st fuse.TransportStatus) (name, reason string) {
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
		reason += ", adaptive polling"
	}
	return name, reason
}
