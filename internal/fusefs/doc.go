// Package fusefs is the cryptfs slow path: a github.com/jacobsa/fuse file
// system that keeps every file encrypted in a lower ("cipher") directory,
// using the codecs of package crypt and the metadata cache of package meta.
//
// What it promises:
//
//   - One lower file per plaintext file, in the same directory shape. The
//     FUSE node ID (and so st_ino) is the lower inode number, stable across
//     mounts; hard links stay hard links and share one file ID.
//   - Every lower name is resolved relative to a directory descriptor with
//     O_NOFOLLOW/AT_SYMLINK_NOFOLLOW: a symlink placed in the cipher tree
//     never leads the daemon outside it. Directories are held as O_PATH
//     descriptors while the kernel knows them; other inodes are reached by
//     their (directory, name) links and checked by inode number.
//   - Nothing a user who can write a lower directory does redirects a
//     privileged change: every open, truncate, chmod, chown and utimens
//     acts on a descriptor whose dev, inode number and type were checked
//     after an O_PATH|O_NOFOLLOW open (never on a name that may lead
//     elsewhere by then); a root daemon creates each new entry with the
//     caller's fsuid and fsgid (creds.go), so no chown by name follows;
//     and the plaintext root's mode is stored apart, so the cipher root
//     stays private however open the mount root is (rootmode.go).
//   - cryptfs's own files (IVs, sidecars, the root mode) are opened only
//     when they are regular files: a FIFO or device in their place gives
//     EIO and a log line, never a blocked request. A request served on the
//     reader goroutine that stalls in the lower file system hands the
//     connection to a new reader after 50 ms (server.go); with FUSE over
//     io_uring it holds up only the requests sent from its CPU.
//   - Errors reach the kernel as the errno of the failed lower call. Data
//     that fails authentication gives EIO and exactly one error log line
//     naming the cipher path; a panic fails one request with EIO.
//   - Writes are read-modify-write of whole 4 KiB blocks under the inode's
//     exclusive lock; reads share it. Large requests encrypt and decrypt
//     their blocks on all cores.
//   - The lower directory is assumed to change only through this daemon
//     while mounted (see package meta for what the caches rely on), unless
//     Config.Shared: then changes made by anything else show within
//     meta.SharedValidity, a file replaced by rename is looked up again
//     rather than answered with ESTALE, and lower inodes are told apart by
//     birth time too (shared.go); with Config.Watch, outside changes are
//     pushed to the kernel as fanotify reports them (notify.go); an open
//     descriptor whose cipher file is rewritten in place under another
//     file ID, or changed by another program under the same one (its
//     ctime moved), fails with ESTALE (shared.go, headerPin, ctimeStamp).
package fusefs
