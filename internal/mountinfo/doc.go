// Package mountinfo reads the kernel's mount table (/proc/self/mountinfo)
// and handles FUSE connections by their device number: finding the
// connection behind a mountpoint without touching the mount (so a dead
// daemon cannot hang the caller) and aborting it through fusectl.
//
// The device number major<<20|minor is what the kernel's fuse tracepoints
// and /sys/fs/fuse/connections call the connection.
package mountinfo
