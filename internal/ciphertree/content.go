package ciphertree

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// Content reads and writes the plaintext of one lower file, block by block
// (the read-modify-write engine). It is built per operation with
// OpenContent: it caches the file's size and ID, so the caller must keep
// anyone else from changing the lower file while it is in use (the daemon
// holds the inode's lock: shared for reads, exclusive for anything that
// writes). Large requests encrypt and decrypt their blocks on all cores.
type Content struct {
	suite *crypt.Suite
	fd    int          // lower file descriptor (O_RDWR, or O_RDONLY for reads)
	id    crypt.FileID // valid when hasID
	hasID bool         // the lower file has a header
	size  uint64       // plaintext size

	// lastPlain is the plaintext of the partial last block as it was
	// before a growing operation changed it (block lastBlock), kept to
	// undo a growth that failed; oldBlock serves it instead of a read.
	lastPlain []byte
	lastBlock uint64
}

// OpenContent reads the header and size of the lower file behind fd
// (opened O_RDWR, or O_RDONLY for reading only). A lower size that no
// cipher file can have, or a header that does not parse, is an error
// that wraps no errno: the file is damaged (or of a format version this
// code does not read).
func OpenContent(s *crypt.Suite, fd int) (*Content, error) {
	c := new(Content)
	if err := LoadContent(c, s, fd); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadContent is OpenContent into c, which the caller may keep on its
// stack: the daemon loads one per READ and WRITE, and a Content on the heap
// was an allocation per request.
func LoadContent(c *Content, s *crypt.Suite, fd int) error {
	return loadContent(c, s, fd, nil)
}

// LoadContentCached is LoadContent that takes the file ID from hc instead
// of reading the header again when the lower file's stat is the one hc
// saw it at (the same inode, size, mtime and ctime), and records what it
// reads in hc otherwise. The caller forgets hc whenever it changes the
// file itself (HeaderCache.Forget), since a change within one tick of a
// coarse clock can leave all four alike.
func LoadContentCached(c *Content, s *crypt.Suite, fd int, hc *HeaderCache) error {
	return loadContent(c, s, fd, hc)
}

func loadContent(c *Content, s *crypt.Suite, fd int, hc *HeaderCache) error {
	var st unix.Stat_t
	if err := Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	*c = Content{suite: s, fd: fd}
	size, err := crypt.PlainSize(uint64(st.Size))
	if err != nil {
		return err
	}
	c.size = size
	if st.Size == 0 {
		return nil
	}
	if hc != nil {
		if id, ok := hc.lookup(&st); ok {
			c.id, c.hasID = id, true
			return nil
		}
	}
	id, err := ReadHeader(fd)
	if err != nil {
		return err
	}
	c.id, c.hasID = id, true
	if hc != nil {
		hc.store(&st, id)
	}
	return nil
}

// HeaderCache remembers the file ID in one lower file's header with the
// stat it was read at, so that a READ of an unchanged file costs one
// pread (its block) instead of two. The zero value is empty; it is safe
// for concurrent use and does not allocate.
type HeaderCache struct {
	mu   sync.Mutex
	seen headerSeen
	ok   bool
}

type headerSeen struct {
	dev, ino   uint64
	size       int64
	mtim, ctim unix.Timespec
	id         crypt.FileID
}

func (hc *HeaderCache) lookup(st *unix.Stat_t) (crypt.FileID, bool) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	h := &hc.seen
	if !hc.ok || h.dev != st.Dev || h.ino != st.Ino || h.size != st.Size || h.mtim != st.Mtim || h.ctim != st.Ctim {
		return crypt.FileID{}, false
	}
	return h.id, true
}

func (hc *HeaderCache) store(st *unix.Stat_t, id crypt.FileID) {
	hc.mu.Lock()
	hc.seen = headerSeen{dev: st.Dev, ino: st.Ino, size: st.Size, mtim: st.Mtim, ctim: st.Ctim, id: id}
	hc.ok = true
	hc.mu.Unlock()
}

// Forget empties hc: call it when changing the file (under the lock that
// keeps readers out), so that no reader trusts a stat that a change in
// the same clock tick left as it was.
func (hc *HeaderCache) Forget() {
	hc.mu.Lock()
	hc.ok = false
	hc.mu.Unlock()
}

// Size returns the plaintext size.
func (c *Content) Size() uint64 { return c.size }

// ID returns the file ID in the lower file's header, and false when the
// lower file is empty (it has no header).
func (c *Content) ID() (crypt.FileID, bool) {
	if !c.hasID {
		return crypt.FileID{}, false
	}
	return c.id, true
}

// ensureHeader writes a fresh header to an empty lower file.
func (c *Content) ensureHeader() error {
	if c.hasID {
		return nil
	}
	id, err := crypt.NewFileID()
	if err != nil {
		return err
	}
	var hdr [crypt.HeaderLen]byte
	if err := PwriteFull(c.fd, crypt.EncodeHeader(hdr[:0], id), 0); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	c.id, c.hasID = id, true
	return nil
}

// blockLen is the plaintext length of block b in a file of the given size.
func blockLen(b, size uint64) int {
	start := b * crypt.BlockSize
	if start >= size {
		return 0
	}
	return int(min(crypt.BlockSize, size-start))
}

// ReadAt fills dst with plaintext from offset off and returns the number of
// bytes read (short only at end of file).
func (c *Content) ReadAt(dst []byte, off uint64) (int, error) {
	if off >= c.size || len(dst) == 0 {
		return 0, nil
	}
	end := min(off+uint64(len(dst)), c.size)
	first, last := off/crypt.BlockSize, (end-1)/crypt.BlockSize
	cOff := crypt.BlockOffset(first)
	cLen := int(crypt.CipherSize(c.size) - cOff)
	cLen = min(cLen, int(last-first+1)*crypt.CipherBlockSize)

	buf := getBuf(cLen)
	defer putBuf(buf)
	if err := PreadFull(c.fd, buf, int64(cOff)); err != nil {
		return 0, err
	}
	n := int(end - off)
	var err error
	// The closure parallel needs is made only for large reads: a 4 KiB
	// read allocates nothing here.
	if nb := int(last - first + 1); serial(nb) {
		for i := range nb {
			if err = c.openBlock(dst, buf, off, end, first, i); err != nil {
				break
			}
		}
	} else {
		cc := *c // a copy: c stays where its caller put it (a stack, per request)
		err = parallel(nb, func(i int) error { return cc.openBlock(dst, buf, off, end, first, i) })
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// openBlock decrypts block first+i, the i-th cipher block of buf, into
// dst, which holds the plaintext range [off, end) (ReadAt).
func (c *Content) openBlock(dst, buf []byte, off, end, first uint64, i int) error {
	b := first + uint64(i)
	stored := buf[i*crypt.CipherBlockSize : min((i+1)*crypt.CipherBlockSize, len(buf))]
	bStart := b * crypt.BlockSize
	// Fast path: the whole block lands in dst.
	if bStart >= off && bStart+uint64(blockLen(b, c.size)) <= end {
		at := int(bStart - off)
		if _, err := c.suite.OpenBlock(dst[at:at], stored, c.id, b); err != nil {
			return err
		}
		return nil
	}
	tmp := plainPool.Get().(*[crypt.BlockSize]byte)
	defer plainPool.Put(tmp)
	plain, err := c.suite.OpenBlock(tmp[:0], stored, c.id, b)
	if err != nil {
		return err
	}
	lo := max(off, bStart) - bStart
	hi := min(end, bStart+uint64(len(plain))) - bStart
	copy(dst[max(off, bStart)-off:], plain[lo:hi])
	return nil
}

// oldBlock returns the current plaintext of block b (nil past the end).
func (c *Content) oldBlock(b uint64, buf []byte) ([]byte, error) {
	n := blockLen(b, c.size)
	if n == 0 {
		return nil, nil
	}
	if c.lastPlain != nil && b == c.lastBlock && len(c.lastPlain) == n {
		return append(buf[:0], c.lastPlain...), nil
	}
	sb := storedPool.Get().(*[crypt.CipherBlockSize]byte)
	defer storedPool.Put(sb)
	stored := sb[:n+crypt.BlockOverhead]
	if err := PreadFull(c.fd, stored, int64(crypt.BlockOffset(b))); err != nil {
		return nil, err
	}
	return c.suite.OpenBlock(buf[:0], stored, c.id, b)
}

// rewriteBlock re-encrypts block b with plaintext p at its place.
func (c *Content) rewriteBlock(b uint64, p []byte) error {
	out, err := c.suite.SealBlock(make([]byte, 0, len(p)+crypt.BlockOverhead), p, c.id, b)
	if err != nil {
		return err
	}
	return PwriteFull(c.fd, out, int64(crypt.BlockOffset(b)))
}

// padLastBlock makes the current partial last block cover [its start, upTo)
// with zeros after the old data, so the file can grow past it.
func (c *Content) padLastBlock(upTo uint64) error {
	if c.size%crypt.BlockSize == 0 {
		return nil
	}
	b := c.size / crypt.BlockSize
	var tmp [crypt.BlockSize]byte
	old, err := c.oldBlock(b, tmp[:])
	if err != nil {
		return err
	}
	n := int(min(crypt.BlockSize, upTo-b*crypt.BlockSize))
	p := tmp[:n]
	clear(p[len(old):])
	return c.rewriteBlock(b, p)
}

// ErrUndo is wrapped by the error of a growing operation that failed and
// whose undoing failed too: the lower file may then be left longer than
// before or with its old last block unreadable. The operation's own error
// comes first in the chain, so errors.As finds its errno.
var ErrUndo = errors.New("undoing a failed growth failed")

// growing runs an operation that may grow the file and, when it fails
// (typically ENOSPC while allocating), puts the file back as it was:
// the old size, the old partial last block if it was padded, no header if
// there was none. What was there before is never lost to a failed growth,
// unless the undoing fails too; the error then wraps ErrUndo as well.
func (c *Content) growing(op func() error) error {
	oldSize, oldID := c.size, c.hasID
	c.lastPlain = nil
	lastHole := false
	if oldSize%crypt.BlockSize != 0 {
		// The partial last block is rewritten by any growth: keep it.
		b := oldSize / crypt.BlockSize
		stored := make([]byte, blockLen(b, oldSize)+crypt.BlockOverhead)
		if err := PreadFull(c.fd, stored, int64(crypt.BlockOffset(b))); err != nil {
			return err
		}
		old, err := c.suite.OpenBlock(nil, stored, c.id, b)
		if err != nil {
			return err
		}
		lastHole = allZero(stored)
		c.lastPlain, c.lastBlock = old, b
	}
	defer func() { c.lastPlain = nil }()
	err := op()
	if err == nil {
		return nil
	}
	var undo error
	ftruncate := func(size uint64) {
		if e := unix.Ftruncate(c.fd, int64(size)); e != nil && undo == nil {
			undo = fmt.Errorf("ftruncate to %d: %w", size, e)
		}
	}
	switch {
	case !oldID:
		ftruncate(0)
		c.hasID = false
	case c.lastPlain != nil && lastHole:
		// It was a hole: cut it off entirely and grow back, which
		// leaves zeros (a hole again) without allocating anything.
		ftruncate(crypt.BlockOffset(c.lastBlock))
		ftruncate(crypt.CipherSize(oldSize))
	case c.lastPlain != nil:
		// Rewrite it in place at its old length: its space is allocated.
		ftruncate(crypt.CipherSize(oldSize))
		if e := c.rewriteBlock(c.lastBlock, c.lastPlain); e != nil && undo == nil {
			undo = fmt.Errorf("rewrite block %d: %w", c.lastBlock, e)
		}
	default:
		ftruncate(crypt.CipherSize(oldSize))
	}
	c.size = oldSize
	if undo != nil {
		return fmt.Errorf("%w (and %w: %w)", err, ErrUndo, undo)
	}
	return err
}

// WriteAt writes data at off, growing the file as needed.
func (c *Content) WriteAt(data []byte, off uint64) error {
	if off+uint64(len(data)) > c.size {
		return c.growing(func() error { return c.writeAt(data, off) })
	}
	return c.writeAt(data, off)
}

func (c *Content) writeAt(data []byte, off uint64) error {
	if len(data) == 0 {
		return nil
	}
	end := off + uint64(len(data))
	first, last := off/crypt.BlockSize, (end-1)/crypt.BlockSize
	// A new file's header goes out with its first block, in one write
	// (a second pwrite per file was 5% of an untar's daemon time); a
	// file that starts with a hole gets it on its own.
	hdrLen := 0
	if !c.hasID && first == 0 {
		id, err := crypt.NewFileID()
		if err != nil {
			return err
		}
		c.id, hdrLen = id, crypt.HeaderLen
	} else if err := c.ensureHeader(); err != nil {
		return err
	}
	// A partial last block before the written range must become full first.
	if c.size%crypt.BlockSize != 0 && c.size/crypt.BlockSize < first {
		if err := c.padLastBlock(first * crypt.BlockSize); err != nil {
			return err
		}
	}
	newSize := max(c.size, end)

	// Plaintext of the first and last blocks when the write covers them
	// only partly: old content overlaid with the new bytes (on the stack
	// they escaped: 8 KiB per WRITE, a quarter of an untar's allocations).
	edges := edgePool.Get().(*[2][crypt.BlockSize]byte)
	defer edgePool.Put(edges)
	headBuf, tailBuf := &edges[0], &edges[1]
	merged := func(b uint64, buf []byte) ([]byte, error) {
		n := blockLen(b, newSize)
		old, err := c.oldBlock(b, buf)
		if err != nil {
			return nil, err
		}
		p := buf[:n]
		clear(p[len(old):])
		bStart := b * crypt.BlockSize
		lo := max(off, bStart)
		hi := min(end, bStart+uint64(n))
		copy(p[lo-bStart:hi-bStart], data[lo-off:hi-off])
		return p, nil
	}
	nblocks := int(last - first + 1)
	var head, tail []byte
	covered := func(b uint64) bool {
		bStart := b * crypt.BlockSize
		return bStart >= off && bStart+uint64(blockLen(b, newSize)) <= end
	}
	var err error
	if !covered(first) {
		if head, err = merged(first, headBuf[:]); err != nil {
			return err
		}
	}
	if last != first && !covered(last) {
		if tail, err = merged(last, tailBuf[:]); err != nil {
			return err
		}
	}

	// Encrypt every block into one contiguous buffer and write it at once.
	outLen := (nblocks-1)*crypt.CipherBlockSize + blockLen(last, newSize) + crypt.BlockOverhead
	buf := getBuf(hdrLen + outLen)
	defer putBuf(buf)
	if hdrLen > 0 {
		crypt.EncodeHeader(buf[:0], c.id)
	}
	out := buf[hdrLen:]
	s := sealing{out: out, data: data, head: head, tail: tail, off: off, first: first, newSize: newSize, nblocks: nblocks}
	// As in ReadAt, the closure parallel needs only for large writes.
	if serial(nblocks) {
		for i := range nblocks {
			if err = c.sealBlock(&s, i); err != nil {
				break
			}
		}
	} else {
		// Copies: s and c stay on the stack in the common case.
		ps, cc := new(sealing), *c
		*ps = s
		err = parallel(nblocks, func(i int) error { return cc.sealBlock(ps, i) })
	}
	if err != nil {
		return err
	}
	at := int64(crypt.BlockOffset(first)) - int64(hdrLen)
	// A write that starts at the old last block or past it changes
	// nothing that growing cannot put back (it keeps the partial last
	// block and truncates the rest), so only writes over earlier blocks
	// need the space reserved first; for appends (tar, cp, any file
	// written front to back) fallocate was one more system call per write
	// and took the lower file system's delayed allocation away.
	if !(end > c.size && first >= c.size/crypt.BlockSize) {
		if err := c.reserve(at, int64(len(buf))); err != nil {
			return err
		}
	}
	if err := PwriteFull(c.fd, buf, at); err != nil {
		return err
	}
	if hdrLen > 0 {
		c.hasID = true
	}
	c.size = newSize
	return nil
}

// reserve allocates the lower range a write is about to fill, so that a
// full lower file system fails the write before any byte of it lands: a
// write into a hole (the kernel flushes cached pages in any order) can
// otherwise stop halfway through a block and leave it torn. (Growth past
// the old last block needs no reservation: growing undoes it.) File
// systems without fallocate are written without the reservation.
func (c *Content) reserve(off, n int64) error {
	err := unix.Fallocate(c.fd, unix.FALLOC_FL_KEEP_SIZE, off, n)
	switch err {
	case nil, unix.EOPNOTSUPP, unix.ENOSYS:
		return nil
	case unix.EINTR:
		return c.reserve(off, n)
	}
	return fmt.Errorf("reserve lower space: %w", err)
}

// Truncate sets the plaintext size. Growing leaves holes (all-zero stored
// blocks); shrinking into a block re-encrypts the block's remaining part.
func (c *Content) Truncate(size uint64) error {
	if size > c.size {
		return c.growing(func() error { return c.truncate(size) })
	}
	return c.truncate(size)
}

func (c *Content) truncate(size uint64) error {
	switch {
	case size == c.size:
		return nil
	case size == 0:
		if err := unix.Ftruncate(c.fd, 0); err != nil {
			return fmt.Errorf("ftruncate: %w", err)
		}
		c.hasID = false
	case size > c.size:
		if err := c.ensureHeader(); err != nil {
			return err
		}
		if err := c.padLastBlock(size); err != nil {
			return err
		}
		if err := unix.Ftruncate(c.fd, int64(crypt.CipherSize(size))); err != nil {
			return fmt.Errorf("ftruncate: %w", err)
		}
	default:
		if rem := size % crypt.BlockSize; rem != 0 {
			b := size / crypt.BlockSize
			var tmp [crypt.BlockSize]byte
			old, err := c.oldBlock(b, tmp[:])
			if err != nil {
				return err
			}
			if err := unix.Ftruncate(c.fd, int64(crypt.CipherSize(size))); err != nil {
				return fmt.Errorf("ftruncate: %w", err)
			}
			if err := c.rewriteBlock(b, old[:rem]); err != nil {
				return err
			}
		} else if err := unix.Ftruncate(c.fd, int64(crypt.CipherSize(size))); err != nil {
			return fmt.Errorf("ftruncate: %w", err)
		}
	}
	c.size = size
	return nil
}

// Allocate implements plain fallocate (grow with allocated zeros) and
// FALLOC_FL_KEEP_SIZE (allocate lower space only).
func (c *Content) Allocate(off, length uint64, keepSize bool) error {
	if !keepSize && off+length > c.size {
		return c.growing(func() error { return c.allocate(off, length, false) })
	}
	return c.allocate(off, length, keepSize)
}

func (c *Content) allocate(off, length uint64, keepSize bool) error {
	end := off + length
	if keepSize {
		cEnd := crypt.BlockOffset((end + crypt.BlockSize - 1) / crypt.BlockSize)
		cOff := crypt.BlockOffset(off / crypt.BlockSize)
		if err := unix.Fallocate(c.fd, unix.FALLOC_FL_KEEP_SIZE, int64(cOff), int64(cEnd-cOff)); err != nil {
			return fmt.Errorf("fallocate: %w", err)
		}
		return nil
	}
	if end > c.size {
		if err := c.ensureHeader(); err != nil {
			return err
		}
		if err := c.padLastBlock(end); err != nil {
			return err
		}
	}
	cOff := crypt.BlockOffset(off / crypt.BlockSize)
	cEnd := max(crypt.CipherSize(end), crypt.CipherSize(c.size))
	if end <= c.size {
		cEnd = min(crypt.BlockOffset((end+crypt.BlockSize-1)/crypt.BlockSize), crypt.CipherSize(c.size))
	}
	if cEnd > cOff {
		if err := unix.Fallocate(c.fd, 0, int64(cOff), int64(cEnd-cOff)); err != nil {
			return fmt.Errorf("fallocate: %w", err)
		}
	}
	c.size = max(c.size, end)
	return nil
}

// sealing is a write's blocks being encrypted (writeAt): block first+i is
// head (i == 0), tail (the last), or else a block data covers entirely;
// its cipher text goes to out at i cipher blocks.
type sealing struct {
	out, data, head, tail []byte
	off, first, newSize   uint64
	nblocks               int
}

// sealBlock encrypts the i-th block of s.
func (c *Content) sealBlock(s *sealing, i int) error {
	b := s.first + uint64(i)
	var p []byte
	switch {
	case i == 0 && s.head != nil:
		p = s.head
	case i == s.nblocks-1 && s.tail != nil:
		p = s.tail
	default: // the block fully covered by data
		bStart := b * crypt.BlockSize
		p = s.data[bStart-s.off : bStart-s.off+uint64(blockLen(b, s.newSize))]
	}
	at := i * crypt.CipherBlockSize
	_, err := c.suite.SealBlock(s.out[at:at], p, c.id, b)
	return err
}
