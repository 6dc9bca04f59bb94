package cache

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/pause"
)

// pending holds the invalidations the Store could not take (a Set or
// Delete whose Store write or message failed, or a Namespace.Invalidate
// whose INCR failed) until a background flusher delivers them: each key is
// deleted from the Store and its message published; each namespace is
// incremented and its message published. Past MaxPendingInvalidations the
// keys collapse into one "flush every L1" (see Options).
type pending struct {
	mu       sync.Mutex
	keys     map[string]struct{}
	names    map[string]struct{}
	overflow bool         // keys were dropped past the bound: deliver a flush-all
	running  bool         // a flusher goroutine is on it
	n        atomic.Int64 // len(keys) + len(names): read without mu
}

// pend keeps an invalidation of key (or, with ns, of namespace name) for
// later delivery and makes sure a flusher runs.
func (c *Cache[V]) pend(name string, ns bool) {
	p := &c.kept
	p.mu.Lock()
	if ns {
		if p.names == nil {
			p.names = map[string]struct{}{}
		}
		p.names[name] = struct{}{}
	} else if !p.overflow {
		if len(p.keys)+len(p.names) >= c.o.MaxPendingInvalidations {
			p.overflow = true
			p.keys = nil
			c.st.pendingOverflows.Add(1)
			c.o.Logger.Error("cache: too many invalidations pending while the Store is unreachable; every instance's L1 will be flushed and every namespace of this instance bumped when it answers again (plain keys set or deleted meanwhile keep their Store copy until its TTL)",
				slog.Int("max_pending_invalidations", c.o.MaxPendingInvalidations))
		} else {
			if p.keys == nil {
				p.keys = map[string]struct{}{}
			}
			p.keys[name] = struct{}{}
		}
	}
	p.n.Store(int64(len(p.keys) + len(p.names)))
	start := !p.running
	if start {
		select {
		case <-c.closed:
			start = false // closed: kept for Stats, delivered by no one
		default:
			p.running = true
			c.flushers.Add(1) // under p.mu, which Close takes before Wait
		}
	}
	p.mu.Unlock()
	if start {
		go c.flushPending()
	}
}

// unpend forgets a pending invalidation of key that a later Set or Delete
// delivered itself.
func (c *Cache[V]) unpend(key string) {
	p := &c.kept
	p.mu.Lock()
	if _, ok := p.keys[key]; ok {
		delete(p.keys, key)
		p.n.Store(int64(len(p.keys) + len(p.names)))
	}
	p.mu.Unlock()
}

// flushPending delivers the pending invalidations, trying again with a
// growing wait (up to 1s) while the Store fails, until none is left or
// the cache is closed.
func (c *Cache[V]) flushPending() {
	defer c.flushers.Done()
	g := pause.Growing{Min: c.o.PollInterval, Max: max(c.o.PollInterval, time.Second)}
	for g.Wait(c.closed) {
		if c.deliverPending(context.Background()) {
			return
		}
	}
}

// deliverPending takes the pending invalidations and delivers them; what
// fails goes back. It reports true when nothing is left (and the flusher
// stops).
func (c *Cache[V]) deliverPending(ctx context.Context) bool {
	p := &c.kept
	p.mu.Lock()
	keys, names, overflow := p.keys, p.names, p.overflow
	p.keys, p.names, p.overflow = nil, nil, false
	p.mu.Unlock()
	var failed []string
	var failedNames []string
	failedOverflow := false
	ok := true
	if overflow {
		// Every namespace this instance knows is retired (its keys with it),
		// then every L1 is flushed.
		c.versions.Range(func(k, _ any) bool {
			if names == nil {
				names = map[string]struct{}{}
			}
			names[k.(string)] = struct{}{}
			return true
		})
	}
	for name := range names {
		if !ok || c.l2(ctx, func(ctx context.Context) error { _, err := c.store.Incr(ctx, name); return err }) != nil ||
			c.publish(ctx, "n", name) != nil {
			ok = false
			failedNames = append(failedNames, name)
			continue
		}
		c.versions.Delete(name)
	}
	if overflow {
		if !ok || c.publish(ctx, "a", "") != nil {
			ok = false
			failedOverflow = true
		}
	}
	batch := make([]string, 0, 256)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if !ok || c.l2(ctx, func(ctx context.Context) error { return c.store.Delete(ctx, batch...) }) != nil {
			ok = false
			failed = append(failed, batch...)
			batch = batch[:0]
			return
		}
		for i, k := range batch {
			if c.publish(ctx, "k", k) != nil {
				ok = false
				failed = append(failed, batch[i:]...)
				break
			}
			c.st.pendingDelivered.Add(1)
		}
		batch = batch[:0]
	}
	for k := range keys {
		batch = append(batch, k)
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	p.mu.Lock()
	defer p.mu.Unlock()
	if failedOverflow {
		p.overflow = true
		p.keys = nil
	}
	for _, n := range failedNames {
		if p.names == nil {
			p.names = map[string]struct{}{}
		}
		p.names[n] = struct{}{}
	}
	if !p.overflow {
		for _, k := range failed {
			if len(p.keys)+len(p.names) >= c.o.MaxPendingInvalidations {
				p.overflow = true
				p.keys = nil
				c.st.pendingOverflows.Add(1)
				break
			}
			if p.keys == nil {
				p.keys = map[string]struct{}{}
			}
			p.keys[k] = struct{}{}
		}
	}
	p.n.Store(int64(len(p.keys) + len(p.names)))
	if len(p.keys)+len(p.names) == 0 && !p.overflow {
		p.running = false
		return true
	}
	return false
}

// flushL1 drops every L1 copy and namespace version of this instance
// (loads in flight keep their result out of the L1).
func (c *Cache[V]) flushL1() { c.flushL1Then(nil) }

// flushL1Then is flushL1 that also runs under (when not nil) while it
// holds c.mu for the flush.
func (c *Cache[V]) flushL1Then(under func()) {
	c.mu.Lock()
	if under != nil {
		under()
	}
	for _, cl := range c.calls {
		cl.superseded = true
	}
	c.l1.InvalidateAll()
	c.mu.Unlock()
	c.versions.Range(func(name, _ any) bool {
		c.versions.Delete(name)
		return true
	})
}
