package timeout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyCtx is the ctx a Timeout gives its call: parent with a deadline,
// whose timer is made only when something needs it. A call that never
// asks for Done (a cache hit, a computation) costs one allocation, no
// timer and no lock; the first Done, or an Err, Value or derived ctx once
// the deadline or the parent has ended, makes the real
// context.WithDeadlineCause, and everything from then on is that ctx's:
// derived ctxs attach to it as to any cancelable ctx (no goroutine), and
// context.Cause reports the Timeout's sentinel.
type lazyCtx struct {
	context.Context // the parent, until real is made
	t               *Timeout
	deadline        time.Duration // on the monotonic clock, since epoch

	mu       sync.Mutex      // serialises materialize
	real     context.Context // nil until made; written before made is set
	cancel   context.CancelFunc
	made     atomic.Bool // real and cancel are set
	finished atomic.Bool // the call returned: real, if made later, is cancelled at once
}

// materialize returns the real ctx, making it if needed.
func (c *lazyCtx) materialize() context.Context {
	if c.made.Load() {
		return c.real
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.made.Load() {
		c.real, c.cancel = context.WithDeadlineCause(c.Context, epoch.Add(c.deadline), c.t.cause)
		c.made.Store(true)
		// finish sets finished, then reads made; this sets made, then
		// reads finished: one of the two sees the other's write, and a
		// double cancel is harmless.
		if c.finished.Load() {
			c.cancel()
		}
	}
	return c.real
}

// loaded returns the real ctx if made.
func (c *lazyCtx) loaded() context.Context {
	if c.made.Load() {
		return c.real
	}
	return nil
}

// ended reports whether the ctx has ended without its real ctx made:
// the parent ended, the deadline passed or the call returned.
func (c *lazyCtx) ended() bool {
	return c.finished.Load() || c.Context.Err() != nil || c.deadline <= since()
}

// Deadline is the Timeout's deadline (earlier than the parent's: Do
// makes no lazyCtx otherwise).
func (c *lazyCtx) Deadline() (time.Time, bool) { return epoch.Add(c.deadline), true }

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
	c.finished.Store(true)
	if !c.made.Load() {
		return failed && c.Context.Err() == nil && c.deadline <= since()
	}
	fired = c.real.Err() != nil && context.Cause(c.real) == c.t.cause
	c.cancel()
	return fired
}

// epoch is a time with a monotonic reading, from which since counts.
var epoch = time.Now()

// since is the monotonic time since epoch. Deadlines are kept as
// durations from epoch and made into a time.Time (epoch.Add) only when
// asked for: where reading the wall clock is slow (a system call in some
// sandboxes and VMs, a third of a composed call's cost), this is far
// cheaper than time.Now, and so is skipping time.Time arithmetic. Such a
// time's wall reading is epoch's plus the monotonic time since, which
// drifts from the system clock only if that is set; deadlines made from
// it are compared by their monotonic readings (time.Until, Before, Sub),
// as every ctx deadline is.
func since() time.Duration { return time.Since(epoch) }
