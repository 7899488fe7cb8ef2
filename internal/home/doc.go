// Package home turns user accounts' home directories into cryptfs
// mounts: the registry of encrypted homes, the count of each user's open
// sessions, mounting a home as its user (root mounts, a daemon running with
// the user's uid serves), unmounting it cleanly when the last session ends,
// and moving an existing home into a new cipher tree (Migrate).
//
// # Files
//
//   - /etc/cryptfs/home/USER.conf: the registry entry of USER (Entry), one
//     per user with an encrypted home, written by Migrate. It is trusted
//     only when it, /etc/cryptfs/home and /etc/cryptfs are owned by root
//     and not writable by group or others; anything else is ignored as
//     if absent. The PAM module (internal/pam) acts only for users with an
//     entry.
//   - /home/.cryptfs/USER: the cipher directory (root:root 0711 parent,
//     the directory itself USER's, 0700), unless the entry names another.
//   - /run/cryptfs/sessions/UID: the session state of uid (root, 0600, in
//     a root 0700 directory): how many sessions are open and which daemon
//     serves the home, read and written under flock; UID.log, the log of
//     the home's daemon and of the session stages; UID.sock, the socket on
//     which root asks the running daemon to re-wrap the key under a new
//     password (passwd by root, who has no old password).
//
// # Promises
//
// Root never reads or writes a file in a directory the user controls:
// whatever touches the cipher tree (unlocking the config, re-wrapping it,
// serving the mount) runs as the user. The mountpoint is opened without
// following symlinks (openat2 RESOLVE_NO_SYMLINKS) and mounted through its
// descriptor, so a user cannot redirect root's mount(2) elsewhere. A home
// is never unmounted lazily or by aborting its connection: a busy home
// stays mounted, the log names the processes that keep it busy, and a
// background retry unmounts it once they are gone (unless a new session
// opens first). Secrets cross process boundaries only on pipes, never in
// argv or the environment, and are never logged.
package home
