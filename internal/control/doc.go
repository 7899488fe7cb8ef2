// Package control is the local control channel of a running cryptfs
// daemon: a unix socket, one per mount, on which `cryptfs status`,
// `cryptfs stats` and `cryptfs unmount` ask the daemon about itself.
//
// The socket lives in the runtime directory ($CRYPTFS_RUNTIME_DIR, or
// /run/cryptfs for root,
// $XDG_RUNTIME_DIR/cryptfs otherwise), is named after the FUSE
// connection's device number (the value the kernel's fuse tracepoints call
// the connection), and is only accessible to the daemon's user (mode 0600
// in a 0700 directory). Each request is one JSON line; the reply is one
// JSON document. Nothing secret ever crosses it.
package control
