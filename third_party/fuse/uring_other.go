//go:build !linux

package fuse

import (
	"context"
	"errors"

	"github.com/jacobsa/fuse/internal/buffer"
)

// FUSE over io_uring is Linux only; these stand in for uring_linux.go.

type ringSet struct {
	queues []*ringQueue
	active bool
}

type ringQueue struct {
	handle *Connection
}

type ringEntry struct{}

func uringAvailable() error     { return errors.New("FUSE over io_uring is Linux only") }
func possibleCPUs() int         { return 0 }
func uringEnabledParam() string { return "absent" }

func (c *Connection) startRings() (*ringSet, error) {
	return nil, errors.New("FUSE over io_uring is Linux only")
}

func (rs *ringSet) register() error { return errors.New("FUSE over io_uring is Linux only") }
func (rs *ringSet) stop()           {}
func (rs *ringSet) pinned() int     { return 0 }

func (q *ringQueue) readOp() (context.Context, any, error) {
	return nil, nil, errors.New("FUSE over io_uring is Linux only")
}
func (q *ringQueue) do(f func())                              {}
func (q *ringQueue) id() int                                  { return -1 }
func (q *ringQueue) queueDepth() int                          { return 0 }
func (q *ringQueue) drain()                                   {}
func (e *ringEntry) fill(errno int32, out *buffer.OutMessage) {}
func (e *ringEntry) commit()                                  {}
