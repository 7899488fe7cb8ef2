package meta

import (
	"sync"

	"github.com/jacobsa/fuse/fuseops"
)

// revoker sends invalidations to the kernel from its own goroutine, in
// order, so that no operation ever waits for one (see the coherence rules:
// the kernel may hold the directory lock the notification needs).
type revoker struct {
	n Notifier

	mu     sync.Mutex
	queue  []revocation
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

type revocation struct {
	parent uint64 // entry: the directory; inode: 0
	name   string
	inode  uint64
}

func newRevoker(n Notifier) *revoker {
	r := &revoker{n: n, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *revoker) push(v revocation) {
	r.mu.Lock()
	if !r.closed {
		r.queue = append(r.queue, v)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *revoker) entry(parent uint64, name string) { r.push(revocation{parent: parent, name: name}) }
func (r *revoker) inode(id uint64)                  { r.push(revocation{inode: id}) }

func (r *revoker) run() {
	defer close(r.done)
	for range r.wake {
		for {
			r.mu.Lock()
			if r.closed {
				r.mu.Unlock()
				return
			}
			if len(r.queue) == 0 {
				r.mu.Unlock()
				break
			}
			v := r.queue[0]
			r.queue = r.queue[1:]
			r.mu.Unlock()
			// ENOENT only means the kernel no longer caches it. Offset -1
			// drops the attributes only, not the page cache.
			if v.inode != 0 {
				_ = r.n.InvalidateInode(fuseops.InodeID(v.inode), -1, 0)
			} else {
				_ = r.n.InvalidateEntry(fuseops.InodeID(v.parent), v.name)
			}
		}
	}
}

// close stops the queue. A notification in flight when the connection
// goes away may block forever inside the library; the goroutine is then
// abandoned rather than waited for.
func (r *revoker) close() {
	r.mu.Lock()
	r.closed = true
	r.queue = nil
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
