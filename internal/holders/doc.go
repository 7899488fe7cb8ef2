// Package holders names the processes that keep a mount busy, as
// `fuser -m` would: those whose working directory, root directory or
// executable is on it, that hold a descriptor open on it, or that have one
// of its files mapped into memory, plus the mounts stacked inside it.
// These are exactly what makes the kernel refuse a non-lazy unmount
// (EBUSY).
//
// It reads only /proc and the mount table and never touches the mount
// itself: a dead or hung FUSE daemon cannot hang the scan, and the scan
// sends the daemon no request (so it does not reset an idle timer).
// Directories, executables and descriptors are matched by mount ID (the
// mnt_id of fdinfo), mappings by device number, never by path, so a
// process in the directory underneath the mount, or in another mount of
// the same path, is not named. A mount inside the mount counts as the
// mount: what holds it is named too.
//
// A process whose /proc entries the caller may not read (another user's,
// unless the caller is root) is skipped and counted in Result.Unreadable.
package holders
