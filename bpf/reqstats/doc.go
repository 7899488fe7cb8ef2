// Package reqstats counts the FUSE requests one connection sends to its
// daemon, per opcode, with their latency, using the kernel tracepoints
// fuse:fuse_request_send and fuse:fuse_request_end and a small eBPF program
// (reqstats.bpf.c). It is how `cryptfs stats` shows upcalls per workload on
// any kernel with those tracepoints (6.18 has them, 6.1 does not), whatever
// the fast-path tier.
//
// A Collector counts, from the moment Open returns until Close, for the
// connection whose device number it was given (mountinfo.FUSEDevice finds it for a
// mount point):
//
//   - Sent: requests queued for user space (FORGET and INTERRUPT have no
//     tracepoint and are never counted; requests answered by the eBPF fast
//     path never reach the tracepoint);
//   - Done, Errors, Total and Hist: of those, the ones that ended while the
//     collector watched, matched from send to end by their unique id, how
//     many ended with an error (ENOENT for a negative LOOKUP counts), their
//     summed latency and a histogram of latencies in log2 buckets of
//     nanoseconds (bucket b holds [2^b, 2^(b+1)) ns; bucket 0 also holds 0
//     and 1 ns; the last bucket is open-ended).
//
// Counters are cumulative and per CPU in the kernel; Snapshot sums them.
// Use Snapshot.Sub for the requests of one workload. Open needs root (or
// CAP_BPF+CAP_PERFMON) and mounts tracefs at /sys/kernel/tracing when no
// tracefs is mounted; errors that mean "not possible here" wrap
// ErrUnavailable.
package reqstats
