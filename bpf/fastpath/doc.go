// Package fastpath loads and feeds the cryptfs metadata fast path: a
// sleepable BPF_PROG_TYPE_SYSCALL program (fastpath.bpf.c) that answers
// FUSE LOOKUP, GETATTR and GETXATTR in the kernel from maps the daemon
// fills, so those requests never reach user space while the maps hold the
// answer.
//
// The program's context is struct fuse_fastpath_ctx from
// bpf/include/fuse_fastpath.h (Go: Ctx). It runs for real in a kernel with
// the cryptfs FUSE patch (bpf/kernel/) after Attach, and anywhere through
// BPF_PROG_TEST_RUN (Run), which is how its logic is tested on stock
// kernels.
//
// # What the program answers
//
// It returns Served (0) with ctx.out filled, Upcall (1), or a negative
// errno:
//
//	LOOKUP    dentry (parent, name) present and positive, the child's
//	          attributes present: out.entry = {child, generation,
//	          entry validity from the dentry, attr validity and attr from
//	          the attrs map}; the child's served-lookup counter is
//	          incremented. Served.
//	          dentry present and negative (child 0): out.entry = {nodeid 0,
//	          generation 0, entry validity from the dentry, attr validity 0,
//	          attr all zero}. Served. This is the reply a daemon gives for a
//	          cacheable negative entry: the kernel must treat it exactly like
//	          such a reply (fuse_lookup_name: "zero nodeid is same as -ENOENT,
//	          but with valid timeout"), i.e. cache a negative dentry for the
//	          entry validity. The program never returns -ENOENT.
//	          dentry present, attributes missing; no dentry; name_len 0 or
//	          > 255; served-lookup map full: Upcall.
//	GETATTR   attributes present: out.attr = {attr validity, dummy 0, attr}.
//	          Served. Otherwise Upcall. getattr_flags and fh are ignored:
//	          attributes are per inode.
//	GETXATTR  negative entry: -ENODATA. Positive entry of length len:
//	          size 0 (a length query): out.xattr.size = len, Served;
//	          size < len: -ERANGE; len > 256: Upcall; otherwise
//	          out.xattr = {len, 0, value zero-padded to 256 bytes}, Served.
//	          No entry: Upcall.
//	other     Upcall.
//
// Every answer that is not Upcall counts as a hit of its opcode in
// op_stats; every Upcall as a miss (opcodes >= 64 share slot 0).
//
// The program only reads ctx at fixed offsets and writes only the out
// member matching the opcode; it never reads the output part of ctx.
//
// # Kernel-side contract (for bpf/kernel/)
//
//   - Run the program as BPF_PROG_TEST_RUN does: under
//     rcu_read_lock_trace() and with migration disabled
//     (bpf_prog_run_pin_on_cpu), because op_stats is a per-CPU array.
//   - Zero the whole context, then fill the input part; name is NUL-padded
//     and name_len excludes the NUL. A served LOOKUP's out.entry is handled
//     like a daemon's fuse_entry_out reply, including nodeid 0 (negative
//     dentry with entry validity) and, for a positive answer, the lookup
//     count: the kernel must send FORGET for it like for any other lookup
//     (also when it cannot instantiate the inode).
//   - GETXATTR: with size 0 the reply is out.xattr.size; otherwise the
//     caller receives out.xattr.size bytes of out.xattr.value, and the
//     program guarantees out.xattr.size <= min(size, 256).
//
// # Maps
//
//	attrs           LRU_HASH, 32768 entries
//	                key:   __u64 nodeid
//	                value: struct fp_attr {struct fuse_attr attr;
//	                       __u64 valid_sec; __u32 valid_nsec; __u32 padding}
//	                attr.ino must equal the key (checked by the program).
//	dentries        LRU_HASH, 32768 entries
//	                key:   struct fp_name_key {__u64 nodeid (the parent);
//	                       __u32 name_len; __u32 padding (0);
//	                       __u8 name[256] (zero-padded)}
//	                value: struct fp_dentry {__u64 child (0 = negative);
//	                       __u64 generation; __u64 valid_sec;
//	                       __u32 valid_nsec; __u32 padding}
//	xattrs          LRU_HASH, 8192 entries
//	                key:   struct fp_name_key (nodeid = the inode,
//	                       name = the xattr name)
//	                value: struct fp_xattr {__u32 flags (1 = negative:
//	                       ENODATA); __u32 size; __u8 value[256]}
//	                value is empty when size > 256.
//	served_lookups  HASH (preallocated, never evicted), 65536 entries
//	                key: __u64 nodeid; value: __u64 served positive LOOKUPs
//	op_stats        PERCPU_ARRAY, 64 slots indexed by opcode
//	                value: struct fp_op_stats {__u64 hits; __u64 misses}
//
// The three cache maps are LRU: a full map evicts, which only turns hits
// into upcalls. Validities are relative durations, as in FUSE replies.
//
// # Served lookups and FORGET
//
// Each positive LOOKUP the program serves makes the kernel count one more
// lookup of the child, for which it will send FORGET to the daemon. The
// program therefore counts them per nodeid in served_lookups. It increments
// the counter before it checks the child's attributes, and when they are
// missing it takes its increment back and answers Upcall. So the counter
// only grows, apart from such a transient +1 of a run that is about to go
// upcall, and every served lookup is counted before a concurrent DropAttr
// of the child returns. Forget deletes the counter with the node's other
// facts.
//
// How the daemon uses this to forget a node without losing a reference is
// rule 4 of the coherence rules in package meta (the one place it is
// written; internal/fusefs runs it): withdraw the entries naming the node,
// then its attributes, read the counter again, and Forget only if it did
// not move.
//
// # Ordering against replies
//
// Put and Drop take effect immediately for the next run of the program.
// The daemon must withdraw a fact (Drop*) before the reply or
// invalidation that changes it leaves the daemon, and publish facts under
// the same per-inode lock as the reply, so a stale Put can never land after
// a withdrawal.
package fastpath
