// Package fsck verifies a cipher tree offline, from the master key alone:
// every directory IV, every name (and long-name sidecar), every block of
// every file (header, size, authentication), every symlink target and every
// extended attribute. It never modifies the tree and never stops at the
// first problem: the report lists each damaged or tampered item with its
// cipher path and, where the names above it decrypt, its plaintext path.
package fsck
