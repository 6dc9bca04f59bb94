package timeout

import (
	"context"
	"sync"
	"time"
)

// lazyCtx is the ctx a Timeout gives its call: parent with a deadline,
// whose timer is made only when something needs it. A call that never
// asks for Done (a cache hit, a computation) costs one allocation and no
// timer; the first Done, or an Err, Value or derived ctx once the
// deadline or the parent has ended, makes the real
// context.WithDeadlineCause, and everything from then on is that ctx's:
// derived ctxs attach to it as to any cancelable ctx (no goroutine), and
// context.Cause reports the Timeout's sentinel.
type lazyCtx struct {
	context.Context // the parent, until real is made
	deadline        time.Time
	cause           error

	mu       sync.Mutex
	real     context.Context // nil until needed
	cancel   context.CancelFunc
	finished bool // the call returned: real, if made later, is cancelled at once
}

// materialize returns the real ctx, making it if needed.
func (c *lazyCtx) materialize() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real == nil {
		c.real, c.cancel = context.WithDeadlineCause(c.Context, c.deadline, c.cause)
		if c.finished {
			c.cancel()
		}
	}
	return c.real
}

// loaded returns the real ctx if made.
func (c *lazyCtx) loaded() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.real
}

// ended reports whether the ctx has ended without its real ctx made:
// the parent ended, the deadline passed or the call returned.
func (c *lazyCtx) ended() bool {
	c.mu.Lock()
	finished := c.finished
	c.mu.Unlock()
	return finished || c.Context.Err() != nil || time.Until(c.deadline) <= 0
}

// Deadline is the Timeout's deadline (earlier than the parent's: Do
// makes no lazyCtx otherwise).
func (c *lazyCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done makes the real ctx and returns its channel.
func (c *lazyCtx) Done() <-chan struct{} { return c.materialize().Done() }

// Err is nil while the ctx is live, without making the real ctx.
func (c *lazyCtx) Err() error {
	if r := c.loaded(); r != nil {
		return r.Err()
	}
	if c.ended() {
		return c.materialize().Err()
	}
	return nil
}

// Value is the parent's while the ctx is live and has no real ctx (so
// context.Cause is nil, as it must be); once it has ended, the real ctx's,
// whose cause is the Timeout's.
func (c *lazyCtx) Value(key any) any {
	if r := c.loaded(); r != nil {
		return r.Value(key)
	}
	if c.ended() {
		return c.materialize().Value(key)
	}
	return c.Context.Value(key)
}

// finish ends the ctx when the call returns and, if failed, reports
// whether its deadline had passed by then, ending it (not the parent, nor
// finish).
func (c *lazyCtx) finish(failed bool) (fired bool) {
	c.mu.Lock()
	c.finished = true
	r, cancel := c.real, c.cancel
	c.mu.Unlock()
	if r == nil {
		return failed && c.Context.Err() == nil && time.Until(c.deadline) <= 0
	}
	fired = r.Err() != nil && context.Cause(r) == c.cause
	cancel()
	return fired
}

// epoch is a time with a monotonic reading, from which now counts.
var epoch = time.Now()

// now is time.Now() read from the monotonic clock alone: where reading
// the wall clock is slow (a system call in some sandboxes and VMs, a
// third of a composed call's cost), it is far cheaper. Its wall reading
// is epoch's plus the monotonic time since, which drifts from the system
// clock only if that is set; deadlines made from it are compared by
// their monotonic readings (time.Until, Before, Sub), as every ctx
// deadline is.
func now() time.Time { return epoch.Add(time.Since(epoch)) }
