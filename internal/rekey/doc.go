// Package rekey copies the plaintext of one cipher tree into another that
// has its own master key, offline, through package ciphertree: the remedy
// when a password or the master key itself leaked (passwd only re-wraps
// the same key), and the one way to change a tree's format options.
//
// What it promises:
//
//   - Every directory, regular file, symlink, FIFO, socket and device node
//     is copied with its plaintext name and content, its user extended
//     attributes, its mode (the root's too), its access and modification
//     times, and (as root) its owner and group; hard links stay hard links.
//     Sparse regions and all-zero blocks become holes.
//   - Nothing it cannot read is skipped silently: an entry whose name, a
//     block of whose content, or whose attribute fails authentication is a
//     Problem, and the rest is copied.
//   - Verify then compares the two trees entry by entry (type, mode, owner,
//     size, content, target, attributes, times, which names share an inode)
//     and reports every difference.
//
// Both trees must be unmounted: Copy and Verify read and write the cipher
// trees directly. Inode change times cannot be set and are not copied.
package rekey
