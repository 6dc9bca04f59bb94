package ratelimitredis

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/turns"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// Defaults of the coalescing pipeline (Options.Coalesce).
const (
	// DefaultMaxBatch is Options.MaxBatch's default.
	DefaultMaxBatch = 128
	// DefaultMaxInFlight is Options.MaxInFlight's default.
	DefaultMaxInFlight = 2
	// DefaultClusterMaxInFlight is Options.MaxInFlight's default on a
	// *redis.ClusterClient, where it counts per master: each master has
	// its own turns, so the masters work in parallel and the calls that
	// wait for a master's one round trip make larger scripts.
	DefaultClusterMaxInFlight = 1
)

// coalescer sends the decisions that concurrent AllowN calls ask for in
// as few round trips as it can without making any caller wait for a
// timer (package internal/turns): a call that finds fewer than
// maxInFlight round trips in flight goes at once, alone, on the caller's
// goroutine (the path without coalescing); a call that finds them all
// busy queues, and when a round trip returns, the queue (up to maxBatch
// calls) leaves in the next one, decided by gcraManyScript in the order
// the calls arrived. Under no load nothing waits; under load each round
// trip carries every call that arrived while the others were out. On a
// Cluster (unless batches go by slot, before Redis 7) each master has its
// own turns and queue: a batch is one script on one master, and no batch
// waits for another master. A key whose slot moved while it waited is
// still decided right: the batch's own lookup sends it to its master.
type coalescer struct {
	l     *Limiter
	cfg   turns.Config[*waiter]
	turns *turns.Turns[*waiter]
	yield func() // runtime.Gosched, turns.Drain's Config.Yield (a test replaces it)
	// On a Cluster each master has turns of its own (byMaster: its
	// *redis.Client -> *turns.Turns[*waiter]), so that a batch is one
	// script on one master and no batch waits for another master.
	cc       *redis.ClusterClient
	byMaster sync.Map
}

func newCoalescer(l *Limiter, maxBatch, maxInFlight int) *coalescer {
	c := &coalescer{l: l, cfg: turns.Config[*waiter]{Max: maxInFlight, MaxBatch: maxBatch,
		// Its caller left before it was sent: spend nothing for it.
		Drop: func(w *waiter) bool { return w.left.Load() }}, yield: runtime.Gosched}
	c.cfg.Yield = func() { c.yield() } // c.yield, so that a test may replace it
	c.turns = turns.New(c.cfg)
	c.cc, _ = l.b.client.(*redis.ClusterClient)
	return c
}

// turnsFor returns the turns of it: its master's on a Cluster (whose batches
// do not go by slot), else the Limiter's.
func (c *coalescer) turnsFor(ctx context.Context, it *item) *turns.Turns[*waiter] {
	if c.cc == nil || c.l.perSlot.Load() {
		return c.turns
	}
	m, err := c.cc.MasterForKey(ctx, c.l.rkey(it))
	if err != nil {
		return c.turns // the round trip meets the error
	}
	if t, ok := c.byMaster.Load(m); ok {
		return t.(*turns.Turns[*waiter])
	}
	t, _ := c.byMaster.LoadOrStore(m, turns.New(c.cfg))
	return t.(*turns.Turns[*waiter])
}

// waiter is one queued call: its item, when it queued (its deadline is
// that plus Timeout), and done, which receives once its item is decided
// or its batch failed with err. A waiter whose answer its caller read
// goes back to waiters; one whose caller left is never reused (the queue
// or a batch may still hold it).
type waiter struct {
	item
	queued time.Time
	done   chan struct{} // buffered: the loop never blocks on it
	err    error
	left   atomic.Bool // the caller's ctx ended: skip it if not sent yet
}

// waiters holds waiters (with their channels) for queued calls to reuse:
// a queued call allocates neither.
var waiters = sync.Pool{New: func() any { return &waiter{done: make(chan struct{}, 1)} }}

// allow decides for one call through the pipeline.
func (c *coalescer) allow(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	it := item{key: key, n: n}
	t := c.turnsFor(ctx, &it)
	w, alone := t.Go(func() *waiter {
		w := waiters.Get().(*waiter)
		w.item, w.queued, w.err = it, time.Now(), nil
		return w
	})
	if alone {
		d, err := c.l.allowDirect(ctx, key, n)
		if batch := t.Next(); batch != nil { // calls queued meanwhile leave together
			go c.loop(t, batch)
		}
		return d, err
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		w.left.Store(true)
		return ratelimit.Decision{}, ctx.Err()
	}
	d, ok, err := w.d, w.ok, w.err
	w.item = item{} // keeps no key alive in the pool
	waiters.Put(w)
	if ok {
		return d, nil
	}
	if !unavailable(ctx, err) {
		return ratelimit.Decision{}, ctx.Err()
	}
	return c.l.degradedOne(ctx, key, n)
}

// loop sends batches until the queue is empty (turns.Drain, which
// yields between two batches; see Config.Yield in newCoalescer).
func (c *coalescer) loop(t *turns.Turns[*waiter], batch []*waiter) {
	var items []*item
	t.Drain(batch, func(batch []*waiter) {
		items = items[:0]
		for _, w := range batch {
			items = append(items, &w.item)
		}
		// Every caller in the batch waits at most Timeout from when it
		// queued: the batch's deadline is its oldest caller's.
		err := c.l.decideItems(context.Background(), items, batch[0].queued.Add(c.l.b.timeout))
		for _, w := range batch {
			if w.ok {
				c.l.count(w.d)
			}
			w.err = err
			w.done <- struct{}{} // the last touch: its caller may reuse w
		}
		clear(items)
	})
}
