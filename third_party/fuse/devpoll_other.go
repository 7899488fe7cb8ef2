//go:build !linux

package fuse

import "time"

type devPoller struct{}

func newDevPoller(fd int, maxWindow time.Duration) *devPoller { return nil }
func (p *devPoller) wait() bool                               { return false }
func (p *devPoller) slept(d time.Duration)                    {}
