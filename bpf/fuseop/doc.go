// Package fuseop names FUSE request opcodes.
//
// It is the one table from the numbers of the FUSE wire protocol
// (include/uapi/linux/fuse.h, enum fuse_opcode) to the names the kernel's
// fuse tracepoints print without their FUSE_ prefix (LOOKUP, GETATTR, ...),
// shared by the fast-path statistics (bpf/fastpath) and the upcall
// statistics (bpf/reqstats). It promises that every opcode of the kernel
// header has its kernel name here; unknown numbers print as "OP_<n>".
package fuseop
