// Package restore copies plaintext out of a cipher tree without mounting
// it: one file, a symlink or a whole subtree, from the cipher directory or
// from a copy of it (a backup restored by restic, an rsync mirror), with
// the master key alone. It reads the tree through package ciphertree, so
// every block is authenticated as the daemon authenticates it.
//
// What it promises:
//
//   - Nothing partial under the destination's name. A new destination is
//     built under a temporary name next to it (".cryptfs-restore.<16 hex
//     digits>"), made durable (syncfs) and renamed into place at the end,
//     without replacing anything that appeared there meanwhile. With
//     Force into an existing destination, each file is written under a
//     temporary name in its directory, synced and renamed over the old
//     one. On failure the temporary files are removed.
//   - Authentication failures are errors that name the plaintext path
//     and the block, and wrap crypt.ErrAuth. By default the first one
//     stops the restore (and nothing is renamed into place); with
//     KeepGoing every file that authenticates is restored, the others are
//     left out, and the returned *Error lists each.
//   - What is restored: regular files (sparse where the lower file has
//     holes), directories, symlinks, FIFOs and device nodes; modes,
//     access and modification times, user extended attributes, owners
//     (when Options.Owners, which needs root), and hard links as hard
//     links (lower files with several names inside the restored subtree).
//     Sockets are skipped, as tar and cp skip them. Sync tools' conflict
//     copies are restored under the names the mount shows them with.
//   - Progress is reported through a callback; the package prints nothing.
package restore
