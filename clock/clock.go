// Package clock is the one place a scalekit primitive takes its time from,
// when it is not to be the real one.
//
//	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
//	c, _ := cache.New[string](cache.Options{TTL: time.Minute, Clock: clk})
//	clk.Add(2 * time.Minute) // every entry is now stale, without waiting
//
// Every Options struct that reads the time has one field for it, named
// Clock, of type Clock. Left nil, an in-process primitive reads time.Now and
// an engine (Redis, PostgreSQL) reads the server's clock, so that a fleet of
// instances whose clocks disagree still agrees on every deadline. Set, every
// instant comes from it instead, on both sides of the wire: that is what
// tests of expiry, retention, windows and back-off want, and what a
// simulation of hours in milliseconds needs.
//
// Timers and sleeps are not moved by a Clock: test them with
// testing/synctest, which fakes the whole runtime's time.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Func adapts a function to a Clock: clock.Func(f).
type Func func() time.Time

// Now calls f.
func (f Func) Now() time.Time { return f() }

// Now is c.Now(), or time.Now() when c is nil.
func Now(c Clock) time.Time {
	if c == nil {
		return time.Now()
	}
	return c.Now()
}

// Manual is a Clock that moves only when told to. It is safe for concurrent
// use; the zero value stands at the Unix epoch.
type Manual struct{ ns atomic.Int64 }

// NewManual returns a Manual clock standing at t.
func NewManual(t time.Time) *Manual {
	m := &Manual{}
	m.ns.Store(t.UnixNano())
	return m
}

// Now is the clock's time.
func (m *Manual) Now() time.Time { return time.Unix(0, m.ns.Load()) }

// Add moves the clock by d (backwards when d < 0) and returns the new time.
func (m *Manual) Add(d time.Duration) time.Time { return time.Unix(0, m.ns.Add(int64(d))) }

// Set moves the clock to t.
func (m *Manual) Set(t time.Time) { m.ns.Store(t.UnixNano()) }
