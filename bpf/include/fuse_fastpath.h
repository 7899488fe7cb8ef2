/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-2-Clause) */
/*
 * FUSE metadata fast path: the interface between a FUSE connection and a
 * BPF_PROG_TYPE_SYSCALL program that answers LOOKUP, GETATTR and GETXATTR
 * in the kernel.
 *
 * This header is shared verbatim by the cryptfs eBPF program (bpf/) and the
 * kernel patch (bpf/kernel/), so both sides agree on every byte.
 *
 * For each synchronous LOOKUP, GETATTR or GETXATTR request on a connection
 * with an attached program, the kernel fills the input part of
 * struct fuse_fastpath_ctx, runs the program and looks at its return value:
 *
 *   FUSE_FASTPATH_SERVED (0)   the program filled the matching member of
 *                              out; the kernel uses it as the reply and the
 *                              request never reaches the daemon.
 *   FUSE_FASTPATH_UPCALL (1)   the request goes to the daemon as usual.
 *   negative                   the request fails with that errno (for
 *                              example -ENOENT, -ENODATA, -ERANGE).
 *
 * A served positive LOOKUP counts as a lookup for FORGET purposes: the
 * kernel will later send FORGET for it, so the program must account for it
 * (cryptfs counts served lookups per nodeid in a map).
 *
 * GETXATTR: when size is 0 the caller asks for the value length; the
 * program sets out.xattr.size and the kernel replies with it.  Otherwise
 * the program copies the value into out.xattr.value, sets out.xattr.size
 * and the kernel copies that many bytes to the caller; a value larger than
 * size must be answered with -ERANGE.
 */
#ifndef _UAPI_LINUX_FUSE_FASTPATH_H
#define _UAPI_LINUX_FUSE_FASTPATH_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/fuse.h>

/* Longest name (entry or xattr name) passed in, plus its NUL. */
#define FUSE_FASTPATH_NAME_MAX		256
/* Longest xattr value the program can return; longer values go upcall. */
#define FUSE_FASTPATH_XATTR_MAX		256

#define FUSE_FASTPATH_SERVED		0
#define FUSE_FASTPATH_UPCALL		1

/*
 * Attach a program to the connection behind a /dev/fuse fd: the argument
 * is a pointer to a __s32 holding a BPF program fd (a sleepable
 * BPF_PROG_TYPE_SYSCALL program), or -1 to detach.  Needs CAP_BPF or
 * CAP_SYS_ADMIN.  FUSE_DEV_IOC_MAGIC is 229.
 */
#define FUSE_DEV_IOC_FASTPATH_ATTACH	_IOW(229, 0x80, __s32)

struct fuse_fastpath_xattr_out {
	__u32	size;		/* value length */
	__u32	padding;
	__u8	value[FUSE_FASTPATH_XATTR_MAX];
};

struct fuse_fastpath_ctx {
	/* Input, filled by the kernel. */
	__u32	opcode;		/* FUSE_LOOKUP, FUSE_GETATTR, FUSE_GETXATTR */
	__u32	name_len;	/* bytes of name in use, without the NUL */
	__u64	nodeid;		/* parent for LOOKUP, the inode otherwise */
	__u32	uid;		/* caller's fsuid */
	__u32	gid;		/* caller's fsgid */
	__u32	pid;		/* caller's tgid */
	__u32	size;		/* GETXATTR: caller's buffer size, 0 = query */
	__u32	getattr_flags;	/* GETATTR: FUSE_GETATTR_FH or 0 */
	__u32	padding;
	__u64	fh;		/* GETATTR: file handle when FUSE_GETATTR_FH */
	char	name[FUSE_FASTPATH_NAME_MAX];	/* NUL-padded */

	/* Output, filled by the program when it returns SERVED. */
	union {
		struct fuse_entry_out		entry;	/* LOOKUP */
		struct fuse_attr_out		attr;	/* GETATTR */
		struct fuse_fastpath_xattr_out	xattr;	/* GETXATTR */
	} out;
};

#endif /* _UAPI_LINUX_FUSE_FASTPATH_H */
