// Package holders names the processes that keep a mount busy: those whose
// working directory or root directory is inside it, that hold a descriptor
// open on it, or that have one of its files mapped into memory. These are
// exactly what makes the kernel refuse a non-lazy unmount (EBUSY).
//
// It reads only /proc and never touches the mount itself: a hung FUSE
// daemon cannot hang the scan, and the scan sends the daemon no request (so
// it does not reset an idle timer). Descriptors and directories are matched
// by mount ID (the mnt_id of /proc/PID/fdinfo), mappings by device number,
// never by path, so a process in the directory underneath the mount, or in
// another mount of the same path, is not named.
//
// A process whose /proc entries the caller may not read (another user's,
// unless the caller is root) is skipped and counted in Result.Unreadable.
package holders
