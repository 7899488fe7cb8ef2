// Package ciphertree reads and writes the cipher tree on disk, for the daemon
// (package fusefs) and the offline checker (package fsck) alike: directory
// listings, directory IV files, long-name sidecars and the decoding of
// lower names, and reads and writes that are retried on EINTR and never
// return short.
//
// Every name is resolved relative to a directory descriptor with
// O_NOFOLLOW (or AT_SYMLINK_NOFOLLOW), so a symlink placed in the cipher
// tree never leads outside it.
package ciphertree
