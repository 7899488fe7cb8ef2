// Package lowerwatch tells a shared-storage daemon (cryptfs mount
// --shared-storage) which entries of its cipher tree other processes
// changed, as they change, so that it can drop what the kernel caches
// about them at once instead of when their validity (1 s) runs out.
//
// It uses fanotify with FAN_REPORT_DFID_NAME and one inode mark per lower
// directory the daemon has a node for (the kernel can cache entries only
// under those): each event names the directory (by file handle) and the
// entry, and covers creation, deletion, both ends of a rename (also of
// directories, FAN_ONDIR), and a child's content or attributes
// (FAN_CLOSE_WRITE, FAN_ATTRIB, through FAN_EVENT_ON_CHILD). Why fanotify
// and not inotify:
//
//   - Every event carries the pid of the process that caused it, and an
//     unprivileged listener still sees its own pid (others read as 0):
//     the daemon's own changes, which it has already told the kernel
//     about, are dropped here by one comparison, so writes through the
//     mount cause no invalidation at all. inotify cannot tell them apart.
//   - It needs no privilege for inode marks (Linux 5.13 and later), and
//     the kernel merges identical queued events and bounds the queue
//     (fs.fanotify.max_queued_events, 16384 by default), reporting an
//     overflow instead of growing: the daemon then invalidates everything
//     it knows (Watcher.Run's overflow), which is the bounded-cost answer
//     to a burst.
//   - A file-system-wide mark (one mark for the whole tree) would need
//     CAP_SYS_ADMIN and would report every change on the lower file
//     system, inside the tree or not; per-directory marks follow exactly
//     the directories the daemon knows, and count against
//     fs.fanotify.max_user_marks (inotify's max_user_watches is the same
//     kind of limit). When marks run out, directories without one rely on
//     the 1 s validity alone.
//
// Notification only shortens the time an outside change takes to show:
// events are asynchronous and can be lost (overflow, a directory without
// a mark), so the daemon's revalidation by lower identity stays what makes
// the mount correct within the bound.
package lowerwatch
