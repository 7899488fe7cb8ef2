// Package ciphertree is the one reader and writer of the cipher tree on
// disk: the daemon (package fusefs), the offline checker (package fsck)
// and the offline tools all go through it. It knows the on-disk layout of
// docs/format.md; package crypt does the cryptography and no I/O.
//
// What it holds:
//
//   - Names: EncodeName maps a plaintext name to its lower name under the
//     directory's IV (DirIV, ReadDirIV, WriteDirIV, SyncDirIV), deciding
//     when a name is long (a hashed lower name plus a sidecar holding the
//     encrypted name: WriteSidecar, ReadSidecar); DecodeName maps back.
//   - Directories: MakeDir creates a directory with its IV atomically,
//     ReadDir lists one, IsEmpty and RemoveInternal handle cryptfs's own
//     files in it.
//   - Content: the block read-modify-write engine (Content: ReadAt,
//     WriteAt, Truncate, Allocate), and CheckBlocks, which authenticates
//     every stored block of a file.
//   - Extended attributes: Xattrs lists and decrypts a file's attributes.
//   - Tree: a whole tree opened from (directory, *crypt.Suite) for use
//     without a mount: plaintext path to lower path and back, reading a
//     file's plaintext, creating entries; Dir walks it a directory at a
//     time (walk.go).
//   - Conflict copies of sync tools (conflict.go): DecodeConflict,
//     ListDir (a directory as a reader shows it, docs/format.md section
//     12.3), ResolveName, HasConflictCopies.
//   - Sparse files (sparse.go): DataBlocks skips the blocks in the lower
//     file's holes, for whoever reads whole files.
//
// What it promises:
//
//   - Every name is resolved relative to a directory descriptor with
//     O_NOFOLLOW (or AT_SYMLINK_NOFOLLOW), and calls that need a path take
//     a /proc/self/fd path of a descriptor (ProcFd): a symlink placed in
//     the cipher tree never leads outside it.
//   - Reads and writes are retried on EINTR and never return short; a
//     lower file shorter than its size promises gives an error wrapping
//     ErrShort.
//   - Data that fails authentication gives an error wrapping
//     crypt.ErrAuth, never plaintext.
//   - A growth that fails (a full lower file system) leaves the file as it
//     was: size, content and its last partial block. Should undoing it
//     fail too, the error also wraps ErrUndo.
//   - A directory appears under its name only with its IV complete.
//
// It does no locking: callers keep two writers (or a writer and a reader)
// of the same file or directory apart, as the daemon does with its inode
// locks.
package ciphertree
