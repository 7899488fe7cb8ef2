package reversefs

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// maxConfigLen bounds the config file the view shows (the config reader
// refuses larger ones too).
const maxConfigLen = 64 << 10

// OpenFile opens a regular file of the view: the plaintext file (read
// only, without updating its access time where the daemon may), or the
// bytes of one of the view's own files.
func (fs *FS) OpenFile(_ context.Context, op *fuseops.OpenFileOp) error {
	key, err := fs.key(op.Inode)
	if err != nil {
		return err
	}
	h := &handle{fd: -1}
	switch key.class {
	case crypt.InodeClassDirIV:
		iv, err := fs.rev.DirIV(key.path)
		if err != nil {
			return errno(err)
		}
		h.data = iv[:]
	case crypt.InodeClassSidecar:
		dir, name := split(key.path)
		encoded, err := fs.encodedName(dir, name)
		if err != nil {
			return err
		}
		h.data = []byte(encoded)
	case crypt.InodeClassConfig:
		h.data = fs.confData
	case crypt.InodeClassOf(unix.S_IFREG):
		if h.id, err = fs.rev.FileID(key.path); err != nil {
			return errno(err)
		}
		// O_NONBLOCK: a fifo put in the file's place must not hang us.
		flags := unix.O_RDONLY | unix.O_NONBLOCK
		fd, err := fs.open(key.path, flags|unix.O_NOATIME)
		if err == unix.EPERM { // O_NOATIME needs ownership or CAP_FOWNER
			fd, err = fs.open(key.path, flags)
		}
		if err != nil {
			return errno(err)
		}
		var st unix.Stat_t
		if err := ciphertree.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(fd)
			return syscall.ENOENT // replaced by something else since the lookup
		}
		h.fd = fd
	default:
		return syscall.EINVAL
	}
	op.Handle = fs.addHandle(h)
	return nil
}

// readConfig reads the reverse config and its attributes, refusing
// anything but a regular file of at most maxConfigLen bytes.
func readConfig(p string, st *unix.Stat_t) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := ciphertree.Fstat(int(f.Fd()), st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigLen+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigLen {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxConfigLen)
	}
	return data, nil
}

// ReadFile reads the view's bytes of an open file.
func (fs *FS) ReadFile(_ context.Context, op *fuseops.ReadFileOp) error {
	h, err := fs.handle(op.Handle)
	if err != nil {
		return err
	}
	dst := op.Dst
	if dst == nil {
		dst = make([]byte, op.Size)
	}
	var n int
	if h.fd < 0 {
		if op.Offset < int64(len(h.data)) {
			n = copy(dst, h.data[op.Offset:])
		}
	} else if n, err = fs.readCipher(h.fd, h.id, dst, op.Offset); err != nil {
		fs.log.Error().Err(err).Msg("reading a plaintext file for the view")
		return errno(err)
	}
	if op.Dst == nil {
		op.Data = [][]byte{dst[:n]}
	}
	op.BytesRead = n
	return nil
}

// plainBufs recycles the plaintext buffers of reads (up to 1 MiB of
// cipher bytes, so up to 257 blocks).
var plainBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20+2*crypt.BlockSize); return &b }}

// readCipher fills dst with the view's bytes of the plaintext file fd
// (file ID id) from cipher offset off: the header, then each plaintext
// block sealed with its synthetic nonce. It stops at the plaintext's end,
// which may come before dst is full. Large reads seal their blocks on all
// cores.
func (fs *FS) readCipher(fd int, id crypt.FileID, dst []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if len(dst) == 0 {
		return 0, nil
	}
	const hdr, cbs, bs = int64(crypt.HeaderLen), int64(crypt.CipherBlockSize), int64(crypt.BlockSize)
	end := off + int64(len(dst))
	first, last := int64(0), int64(0)
	if off > hdr {
		first = (off - hdr) / cbs
	}
	if end > hdr {
		last = (end - 1 - hdr) / cbs
	}
	bufp := plainBufs.Get().(*[]byte)
	defer plainBufs.Put(bufp)
	need := int((last - first + 1) * bs)
	if cap(*bufp) < need {
		*bufp = make([]byte, need)
	}
	plain := (*bufp)[:need]
	got, err := preadUpTo(fd, plain, first*bs)
	if err != nil {
		return 0, err
	}
	if got == 0 {
		return 0, nil // at or beyond the end (an empty file has no header)
	}
	n := 0
	if off < hdr {
		h := crypt.EncodeHeader(make([]byte, 0, crypt.HeaderLen), id)
		n = copy(dst, h[off:])
	}
	// Block b's plaintext is plain[(b-first)*bs:][:k]; only the last one
	// read may be short.
	blocks := int(min(last-first+1, (int64(got)+bs-1)/bs))
	ends := make([]int, blocks) // where each block's bytes end in dst
	seal := func(lo, hi int) error {
		sealed := make([]byte, 0, crypt.CipherBlockSize)
		for x := lo; x < hi; x++ {
			i := x * int(bs)
			k := min(int(bs), got-i)
			b := first + int64(x)
			var err error
			if sealed, err = fs.rev.SealBlock(sealed[:0], plain[i:i+k], id, uint64(b)); err != nil {
				return err
			}
			src, d := sealed, hdr+b*cbs-off // d: the block's place in dst
			if d < 0 {
				if -d >= int64(len(src)) {
					continue // off lies beyond a shorter last block
				}
				src, d = src[-d:], 0
			}
			if d < int64(len(dst)) {
				ends[x] = int(d) + copy(dst[d:], src)
			}
		}
		return nil
	}
	if err := parallel(blocks, seal); err != nil {
		return 0, err
	}
	for _, e := range ends {
		n = max(n, e)
	}
	return n, nil
}

// parallelMin is the number of blocks from which a read seals on all
// cores.
const parallelMin = 16

// parallel runs fn over [0, n) in one range per core when n is large
// enough, and returns the first error.
func parallel(n int, fn func(lo, hi int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n/(parallelMin/2))
	if n < parallelMin || workers < 2 {
		return fn(0, n)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = fn(lo, hi)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// preadUpTo reads into p at off until p is full or the file ends.
func preadUpTo(fd int, p []byte, off int64) (int, error) {
	total := 0
	for total < len(p) {
		n, err := unix.Pread(fd, p[total:], off+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, nil
}

// ReleaseFileHandle closes an open file.
func (fs *FS) ReleaseFileHandle(_ context.Context, op *fuseops.ReleaseFileHandleOp) error {
	fs.release(op.Handle)
	return nil
}

// FlushFile has nothing to flush.
func (fs *FS) FlushFile(context.Context, *fuseops.FlushFileOp) error { return nil }

// SyncFile has nothing to sync.
func (fs *FS) SyncFile(context.Context, *fuseops.SyncFileOp) error { return nil }

// SyncFS has nothing to sync.
func (fs *FS) SyncFS(context.Context, *fuseops.SyncFSOp) error { return nil }

// ReadSymlink returns a symlink's encrypted target.
func (fs *FS) ReadSymlink(_ context.Context, op *fuseops.ReadSymlinkOp) error {
	key, err := fs.key(op.Inode)
	if err != nil {
		return err
	}
	if key.class != crypt.InodeClassOf(unix.S_IFLNK) {
		return syscall.EINVAL
	}
	dir, name := split(key.path)
	dfd, err := fs.open(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return errno(err)
	}
	target, err := ciphertree.Readlinkat(dfd, name)
	unix.Close(dfd)
	if err != nil {
		return errno(err)
	}
	stored, err := fs.rev.EncryptSymlink(key.path, target)
	if err != nil {
		// A target longer than forward mode can store (3008 bytes).
		fs.log.Error().Err(err).Int("target_len", len(target)).Msg("symlink target cannot be encrypted; the view shows it as unreadable")
		return syscall.ENAMETOOLONG
	}
	op.Target = stored
	return nil
}
