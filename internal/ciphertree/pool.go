package ciphertree

import (
	"runtime"
	"sync"

	"github.com/cryptfs/cryptfs/crypt"
)

// What the content engine needs besides the format: running a batch of
// block operations on all cores, and buffers that are reused rather than
// allocated per request.

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// minPerWorker is the fewest blocks worth a goroutine of their own.
const minPerWorker = 16

// serial reports whether parallel would run a batch of n blocks on the
// calling goroutine alone: then the caller may loop itself and spare the
// closure (an allocation per request) parallel needs.
func serial(n int) bool { return min(runtime.GOMAXPROCS(0), n/minPerWorker) <= 1 }

// parallel runs fn for i in [0, n), spreading large batches over all cores.
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n/minPerWorker)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	per := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				if err := fn(i); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// Scratch blocks, pooled because the ones on the stack escape (to the
// encrypting goroutines or through the cipher interface): a write's partly
// covered first and last blocks, one plaintext block, one stored block.
var (
	edgePool   = sync.Pool{New: func() any { return new([2][crypt.BlockSize]byte) }}
	plainPool  = sync.Pool{New: func() any { return new([crypt.BlockSize]byte) }}
	storedPool = sync.Pool{New: func() any { return new([crypt.CipherBlockSize]byte) }}
)

// Buffers for whole requests of up to PooledRequest bytes of plaintext
// (plus the blocks either end only partly covers, plus overhead); larger
// requests allocate.
var bufPool = sync.Pool{New: func() any { return new([maxRequestCipher]byte) }}

// PooledRequest is the largest read or write whose cipher buffer comes
// from a pool: the daemon's largest READ and WRITE (1 MiB).
const PooledRequest = 1 << 20

const maxRequestCipher = (PooledRequest/crypt.BlockSize + 2) * crypt.CipherBlockSize

func getBuf(n int) []byte {
	if n > maxRequestCipher {
		return make([]byte, n)
	}
	return bufPool.Get().(*[maxRequestCipher]byte)[:n]
}

func putBuf(b []byte) {
	if cap(b) != maxRequestCipher {
		return
	}
	bufPool.Put((*[maxRequestCipher]byte)(b[:maxRequestCipher]))
}
