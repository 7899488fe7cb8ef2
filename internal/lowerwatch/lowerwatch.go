package lowerwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kind says what changed about an entry of a watched directory.
type Kind uint8

const (
	// Names: the entry was created, deleted, or renamed into or out of
	// the directory (the kernel's cached entry for its name is stale).
	Names Kind = 1 << iota
	// Content: the entry's content or attributes changed in place (it
	// was closed after writing, or chmod, chown, utimes, truncate).
	Content
	// Self: the directory itself changed (its attributes, or it was
	// deleted or moved); Change.Name is empty.
	Self
)

// Change is one changed entry, after coalescing: every event of a batch
// about the same directory and name gives one Change, its kinds or'ed.
type Change struct {
	Dir  uint64 // the key the directory was added with
	Name string // the entry's name in the lower directory; "" for Self
	Kind Kind
}

// mask is the set of events watched on every directory mark.
const mask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO |
	unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF |
	unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD

// Watcher reports changes that other processes make in the directories
// added to it. Create it with New, add directories with Add, and consume
// the changes with Run.
type Watcher struct {
	file *os.File // the fanotify group, non-blocking: Close wakes Run
	fd   int      // its descriptor, for fanotify_mark
	pid  int32    // this process: its own events are dropped

	mu     sync.Mutex
	keys   map[string]uint64 // fsid + file handle -> key
	ids    map[uint64]string // key -> fsid + file handle
	closed bool

	stats Stats
}

// Stats counts what a Watcher saw.
type Stats struct {
	Events    uint64 // events read from the kernel
	Own       uint64 // of which caused by this process, dropped
	Changes   uint64 // changes reported after coalescing
	Overflows uint64 // queue overflows reported
	Marks     int    // directories watched now
}

// New creates a watcher. It fails where fanotify with directory file
// handles is unavailable (kernels before 5.9, or before 5.13 without
// CAP_SYS_ADMIN): the caller then goes without notifications.
func New() (*Watcher, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_REPORT_DFID_NAME|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK,
		unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	return &Watcher{
		file: os.NewFile(uintptr(fd), "fanotify"),
		fd:   fd,
		pid:  int32(os.Getpid()),
		keys: make(map[string]uint64),
		ids:  make(map[uint64]string),
	}, nil
}

// ErrNoMarks wraps the error of Add when the user's fanotify marks
// (fs.fanotify.max_user_marks) are used up.
var ErrNoMarks = errors.New("fanotify marks used up (fs.fanotify.max_user_marks)")

// Add watches the directory behind dirfd (any descriptor of it, O_PATH
// too), whose changes are reported under key. A directory added twice
// under one key is watched once.
func (w *Watcher) Add(dirfd int, key uint64) error {
	fid, err := fidOf(dirfd)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return os.ErrClosed
	}
	if old, ok := w.ids[key]; ok && old == fid {
		return nil
	}
	// fanotify_mark does not take an O_PATH descriptor as the object
	// itself: name it through /proc, which resolves to the very
	// directory the descriptor holds.
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_ONLYDIR, mask, unix.AT_FDCWD, procFd(dirfd)); err != nil {
		if err == unix.ENOSPC {
			return fmt.Errorf("watch directory: %w", ErrNoMarks)
		}
		return fmt.Errorf("fanotify_mark: %w", err)
	}
	if old, ok := w.ids[key]; ok {
		delete(w.keys, old)
	}
	w.keys[fid] = key
	w.ids[key] = fid
	return nil
}

// Remove stops watching the directory added under key, behind dirfd.
func (w *Watcher) Remove(dirfd int, key uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fid, ok := w.ids[key]
	if !ok || w.closed {
		return
	}
	delete(w.ids, key)
	if w.keys[fid] == key {
		delete(w.keys, fid)
	}
	// ENOENT: the kernel dropped the mark already (the directory is gone).
	_ = unix.FanotifyMark(w.fd, unix.FAN_MARK_REMOVE, mask, unix.AT_FDCWD, procFd(dirfd))
}

// Stats returns the counters so far.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Marks = len(w.ids)
	return s
}

// Close stops the watcher: Run returns after the batch it is handling.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return w.file.Close()
}

// bufSize is how much Run reads at once: the events of one read are
// coalesced into one batch (an event with a short name takes about 64
// bytes, so up to about 1,000 events).
const bufSize = 64 << 10

// Window is how long Run waits after a read that did not fill half its
// buffer before it reads again and reports the batch: the added latency
// of a notification, traded for fewer, larger batches in a burst.
const Window = 5 * time.Millisecond

// Run reads events until Close and calls fn for each batch: the changes
// of one read of the queue, coalesced, other processes' only (an empty
// batch is not reported). When the kernel's queue overflowed, events were
// lost: fn gets overflow set and must assume that anything changed. fn
// runs on Run's goroutine, one batch at a time; while it runs, events
// queue in the kernel (bounded: a queue that fills overflows).
func (w *Watcher) Run(fn func(changes []Change, overflow bool)) {
	buf := make([]byte, bufSize)
	type entry struct {
		dir  uint64
		name string
	}
	index := make(map[entry]int)
	var changes []Change
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			return // closed
		}
		if n < len(buf)/2 {
			// A burst arrives as a stream of small reads: wait a moment
			// and take what came meanwhile, so that one batch carries
			// many events and a directory touched by all of them is
			// invalidated once. (Reads return whole events only.)
			time.Sleep(Window)
			if m, err := unix.Read(w.fd, buf[n:]); err == nil && m > 0 {
				n += m
			}
		}
		clear(index)
		changes = changes[:0]
		overflow := false
		w.mu.Lock()
		for off := 0; off+int(unsafe.Sizeof(unix.FanotifyEventMetadata{})) <= n; {
			md := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
			if md.Event_len < uint32(md.Metadata_len) || off+int(md.Event_len) > n || md.Event_len == 0 {
				break
			}
			ev := buf[off : off+int(md.Event_len)]
			off += int(md.Event_len)
			w.stats.Events++
			if md.Mask&unix.FAN_Q_OVERFLOW != 0 {
				w.stats.Overflows++
				overflow = true
				continue
			}
			if md.Fd >= 0 {
				unix.Close(int(md.Fd)) // not asked for with FID reports; never leak one
			}
			if md.Pid == w.pid {
				w.stats.Own++
				continue
			}
			fid, name, ok := parseInfo(ev[md.Metadata_len:])
			if !ok {
				continue
			}
			key, ok := w.keys[fid]
			if !ok {
				continue // a directory no longer watched
			}
			var kind Kind
			switch {
			case name == "" || name == ".":
				name, kind = "", Self
			case md.Mask&(unix.FAN_CREATE|unix.FAN_DELETE|unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO) != 0:
				kind = Names
				if md.Mask&(unix.FAN_CLOSE_WRITE|unix.FAN_ATTRIB) != 0 {
					kind |= Content
				}
			default:
				kind = Content
			}
			e := entry{key, name}
			if i, ok := index[e]; ok {
				changes[i].Kind |= kind
				continue
			}
			index[e] = len(changes)
			changes = append(changes, Change{Dir: key, Name: name, Kind: kind})
		}
		w.stats.Changes += uint64(len(changes))
		w.mu.Unlock()
		if overflow {
			fn(nil, true)
		} else if len(changes) > 0 {
			fn(changes, false)
		}
	}
}

// parseInfo returns the directory identity (fsid + file handle, as fidOf
// builds it) and the entry name of an event's DFID_NAME (or DFID) record.
func parseInfo(b []byte) (fid, name string, ok bool) {
	for len(b) >= 4 {
		typ, l := b[0], int(binary.NativeEndian.Uint16(b[2:4]))
		if l < 4 || l > len(b) {
			return "", "", false
		}
		rec := b[:l]
		b = b[l:]
		if typ != unix.FAN_EVENT_INFO_TYPE_DFID_NAME && typ != unix.FAN_EVENT_INFO_TYPE_DFID {
			continue
		}
		// header (4), fsid (8), handle_bytes (4), handle_type (4), handle, [name\0]
		if len(rec) < 20 {
			return "", "", false
		}
		hb := int(binary.NativeEndian.Uint32(rec[12:16]))
		if 20+hb > len(rec) {
			return "", "", false
		}
		fid = string(rec[4 : 20+hb]) // fsid, handle_bytes, handle_type, handle
		if typ == unix.FAN_EVENT_INFO_TYPE_DFID_NAME {
			rest := rec[20+hb:]
			for i, c := range rest {
				if c == 0 {
					rest = rest[:i]
					break
				}
			}
			name = string(rest)
		}
		return fid, name, true
	}
	return "", "", false
}

// fidOf returns the identity fanotify reports a directory under: the
// file system ID (statfs f_fsid) and the directory's file handle.
func fidOf(dirfd int) (string, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(dirfd, &sfs); err != nil {
		return "", fmt.Errorf("fstatfs: %w", err)
	}
	h, _, err := unix.NameToHandleAt(dirfd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return "", fmt.Errorf("name_to_handle_at: %w", err)
	}
	var b [16]byte
	binary.NativeEndian.PutUint32(b[0:4], uint32(sfs.Fsid.Val[0]))
	binary.NativeEndian.PutUint32(b[4:8], uint32(sfs.Fsid.Val[1]))
	binary.NativeEndian.PutUint32(b[8:12], uint32(len(h.Bytes())))
	binary.NativeEndian.PutUint32(b[12:16], uint32(h.Type()))
	return string(b[:]) + string(h.Bytes()), nil
}

func procFd(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }
