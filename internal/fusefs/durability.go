package fusefs

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Durability of directory IVs.
//
// Every name in a directory is encrypted under the directory's IV, so the
// IV file must reach stable storage no later than any name under it.
// Syncing it inside mkdir costs a journal commit per directory (an untar
// creates thousands). Instead, new IV files are synced in batches: by a
// flusher at most flushInterval after their creation (the first fsync of a
// batch commits the journal, the others find their data already on disk),
// and always before the daemon answers an fsync or fsyncdir, so whatever a
// program made durable stays decryptable. A crash can only lose the IV of
// a directory created in the last flushInterval whose entries were never
// fsync'ed; the daemon then recreates the IV of such a directory if it is
// still empty, and reports it (EIO, fsck) otherwise.

const flushInterval = time.Second

type ivFlusher struct {
	mu      sync.Mutex
	pending map[*inode]struct{}
	fs      *FS
	stop    chan struct{}
	done    chan struct{}
}

func newIVFlusher(fs *FS) *ivFlusher {
	f := &ivFlusher{pending: map[*inode]struct{}{}, fs: fs, stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

// add records a directory whose IV file is not yet synced.
func (f *ivFlusher) add(n *inode) {
	f.mu.Lock()
	f.pending[n] = struct{}{}
	f.mu.Unlock()
}

// flush syncs every pending IV file (and its directory entry).
func (f *ivFlusher) flush() error {
	f.mu.Lock()
	batch := f.pending
	f.pending = map[*inode]struct{}{}
	f.mu.Unlock()
	var first error
	for n := range batch {
		dfd, err := f.fs.dirFd(n)
		if err != nil {
			continue // forgotten meanwhile: removed, nothing to keep
		}
		if err := ciphertree.SyncDirIV(dfd); err != nil && err != unix.ENOENT && first == nil {
			first = err
		}
	}
	return first
}

func (f *ivFlusher) run() {
	defer close(f.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := f.flush(); err != nil {
				f.fs.log.Warn().Str("op", "sync-diriv").Err(err).Msg("syncing new directory IVs failed")
			}
		case <-f.stop:
			f.flush()
			return
		}
	}
}

func (f *ivFlusher) close() {
	close(f.stop)
	<-f.done
}
