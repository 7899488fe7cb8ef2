// Package reversefs is cryptfs's reverse mode: a read-only
// github.com/jacobsa/fuse file system over a plaintext directory that
// shows the cipher tree forward mode would store for it (docs/format.md,
// section 13), so that the view can be backed up or synced while the
// plaintext stays where it is.
//
// What it promises:
//
//   - The view is exactly a forward-mode cipher tree: cryptfs.conf at the
//     root (the reverse config's bytes), a .cryptfs.diriv in every
//     directory (unless deterministic names), encrypted names with
//     long-name sidecars, content files of header and sealed blocks,
//     encrypted symlink targets and user.* attributes. A copy of it mounts
//     in forward mode and gives back the plaintext.
//   - Its bytes are a function of the keys, the plaintext paths and the
//     plaintext alone (crypt.Reverse): the same tree gives the same view on
//     every mount, and a changed block changes one stored block. Inode
//     numbers are keyed hashes of the paths, times pass through, sizes are
//     cipher sizes, so size+mtime checks (rsync) and inode checks (restic)
//     hold across mounts.
//   - Nothing can be changed through the view: every request that would
//     change something fails with EROFS (the mount is also read-only).
//   - Plaintext paths are resolved from the root's descriptor with
//     openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): a symlink in the
//     plaintext tree is shown as an (encrypted) symlink, never followed.
//   - The reverse config itself (and its backup and temporary files, when
//     it lives in the plaintext root) is not part of the view; it appears
//     as the view's cryptfs.conf instead, as it was at mount: New refuses
//     a file that is not a config with the keys' feature flags.
//
// What it does not do: hard links are not preserved (every path is a file
// of its own, with nlink 1, since file IDs come from paths); plaintext
// holes are encrypted like the zeros they read as; a file that changes
// while it is read may give a view that fails authentication at the
// changed blocks, as a torn copy of the plaintext would be torn.
package reversefs
