package fusefs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
	"github.com/cryptfs/cryptfs/meta"
)

// TestPanicBecomesEIO: a request whose handler panics fails with EIO and
// one log line; the server goes on.
func TestPanicBecomesEIO(t *testing.T) {
	f := newTestFS(t, meta.KernelCache, nil, 0)
	s, log := &server{fs: f.FS}, f.log
	var nilOp *fuseops.LookUpInodeOp // dereferencing it panics inside the handler
	if got := s.call(context.Background(), nilOp, describe(nilOp)); got != syscall.EIO {
		t.Fatalf("panicking request: errno %v, want EIO", got)
	}
	if n := strings.Count(log.String(), "request panicked"); n != 1 {
		t.Errorf("%d log lines about the panic, want 1:\n%s", n, log.String())
	}
	op := &fuseops.GetInodeAttributesOp{Inode: fuseops.RootInodeID}
	if got := s.call(context.Background(), op, describe(op)); got != 0 || !op.Attributes.Mode.IsDir() {
		t.Errorf("the next request: errno %v, mode %v", got, op.Attributes.Mode)
	}
}

// TestErrno: wrapped errors reach the kernel as their errno (jacobsa/fuse
// would turn anything but a bare syscall.Errno into EIO).
func TestErrno(t *testing.T) {
	fsys := newTestFS(t, meta.KernelCache, nil, 0)
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{syscall.ENOENT, syscall.ENOENT},
		{fmt.Errorf("open x: %w", syscall.EACCES), syscall.EACCES},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.ENOSPC}, syscall.ENOSPC},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", syscall.EROFS)), syscall.EROFS},
		{errors.New("no errno in here"), syscall.EIO},
	} {
		if got := fsys.errno(fuseop.Lookup, c.err); got != c.want {
			t.Errorf("errno(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
