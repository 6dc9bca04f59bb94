package cacheredis

import (
	"context"
	"sync"
	"time"
)

// callCtx bounds one Store call by the Store's timeout, as
// context.WithTimeout would, for a caller's ctx that has neither a
// deadline nor a cancellation (the cache's detached reads and fills):
// Deadline is now + timeout, Done closes at that deadline and Err is then
// context.DeadlineExceeded; values are the caller's. A call that ends
// before its deadline stops the timer and puts the callCtx back in a pool
// with its channel and timer unused, so the common call allocates
// nothing for its timeout (WithTimeout costs a context, a timer, its
// function, the cancel function and the Done channel go-redis's pool
// wait asks for). A callCtx whose timer fired is never reused. go-redis
// keeps no command's ctx after the command returns; a Hook that does
// (and waits on its Done later) would see a later call's deadline.
type callCtx struct {
	context.Context // the caller's: values
	deadline        time.Time
	done            chan struct{}
	timer           *time.Timer
	// cancel is WithTimeout's, for a caller's ctx that can be canceled
	// (this callCtx is then not the call's context).
	cancel context.CancelFunc
}

var callCtxs sync.Pool

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *callCtx) Done() <-chan struct{}       { return c.done }

func (c *callCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (c *callCtx) fire() { close(c.done) }

// bound is ctx bounded by timeout and what end takes to release it.
func bound(ctx context.Context, timeout time.Duration) (context.Context, *callCtx) {
	d, has := ctx.Deadline()
	if has && time.Until(d) <= timeout {
		return ctx, nil // bounded already, as WithTimeout would leave it
	}
	if has || ctx.Done() != nil {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		return ctx, &callCtx{cancel: cancel}
	}
	deadline := time.Now().Add(timeout)
	c, _ := callCtxs.Get().(*callCtx)
	if c == nil {
		c = &callCtx{done: make(chan struct{})}
		c.timer = time.AfterFunc(timeout, c.fire)
	} else {
		c.timer.Reset(timeout)
	}
	c.Context, c.deadline = ctx, deadline
	return c, c
}

// end releases what bound took; c may be nil.
func (c *callCtx) end() {
	switch {
	case c == nil:
	case c.cancel != nil:
		c.cancel()
	case c.timer.Stop(): // the timer did not fire: done is open, c can serve again
		c.Context = nil
		callCtxs.Put(c)
	}
}
