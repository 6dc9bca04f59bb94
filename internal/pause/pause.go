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
