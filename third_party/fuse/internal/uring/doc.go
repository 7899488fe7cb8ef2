// Package uring owns the few io_uring system calls that FUSE over io_uring
// needs: io_uring_setup, the mmap of the submission and completion rings,
// and io_uring_enter. It is not a general io_uring library: one ring is
// driven by one OS thread (the ring is created with
// IORING_SETUP_SINGLE_ISSUER), entries are 128 bytes (IORING_SETUP_SQE128,
// which IORING_OP_URING_CMD on /dev/fuse requires), and completions are the
// plain 16-byte kind.
//
// Layouts and constants follow include/uapi/linux/io_uring.h.
package uring
