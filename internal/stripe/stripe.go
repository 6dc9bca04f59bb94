// Package stripe is a striped counter for hot paths: one atomic shared by
// all cores bounces its cache line on every increment; a Counter spreads
// increments over padded stripes, each goroutine keeping to the stripe of
// the P it runs on (a sync.Pool token, since pools cache per P; tokens are
// numbered, so up to 16 Ps get a stripe each).
package stripe

import (
	"sync"
	"sync/atomic"
)

const stripes = 16 // power of two

type padded struct {
	n atomic.Uint64
	_ [56]byte
}

// Counter is a striped uint64 counter. The zero value is ready to use; it
// must not be copied after first use.
type Counter struct {
	s [stripes]padded
}

type token struct{ idx uint32 }

// next numbers the tokens, so the first stripes Ps ask for get stripes of
// their own.
var next atomic.Uint32

var tokens = sync.Pool{New: func() any { return &token{idx: next.Add(1)} }}

// Add adds d.
func (c *Counter) Add(d uint64) {
	t := tokens.Get().(*token)
	c.s[t.idx&(stripes-1)].n.Add(d)
	tokens.Put(t)
}

// Load returns the sum of the stripes (not an atomic snapshot of them all).
func (c *Counter) Load() uint64 {
	var sum uint64
	for i := range c.s {
		sum += c.s[i].n.Load()
	}
	return sum
}
