package daemon

import (
	"testing"

	"github.com/jacobsa/fuse"
)

func TestParsePoll(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Poll
		enabled bool
		err     bool
	}{
		{"auto", PollAuto, false, false},
		{"", PollAuto, false, false},
		{"adaptive", PollAdaptive, true, false},
		{"off", PollOff, false, false},
		{"on", 0, false, true},
		{"Adaptive", 0, false, true},
	} {
		p, err := ParsePoll(c.in)
		if (err != nil) != c.err || p != c.want || p.Enabled() != c.enabled {
			t.Errorf("ParsePoll(%q) = %v (enabled %v), %v; want %v (enabled %v), error %v", c.in, p, p.Enabled(), err, c.want, c.enabled, c.err)
		}
		if err == nil && c.in != "" && p.String() != c.in {
			t.Errorf("ParsePoll(%q).String() = %q", c.in, p)
		}
	}
}

func TestTransportStatusPoll(t *testing.T) {
	for _, c := range []struct {
		name                 string
		asked                fuse.Transport
		poll                 Poll
		st                   fuse.TransportStatus
		wantName, wantReason string
		wantPoll             string
	}{
		{"dev, polling", fuse.TransportDev, PollAdaptive, fuse.TransportStatus{Transport: fuse.TransportDev, AdaptivePolling: true},
			"dev", "requested, adaptive polling (adaptive)", "adaptive"},
		{"dev, not polling", fuse.TransportDev, PollAuto, fuse.TransportStatus{Transport: fuse.TransportDev},
			"dev", "requested", "off"},
		{"auto fell back, polling", fuse.TransportAuto, PollAdaptive, fuse.TransportStatus{Transport: fuse.TransportDev, Fallback: "the kernel does not offer it", AdaptivePolling: true},
			"dev", "auto: no FUSE over io_uring: the kernel does not offer it, adaptive polling (adaptive)", "adaptive"},
		{"uring: polling does not apply", fuse.TransportURing, PollAdaptive, fuse.TransportStatus{Transport: fuse.TransportURing, Queues: 2, QueueDepth: 16, Pinned: 2},
			"uring", "uring: 2 queues of 16, 2 pinned to their CPU", ""},
	} {
		name, reason := transportStatus(c.asked, c.poll, c.st)
		if name != c.wantName || reason != c.wantReason {
			t.Errorf("%s: transportStatus = %q, %q; want %q, %q", c.name, name, reason, c.wantName, c.wantReason)
		}
		if p := pollStatus(c.st); p != c.wantPoll {
			t.Errorf("%s: pollStatus = %q, want %q", c.name, p, c.wantPoll)
		}
	}
}
