// Package mountinfo reads the kernel's mount table (/proc/self/mountinfo)
// and handles FUSE connections by their device number: finding the
// connection behind a mountpoint and its owner without touching the mount
// (so a dead daemon cannot hang the caller), aborting it through fusectl,
// and unmounting (as root without following symlinks: OpenNoSymlinks).
// Naming the processes that keep a mount busy is package holders.
//
// The device number major<<20|minor is what the kernel's fuse tracepoints
// and /sys/fs/fuse/connections call the connection.
package mountinfo
