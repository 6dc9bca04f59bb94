// Package pause waits for a while unless told to stop: the one
// "sleep d, or return early when done closes" of the module's background
// loops (reconnects, retries of a failing server, rate-limit pauses).
package pause

import "time"

// For waits d, or until done is closed (a ctx.Done() or a closed-on-stop
// channel). It reports whether the full wait passed: false means stop.
func For(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	select {
	case <-done:
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}

// Growing is the pause of a loop that retries a failing server: each Wait
// waits the current pause, then doubles it up to Max. Reset starts over
// from Min after a success. The zero value is not usable; set Min and Max.
type Growing struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Wait waits the current pause unless done closes first (For), then grows
// it. It reports whether the full wait passed: false means stop.
func (g *Growing) Wait(done <-chan struct{}) bool {
	if g.cur < g.Min {
		g.cur = g.Min
	}
	ok := For(done, g.cur)
	g.cur = min(2*g.cur, g.Max)
	return ok
}

// Reset makes the next Wait wait Min again.
func (g *Growing) Reset() { g.cur = 0 }
