package fastpath

import (
	"github.com/jacobsa/fuse/fuseops"
	"github.com/rs/zerolog"
)

// Sink is the daemon's metadata cache's view of the maps (it implements
// meta.Sink, whose vocabulary FastPath's methods share): it publishes the
// facts the cache holds and withdraws them, with cryptfs's policy for
// failures. Every fact is put with zero validity: the kernel asks again
// for every request, and the program answers from the maps, which the
// daemon keeps exact (see package meta for the coherence rules).
//
// A failed Put leaves the map without the fact (the program then sends the
// request to the daemon); a failed Drop could leave a stale fact behind,
// so it is retried once and then logged as an error.
//
// It lives here rather than in package meta so that the cache and its
// rules depend on no BPF code (and are tested against a fake sink), and
// so that the Go side of the maps is in one package: what to store, and
// how failures to store it are handled.
type Sink struct {
	fp  *FastPath
	log zerolog.Logger
}

// NewSink returns a sink over the maps of fp that logs to log.
func NewSink(fp *FastPath, log zerolog.Logger) *Sink {
	return &Sink{fp: fp, log: log}
}

// ServedLookups implements meta.Sink.
func (s *Sink) ServedLookups(id uint64) (uint64, error) { return s.fp.ServedLookups(id) }

func (s *Sink) put(what string, id uint64, err error, undo func() error) {
	if err == nil {
		return
	}
	s.log.Warn().Str("op", "publish").Uint64("inode", id).Str("fact", what).Err(err).Msg("fast-path map update failed; the daemon answers instead")
	s.drop(what, id, undo)
}

func (s *Sink) drop(what string, id uint64, del func() error) {
	if err := del(); err != nil {
		if err = del(); err != nil {
			s.log.Error().Str("op", "withdraw").Uint64("inode", id).Str("fact", what).Err(err).Msg("fast-path map delete failed: the kernel may serve a stale answer")
		}
	}
}

// PutAttr implements meta.Sink.
func (s *Sink) PutAttr(id uint64, a *fuseops.InodeAttributes) {
	err := s.fp.PutAttr(id, AttrFromInodeAttributes(id, *a), 0)
	s.put("attr", id, err, func() error { return s.fp.DropAttr(id) })
}

// DropAttr implements meta.Sink.
func (s *Sink) DropAttr(id uint64) {
	s.drop("attr", id, func() error { return s.fp.DropAttr(id) })
}

// PutEntry implements meta.Sink.
func (s *Sink) PutEntry(parent uint64, name string, child, gen uint64) {
	err := s.fp.PutEntry(parent, name, child, gen, 0)
	s.put("dentry", parent, err, func() error { return s.fp.DropEntry(parent, name) })
}

// DropEntry implements meta.Sink.
func (s *Sink) DropEntry(parent uint64, name string) {
	s.drop("dentry", parent, func() error { return s.fp.DropEntry(parent, name) })
}

// PutXattr implements meta.Sink.
func (s *Sink) PutXattr(id uint64, name string, value []byte, present bool) {
	if !present {
		value = nil
	} else if value == nil {
		value = []byte{}
	}
	err := s.fp.PutXattr(id, name, value)
	s.put("xattr", id, err, func() error { return s.fp.DropXattr(id, name) })
}

// DropXattr implements meta.Sink.
func (s *Sink) DropXattr(id uint64, name string) {
	s.drop("xattr", id, func() error { return s.fp.DropXattr(id, name) })
}

// DropXattrs implements meta.Sink.
func (s *Sink) DropXattrs(id uint64) {
	s.drop("xattrs", id, func() error { return s.fp.DropXattrs(id) })
}

// Forget implements meta.Sink.
func (s *Sink) Forget(id uint64) {
	s.drop("node", id, func() error { return s.fp.Forget(id) })
}
