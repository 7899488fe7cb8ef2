package meta

import (
	"github.com/jacobsa/fuse/fuseops"
	"github.com/rs/zerolog"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
)

// MapSink publishes facts to the eBPF fast-path maps. Every fact is put
// with zero validity: the kernel asks again for every request, and the
// program answers from the maps, which the daemon keeps exact.
//
// A failed Put leaves the map without the fact (the program then sends the
// request to the daemon); a failed Delete could leave a stale fact behind,
// so it is retried once and then logged as an error.
type MapSink struct {
	fp  *fastpath.FastPath
	log zerolog.Logger
}

// NewMapSink returns a sink over the maps of fp.
func NewMapSink(fp *fastpath.FastPath, log zerolog.Logger) *MapSink {
	return &MapSink{fp: fp, log: log}
}

// ServedLookups returns the LOOKUPs the program answered for id.
func (s *MapSink) ServedLookups(id uint64) (uint64, error) { return s.fp.ServedLookups(id) }

func (s *MapSink) put(what string, id uint64, err error, undo func() error) {
	if err == nil {
		return
	}
	s.log.Warn().Str("op", "publish").Uint64("inode", id).Str("fact", what).Err(err).Msg("fast-path map update failed; the daemon answers instead")
	s.drop(what, id, undo)
}

func (s *MapSink) drop(what string, id uint64, del func() error) {
	if err := del(); err != nil {
		if err = del(); err != nil {
			s.log.Error().Str("op", "withdraw").Uint64("inode", id).Str("fact", what).Err(err).Msg("fast-path map delete failed: the kernel may serve a stale answer")
		}
	}
}

// PutAttr implements Sink.
func (s *MapSink) PutAttr(id uint64, a *fuseops.InodeAttributes) {
	err := s.fp.PutAttr(id, fastpath.AttrFromInodeAttributes(id, *a), 0)
	s.put("attr", id, err, func() error { return s.fp.DeleteAttr(id) })
}

// DropAttr implements Sink.
func (s *MapSink) DropAttr(id uint64) {
	s.drop("attr", id, func() error { return s.fp.DeleteAttr(id) })
}

// PutEntry implements Sink.
func (s *MapSink) PutEntry(parent uint64, name string, child, gen uint64) {
	err := s.fp.PutDentry(parent, name, child, gen, 0)
	s.put("dentry", parent, err, func() error { return s.fp.DeleteDentry(parent, name) })
}

// DropEntry implements Sink.
func (s *MapSink) DropEntry(parent uint64, name string) {
	s.drop("dentry", parent, func() error { return s.fp.DeleteDentry(parent, name) })
}

// PutXattr implements Sink.
func (s *MapSink) PutXattr(id uint64, name string, value []byte, present bool) {
	if !present {
		value = nil
	} else if value == nil {
		value = []byte{}
	}
	err := s.fp.PutXattr(id, name, value)
	s.put("xattr", id, err, func() error { return s.fp.DeleteXattr(id, name) })
}

// DropXattr implements Sink.
func (s *MapSink) DropXattr(id uint64, name string) {
	s.drop("xattr", id, func() error { return s.fp.DeleteXattr(id, name) })
}

// DropXattrs implements Sink.
func (s *MapSink) DropXattrs(id uint64) {
	s.drop("xattrs", id, func() error { return s.fp.DeleteXattrs(id) })
}

// Forget implements Sink.
func (s *MapSink) Forget(id uint64) {
	s.drop("node", id, func() error { return s.fp.ForgetNode(id) })
}
