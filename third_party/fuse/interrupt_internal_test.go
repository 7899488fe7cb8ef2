package fuse

import (
	"context"
	"testing"

	"github.com/jacobsa/fuse/internal/fusekernel"
)

func newTestConnection(rings *ringSet) *Connection {
	return &Connection{
		cfg:         MountConfig{OpContext: context.Background()},
		cancelFuncs: map[uint64]func(){},
		rings:       rings,
	}
}

// With io_uring, an INTERRUPT read from /dev/fuse before its request (still
// on its way out of a queue) cancels the request's context when it is read.
func TestInterruptBeforeRequest(t *testing.T) {
	c := newTestConnection(&ringSet{})
	c.handleInterrupt(7)
	ctx := c.beginOp(fusekernel.OpGetattr, 7)
	select {
	case <-ctx.Done():
	default:
		t.Fatal("the early interrupt did not cancel the request")
	}
	if len(c.earlyInterrupts) != 0 {
		t.Fatalf("early interrupts left: %v", c.earlyInterrupts)
	}
	if ctx := c.beginOp(fusekernel.OpGetattr, 8); ctx.Err() != nil {
		t.Fatal("another request was cancelled")
	}
}

// Without io_uring nothing is remembered (an INTERRUPT never overtakes its
// request on /dev/fuse), and with it at most maxEarlyInterrupts are.
func TestEarlyInterruptsBounded(t *testing.T) {
	c := newTestConnection(nil)
	c.handleInterrupt(7)
	if ctx := c.beginOp(fusekernel.OpGetattr, 7); ctx.Err() != nil || len(c.earlyInterrupts) != 0 {
		t.Fatal("an interrupt of an unknown request was kept without io_uring")
	}

	c = newTestConnection(&ringSet{})
	for id := uint64(100); id < 100+3*maxEarlyInterrupts; id++ {
		c.handleInterrupt(id)
	}
	if len(c.earlyInterrupts) != maxEarlyInterrupts || len(c.earlyInterruptOrder) != maxEarlyInterrupts {
		t.Fatalf("%d early interrupts kept (%d in order), want %d", len(c.earlyInterrupts), len(c.earlyInterruptOrder), maxEarlyInterrupts)
	}
	if ctx := c.beginOp(fusekernel.OpGetattr, 100); ctx.Err() != nil {
		t.Fatal("the oldest early interrupt was not dropped")
	}
	if ctx := c.beginOp(fusekernel.OpGetattr, 100+3*maxEarlyInterrupts-1); ctx.Err() == nil {
		t.Fatal("the newest early interrupt was dropped")
	}
}
