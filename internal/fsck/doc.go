// Package fsck verifies a cipher tree offline, from the master key alone:
// every directory IV, every name (and long-name sidecar), every block of
// every file (header, size, authentication), every symlink target and every
// extended attribute. It never modifies the tree and never stops at the
// first problem: the report lists each damaged or tampered item with its
// cipher path and, where the names above it decrypt, its plaintext path.
//
// Sync tools' conflict copies (docs/format.md, section 12) are not damage:
// the report lists them apart (Report.Conflicts, which Clean ignores) with
// the tool, the copy's plaintext path and its original's, and checks
// their content like any file's.
//
// A sparse file costs what its data costs: the blocks that lie in holes
// of the lower file (SEEK_DATA/SEEK_HOLE) read as zeros and are skipped.
package fsck
