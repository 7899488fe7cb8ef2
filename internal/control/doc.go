// Package control is the local control channel of a running cryptfs
// daemon: a unix socket, one per mount, on which `cryptfs status`,
// `cryptfs stats` and `cryptfs unmount` ask the daemon about itself; and
// Find, which tells from a mount alone whether its daemon is live,
// unreachable or dead.
//
// The socket is <dev>.sock, dev the FUSE connection's device number
// (major<<20|minor, what the kernel's fuse tracepoints call the
// connection), in the runtime directory of the daemon's user, which
// depends on the uid alone (RuntimeDir): /run/cryptfs for root,
// /run/user/<uid>/cryptfs when that user has a private /run/user/<uid>,
// else /tmp/cryptfs-<uid>. XDG_RUNTIME_DIR and TMPDIR are not consulted:
// a client finds the socket from the mount's owner (user_id in the mount
// table) and device, so every shell of the user (su, sudo, cron, ssh) and
// root reach the same daemon. Directories are created with mkdir and then
// checked (owner, mode 0700, not a symlink); one that fails is refused.
//
// Both ends check each other (SO_PEERCRED): the daemon answers only root
// and its own user, a client accepts only a server of the mount's owner
// or root. A request is one JSON line of at most 4 KiB, read with a
// deadline; the reply is one JSON document of at most 1 MiB. Nothing
// secret ever crosses it. OpenLog opens the daemon's log file the same
// careful way (O_NOFOLLOW, owner checked).
package control
