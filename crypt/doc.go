// Package crypt implements the cryptfs on-disk format, version 2: key
// derivation, file content blocks, file names (deterministic authenticated
// encryption with a 128-bit synthetic IV, long-name sidecars), extended
// attributes, symlink targets, and the recognition of sync tools' conflict
// copies in the cipher tree. docs/format.md is the byte-exact
// specification; this package is its reader and writer. Reverse (reverse
// mode, section 13) derives from keys, plaintext paths and plaintexts what
// forward mode draws at random, and seals with the same constructions, so
// a reverse view's bytes are stable and a forward reader opens them.
//
// What it promises:
//
//   - Every decoder is strict. A ciphertext is accepted only if it is exactly
//     what the encoder produces for some plaintext under this key: canonical
//     base64, exact lengths, exact zero padding, valid authentication tag.
//     Anything else fails with an error wrapping [ErrAuth]. The one documented
//     exception is the hole rule of [Suite.OpenBlock].
//   - Content blocks are bound to their file (file ID) and position (block
//     number); names are bound to their directory (directory IV); extended
//     attribute values are bound to their attribute name.
//   - Encrypted names and lower names never contain '.', so they cannot
//     collide with the reserved names ([ReservedPrefix], "longname.*",
//     "cryptfs.conf"), nor look like a sync tool's conflict copy.
//   - Conflict copies ([ParseConflict]) are recognised by syntax alone;
//     a caller shows one only if its base name authenticates.
//   - A [Suite] is safe for concurrent use. Sealing and opening a content
//     block does not allocate when dst has enough capacity.
//   - A Suite's and a Reverse's subkeys live once, in a keyring of locked,
//     undumpable memory outside the Go heap (keys.go), and nowhere else;
//     the master key is not kept. Wipe zeroes and unmaps the keyring.
//   - Errors never contain key material, plaintext names or contents.
//
// The package does no file I/O. Key wrapping, the config file and recovery
// keys live in the config subpackage.
package crypt
