package daemon

import (
	"sort"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/bpf/reqstats"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
	"github.com/cryptfs/cryptfs/internal/control"
	"github.com/cryptfs/cryptfs/internal/fusefs"
)

// controlHandler answers cryptfs status and stats.
type controlHandler struct {
	fsys   *fusefs.FS
	fp     *fastpath.FastPath // ebpf tier
	col    *reqstats.Collector
	status control.Status
	tree   *ciphertree.Tree // path requests (paths.go); nil in reverse mode
}

func (h *controlHandler) Status() control.Status {
	st := h.status
	st.Inodes = h.fsys.Inodes()
	return st
}

// Stats gathers the figures of the three sources that exist for this
// mount and merges them (mergeStats).
func (h *controlHandler) Stats() control.Stats {
	var trace *reqstats.Snapshot
	if h.col != nil {
		if snap, err := h.col.Snapshot(); err == nil {
			trace = &snap
		}
	}
	var fast fastpath.Stats
	if h.fp != nil {
		if st, err := h.fp.Stats(); err == nil {
			fast = st
		}
	}
	return mergeStats(h.fsys.Stats().Snapshot(), trace, fast)
}

// mergeStats merges the daemon's per-opcode counters, the tracepoint
// collector's (trace, nil where the kernel has no fuse tracepoints) and
// the fast-path program's hits (fast, nil outside the ebpf tier). Upcalls
// and their latency come from the tracepoints when there are any (they
// see every request the kernel sent, also those the daemon never
// answered), else from the daemon's own counters. Opcodes are sorted by
// name.
func mergeStats(daemon []fusefs.OpStats, trace *reqstats.Snapshot, fast fastpath.Stats) control.Stats {
	ops := map[fuseop.Opcode]*control.OpFigures{}
	get := func(op fuseop.Opcode) *control.OpFigures {
		if ops[op] == nil {
			ops[op] = &control.OpFigures{Opcode: op.String()}
		}
		return ops[op]
	}
	out := control.Stats{Source: "daemon"}
	for _, o := range daemon {
		f := get(o.Opcode)
		f.Daemon = o.Count
		f.Errors = o.Errors
		if trace == nil {
			f.Upcalls, f.Histogram = o.Count, o.Hist
		}
	}
	if trace != nil {
		out.Source = "tracepoint"
		for op, o := range trace.Ops {
			f := get(op)
			f.Upcalls = o.Sent
			f.Histogram = append([]uint64(nil), o.Hist[:]...)
		}
	}
	for op, o := range fast {
		get(op).FastHits = o.Hits
	}
	for _, f := range ops {
		out.Ops = append(out.Ops, *f)
	}
	sort.Slice(out.Ops, func(i, j int) bool { return out.Ops[i].Opcode < out.Ops[j].Opcode })
	return out
}
