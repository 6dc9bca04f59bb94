package ratelimitredis

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/turns"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// Defaults of the coalescing pipeline (Options.Coalesce).
const (
	// DefaultMaxBatch is Options.MaxBatch's default.
	DefaultMaxBatch = 128
	// DefaultMaxInFlight is Options.MaxInFlight's default.
	DefaultMaxInFlight = 2
)

// coalescer sends the decisions that concurrent AllowN calls ask for in
// as few round trips as it can without making any caller wait for a
// timer (package internal/turns): a call that finds fewer than
// maxInFlight round trips in flight goes at once, alone, on the caller's
// goroutine (the path without coalescing); a call that finds them all
// busy queues, and when a round trip returns, the queue (up to maxBatch
// calls) leaves in the next one, decided by gcraManyScript in the order
// the calls arrived. Under no load nothing waits; under load each round
// trip carries every call that arrived while the others were out.
type coalescer struct {
	l     *Limiter
	turns *turns.Turns[*waiter]
}

func newCoalescer(l *Limiter, maxBatch, maxInFlight int) *coalescer {
	return &coalescer{l: l, turns: turns.New(turns.Config[*waiter]{Max: maxInFlight, MaxBatch: maxBatch,
		// Its caller left before it was sent: spend nothing for it.
		Drop: func(w *waiter) bool { return w.left.Load() }})}
}

// waiter is one queued call: its item, when it queued (its deadline is
// that plus Timeout), and done, closed once its item is decided or its
// batch failed with err.
type waiter struct {
	item
	queued time.Time
	done   chan struct{}
	err    error
	left   atomic.Bool // the caller's ctx ended: skip it if not sent yet
}

// allow decides for one call through the pipeline.
func (c *coalescer) allow(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	w, alone := c.turns.Go(func() *waiter {
		return &waiter{item: item{key: key, n: n}, queued: time.Now(), done: make(chan struct{})}
	})
	if alone {
		d, err := c.l.allowDirect(ctx, key, n)
		if batch := c.turns.Next(); batch != nil { // calls queued meanwhile leave together
			go c.loop(batch)
		}
		return d, err
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		w.left.Store(true)
		return ratelimit.Decision{}, ctx.Err()
	}
	if w.ok {
		return w.d, nil
	}
	if !unavailable(ctx, w.err) {
		return ratelimit.Decision{}, ctx.Err()
	}
	return c.l.degradedOne(ctx, key, n)
}

// loop sends batches until the queue is empty.
func (c *coalescer) loop(batch []*waiter) {
	for batch != nil {
		items := make([]*item, len(batch))
		for i, w := range batch {
			items[i] = &w.item
		}
		// Every caller in the batch waits at most Timeout from when it
		// queued: the batch's deadline is its oldest caller's.
		err := c.l.decideItems(context.Background(), items, batch[0].queued.Add(c.l.b.timeout))
		for _, w := range batch {
			if w.ok {
				c.l.count(w.d)
			}
			w.err = err
			close(w.done)
		}
		batch = c.turns.Next()
	}
}
