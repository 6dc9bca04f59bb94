// Package testclock is a settable clock for Options.Now in tests that need
// time to stand still or jump (timer behaviour is tested with
// testing/synctest instead).
package testclock

import (
	"sync/atomic"
	"time"
)

// Clock is safe for concurrent use.
type Clock struct{ ns atomic.Int64 }

// New returns a clock at 2026-01-01 00:00 UTC.
func New() *Clock {
	c := &Clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

// Now is the clock's time; pass it as Options.Now.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Add moves the clock by d (backwards when d < 0).
func (c *Clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
