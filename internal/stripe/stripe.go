// Package stripe is a striped counter for hot paths: one atomic shared by
// all cores bounces its cache line on every increment; a Counter spreads
// increments over padded stripes, each goroutine picking its stripe by a
// hash of its stack address (goroutines running at the same time have
// different stacks, so they mostly count on different stripes; two that
// share one only share its cache line). The hash costs a multiply, where
// the per-P sync.Pool token used before cost a Get and a Put.
package stripe

import (
	"sync/atomic"
	"unsafe"
)

const (
	stripeBits = 4
	stripes    = 1 << stripeBits
)

type padded struct {
	n atomic.Uint64
	_ [56]byte
}

// Counter is a striped uint64 counter. The zero value is ready to use; it
// must not be copied after first use.
type Counter struct {
	s [stripes]padded
}

// Add adds d.
func (c *Counter) Add(d uint64) {
	c.s[stackStripe()].n.Add(d)
}

// stackStripe is the calling goroutine's stripe: a hash of its stack
// address. The bits below 2 KiB (the smallest stack) depend on the call
// depth, not the goroutine, so they are dropped; the multiply mixes the
// stack's upper bits into the top bits, which pick the stripe. A stack
// that grows moves, and the goroutine moves to another stripe: harmless.
//
//go:nosplit
func stackStripe() uint64 {
	var x byte
	return uint64(uintptr(unsafe.Pointer(&x))>>11) * 0x9e3779b97f4a7c15 >> (64 - stripeBits)
}

// Load returns the sum of the stripes (not an atomic snapshot of them all).
func (c *Counter) Load() uint64 {
	var sum uint64
	for i := range c.s {
		sum += c.s[i].n.Load()
	}
	return sum
}
