//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cryptfs metadata fast path: a sleepable BPF_PROG_TYPE_SYSCALL program that
 * answers FUSE LOOKUP, GETATTR and GETXATTR from maps the daemon fills.
 *
 * The context is struct fuse_fastpath_ctx (../include/fuse_fastpath.h).  The
 * program returns FUSE_FASTPATH_SERVED (0) after filling ctx->out,
 * FUSE_FASTPATH_UPCALL (1) to let the request reach the daemon, or a negative
 * errno.  Map layouts and the daemon-side protocol are documented in doc.go.
 *
 * Verifier constraints that shape this file:
 *  - sleepable programs cannot tail-call: dispatch is a switch;
 *  - map keys must live on the stack, not in ctx: names are copied first;
 *  - ctx may only be accessed at constant offsets from the ctx pointer
 *    itself, so every copy into or out of ctx has a fixed size;
 *  - a sleepable program can be preempted, so even per-CPU counters are
 *    updated with atomic adds.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include "fuse_fastpath.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Map sizes; keep in sync with the constants in fastpath.go. */
#define FP_MAX_ATTRS		32768
#define FP_MAX_DENTRIES		32768
#define FP_MAX_XATTRS		8192
#define FP_MAX_NODES		65536
/* Slots of the per-opcode statistics; opcodes >= FP_STATS_SLOTS use slot 0. */
#define FP_STATS_SLOTS		64

/* Value of the attrs map, keyed by nodeid (__u64). */
struct fp_attr {
	struct fuse_attr attr;	/* attr.ino must equal the key */
	__u64	valid_sec;	/* attribute validity handed to the kernel */
	__u32	valid_nsec;
	__u32	padding;
};

/* Key of the dentries and xattrs maps: an inode and a NUL-padded name. */
struct fp_name_key {
	__u64	nodeid;		/* dentries: parent; xattrs: the inode */
	__u32	name_len;	/* 1..FUSE_FASTPATH_NAME_MAX-1 */
	__u32	padding;	/* always 0 */
	__u8	name[FUSE_FASTPATH_NAME_MAX];
};

/* Value of the dentries map. */
struct fp_dentry {
	__u64	child;		/* nodeid of the child; 0 = negative entry */
	__u64	generation;
	__u64	valid_sec;	/* entry validity handed to the kernel */
	__u32	valid_nsec;
	__u32	padding;
};

#define FP_XATTR_NEGATIVE	1	/* fp_xattr.flags: answer -ENODATA */

/* Value of the xattrs map. */
struct fp_xattr {
	__u32	flags;		/* FP_XATTR_NEGATIVE or 0 */
	__u32	size;		/* value length; may exceed FUSE_FASTPATH_XATTR_MAX */
	__u8	value[FUSE_FASTPATH_XATTR_MAX];	/* zero-padded; empty if size is too large */
};

/* fp_settings.flags: every xattr outside the "user." namespace is unsupported. */
#define FP_USER_XATTRS_ONLY	1

/* The one value of the settings array: per-mount policy set by the daemon. */
struct fp_settings {
	__u32	flags;		/* FP_USER_XATTRS_ONLY */
	__u32	padding;
};

/* Value of the per-CPU op_stats array, indexed by opcode. */
struct fp_op_stats {
	__u64	hits;		/* answered in the kernel, errors included */
	__u64	misses;		/* sent to the daemon */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_MAX_ATTRS);
	__type(key, __u64);
	__type(value, struct fp_attr);
} attrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_MAX_DENTRIES);
	__type(key, struct fp_name_key);
	__type(value, struct fp_dentry);
} dentries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_MAX_XATTRS);
	__type(key, struct fp_name_key);
	__type(value, struct fp_xattr);
} xattrs SEC(".maps");

/*
 * Served positive LOOKUPs per nodeid.  A plain (preallocated) hash, never
 * evicted and never reset by the program: the daemon reads totals.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_MAX_NODES);
	__type(key, __u64);
	__type(value, __u64);
} served_lookups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_settings);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_STATS_SLOTS);
	__type(key, __u32);
	__type(value, struct fp_op_stats);
} op_stats SEC(".maps");

static __always_inline void count_op(__u32 opcode, int served)
{
	__u32 slot = opcode < FP_STATS_SLOTS ? opcode : 0;
	struct fp_op_stats *s = bpf_map_lookup_elem(&op_stats, &slot);

	if (!s)
		return;
	if (served)
		__sync_fetch_and_add(&s->hits, 1);
	else
		__sync_fetch_and_add(&s->misses, 1);
}

/* Copy (ctx->nodeid, ctx->name) into a stack key; -1 if the name is unusable. */
static __always_inline int load_name_key(const struct fuse_fastpath_ctx *ctx,
					 struct fp_name_key *key)
{
	__u32 len = ctx->name_len;

	if (len == 0 || len >= FUSE_FASTPATH_NAME_MAX)
		return -1;
	key->nodeid = ctx->nodeid;
	key->name_len = len;
	key->padding = 0;
	/*
	 * Fixed-size copy: the kernel NUL-pads name.  Bytes after name_len
	 * that are not zero only make the key miss (the daemon's keys are
	 * canonical), which is an upcall, never a wrong answer.
	 */
	__builtin_memcpy(key->name, ctx->name, sizeof(key->name));
	return 0;
}

/* The served-lookup counter of nodeid, created at 0 when missing. */
static __always_inline __u64 *served_counter(__u64 nodeid)
{
	__u64 *n = bpf_map_lookup_elem(&served_lookups, &nodeid);
	__u64 zero = 0;

	if (n)
		return n;
	/* -EEXIST from a concurrent run is fine; a full map means NULL below. */
	bpf_map_update_elem(&served_lookups, &nodeid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&served_lookups, &nodeid);
}

static __always_inline int do_lookup(struct fuse_fastpath_ctx *ctx)
{
	struct fp_name_key key;
	struct fp_dentry *d;
	struct fp_attr *a;
	__u64 child, generation, entry_sec;
	__u32 entry_nsec;
	__u64 *served;

	if (load_name_key(ctx, &key))
		return FUSE_FASTPATH_UPCALL;
	d = bpf_map_lookup_elem(&dentries, &key);
	if (!d)
		return FUSE_FASTPATH_UPCALL;
	child = d->child;
	generation = d->generation;
	entry_sec = d->valid_sec;
	entry_nsec = d->valid_nsec;

	if (child == 0) {
		/*
		 * Negative entry: a reply with nodeid 0 and an entry
		 * validity, exactly what a daemon sends so that the kernel
		 * caches a negative dentry for that long.  No lookup count.
		 */
		ctx->out.entry.nodeid = 0;
		ctx->out.entry.generation = 0;
		ctx->out.entry.entry_valid = entry_sec;
		ctx->out.entry.attr_valid = 0;
		ctx->out.entry.entry_valid_nsec = entry_nsec;
		ctx->out.entry.attr_valid_nsec = 0;
		__builtin_memset(&ctx->out.entry.attr, 0, sizeof(ctx->out.entry.attr));
		return FUSE_FASTPATH_SERVED;
	}

	/*
	 * Count first, then check the attributes: a served lookup is thus
	 * always counted before the daemon's DeleteAttr(child) returns, and
	 * a run that loses the race takes its count back and goes upcall.
	 */
	served = served_counter(child);
	if (!served)
		return FUSE_FASTPATH_UPCALL;
	__sync_fetch_and_add(served, 1);
	a = bpf_map_lookup_elem(&attrs, &child);
	if (!a || a->attr.ino != child) {
		__sync_fetch_and_add(served, (__u64)-1);
		return FUSE_FASTPATH_UPCALL;
	}
	ctx->out.entry.nodeid = child;
	ctx->out.entry.generation = generation;
	ctx->out.entry.entry_valid = entry_sec;
	ctx->out.entry.attr_valid = a->valid_sec;
	ctx->out.entry.entry_valid_nsec = entry_nsec;
	ctx->out.entry.attr_valid_nsec = a->valid_nsec;
	__builtin_memcpy(&ctx->out.entry.attr, &a->attr, sizeof(a->attr));
	return FUSE_FASTPATH_SERVED;
}

static __always_inline int do_getattr(struct fuse_fastpath_ctx *ctx)
{
	__u64 nodeid = ctx->nodeid;
	struct fp_attr *a = bpf_map_lookup_elem(&attrs, &nodeid);

	if (!a || a->attr.ino != nodeid)
		return FUSE_FASTPATH_UPCALL;
	ctx->out.attr.attr_valid = a->valid_sec;
	ctx->out.attr.attr_valid_nsec = a->valid_nsec;
	ctx->out.attr.dummy = 0;
	__builtin_memcpy(&ctx->out.attr.attr, &a->attr, sizeof(a->attr));
	return FUSE_FASTPATH_SERVED;
}

/* Whether the xattr name in ctx starts with "user." (the bare prefix too:
 * the daemon decides what an empty user name is). */
static __always_inline int user_xattr(const struct fuse_fastpath_ctx *ctx)
{
	return ctx->name_len >= 5 && ctx->name[0] == 'u' && ctx->name[1] == 's' &&
	       ctx->name[2] == 'e' && ctx->name[3] == 'r' && ctx->name[4] == '.';
}

static __always_inline int do_getxattr(struct fuse_fastpath_ctx *ctx)
{
	struct fp_name_key key;
	struct fp_settings *set;
	struct fp_xattr *x;
	__u32 zero = 0;
	__u32 len;

	/*
	 * A file system that stores only user attributes (cryptfs) does not
	 * support the security.*, system.* or trusted.* namespaces: the
	 * kernel asks for security.capability before every write, and ls
	 * asks for security.selinux and system.posix_acl_access until it
	 * gets EOPNOTSUPP.
	 */
	set = bpf_map_lookup_elem(&settings, &zero);
	if (set && (set->flags & FP_USER_XATTRS_ONLY) && !user_xattr(ctx))
		return -EOPNOTSUPP;
	if (load_name_key(ctx, &key))
		return FUSE_FASTPATH_UPCALL;
	x = bpf_map_lookup_elem(&xattrs, &key);
	if (!x)
		return FUSE_FASTPATH_UPCALL;
	if (x->flags & FP_XATTR_NEGATIVE)
		return -ENODATA;
	len = x->size;
	if (ctx->size == 0) {
		ctx->out.xattr.size = len;
		ctx->out.xattr.padding = 0;
		return FUSE_FASTPATH_SERVED;
	}
	if (ctx->size < len)
		return -ERANGE;
	if (len > FUSE_FASTPATH_XATTR_MAX)
		return FUSE_FASTPATH_UPCALL;
	ctx->out.xattr.size = len;
	ctx->out.xattr.padding = 0;
	__builtin_memcpy(ctx->out.xattr.value, x->value, sizeof(x->value));
	return FUSE_FASTPATH_SERVED;
}

SEC("syscall")
int fuse_fastpath(struct fuse_fastpath_ctx *ctx)
{
	__u32 opcode = ctx->opcode;
	int ret;

	switch (opcode) {
	case FUSE_LOOKUP:
		ret = do_lookup(ctx);
		break;
	case FUSE_GETATTR:
		ret = do_getattr(ctx);
		break;
	case FUSE_GETXATTR:
		ret = do_getxattr(ctx);
		break;
	default:
		ret = FUSE_FASTPATH_UPCALL;
		break;
	}
	count_op(opcode, ret != FUSE_FASTPATH_UPCALL);
	return ret;
}
