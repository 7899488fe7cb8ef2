//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cryptfs upcall statistics: counts the FUSE requests one connection sends
 * to user space, per opcode, and their latency from send to end as a log2
 * histogram of nanoseconds.  Attached to the tracepoints
 * fuse:fuse_request_send and fuse:fuse_request_end (Linux 6.18 has them;
 * 6.1 does not).  The connection is chosen by its device number
 * (major << 20 | minor, the tracepoints' "connection" field), which the
 * loader writes into target_dev before loading.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define RS_SLOTS	64	/* per-opcode slots; opcodes >= RS_SLOTS use slot 0 */
#define RS_BUCKETS	40	/* bucket b: [2^b, 2^(b+1)) ns; 0 also holds 0 and 1 ns; the last is open */
#define RS_INFLIGHT	16384

/* Set by the loader: the connection to count. */
volatile const __u32 target_dev = 0;

/* /sys/kernel/tracing/events/fuse/fuse_request_send/format */
struct rs_send_args {
	__u64	common;		/* common_type, flags, preempt_count, pid */
	__u32	connection;	/* dev_t: major << 20 | minor */
	__u32	pad;
	__u64	unique;
	__u32	opcode;
	__u32	len;
};

/* /sys/kernel/tracing/events/fuse/fuse_request_end/format */
struct rs_end_args {
	__u64	common;
	__u32	connection;
	__u32	pad;
	__u64	unique;
	__u32	len;
	__s32	error;
};

/* A request sent and not yet ended, keyed by its unique id. */
struct rs_inflight {
	__u64	start_ns;
	__u32	opcode;
	__u32	padding;
};

/* Per-CPU counters of one opcode slot. */
struct rs_op_stats {
	__u64	sent;			/* requests sent to user space */
	__u64	done;			/* of those, ended while we watched */
	__u64	errors;			/* ended with error != 0 */
	__u64	sum_ns;			/* total latency of done requests */
	__u64	hist[RS_BUCKETS];	/* latency histogram of done requests */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RS_INFLIGHT);
	__type(key, __u64);
	__type(value, struct rs_inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RS_SLOTS);
	__type(key, __u32);
	__type(value, struct rs_op_stats);
} op_stats SEC(".maps");

static __always_inline struct rs_op_stats *slot_of(__u32 opcode)
{
	__u32 slot = opcode < RS_SLOTS ? opcode : 0;

	return bpf_map_lookup_elem(&op_stats, &slot);
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

SEC("tracepoint/fuse/fuse_request_send")
int fuse_request_send(struct rs_send_args *args)
{
	struct rs_inflight req = {};
	struct rs_op_stats *s;
	__u64 unique;

	if (args->connection != target_dev)
		return 0;
	unique = args->unique;
	req.opcode = args->opcode;
	s = slot_of(req.opcode);
	if (s)
		__sync_fetch_and_add(&s->sent, 1);
	req.start_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&inflight, &unique, &req, BPF_ANY);
	return 0;
}

SEC("tracepoint/fuse/fuse_request_end")
int fuse_request_end(struct rs_end_args *args)
{
	struct rs_inflight *req;
	struct rs_op_stats *s;
	__u64 unique, delta;
	__u32 opcode, b;

	if (args->connection != target_dev)
		return 0;
	unique = args->unique;
	req = bpf_map_lookup_elem(&inflight, &unique);
	if (!req)
		return 0;	/* sent before we attached */
	delta = bpf_ktime_get_ns() - req->start_ns;
	opcode = req->opcode;
	bpf_map_delete_elem(&inflight, &unique);

	s = slot_of(opcode);
	if (!s)
		return 0;
	__sync_fetch_and_add(&s->done, 1);
	if (args->error)
		__sync_fetch_and_add(&s->errors, 1);
	__sync_fetch_and_add(&s->sum_ns, delta);
	b = log2_u64(delta);
	if (b >= RS_BUCKETS)
		b = RS_BUCKETS - 1;
	__sync_fetch_and_add(&s->hist[b], 1);
	return 0;
}
