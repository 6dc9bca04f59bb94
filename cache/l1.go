package cache

import (
	"math"
	"sync/atomic"
	"time"
)

// entry is what the cache holds for a key.
type entry[V any] struct {
	val      V
	negative bool
	fresh    int64 // unix ns: fresh in L1 until (at most recFresh)
	recFresh int64 // unix ns: the value's own fresh-until
	hard     int64 // unix ns: servable (stale) until
	loadNS   int64 // how long the load took (XFetch's delta)
	// retryAt holds back refreshes of this entry (unix ns) after one found
	// another instance refreshing, so hits do not ask the Store again on
	// every call meanwhile.
	retryAt atomic.Int64
}

// relisted is a copy of e fresh in the L1 for l1TTL more (at most until
// the value's own expiry).
func (e *entry[V]) relisted(now int64, l1TTL time.Duration) *entry[V] {
	return &entry[V]{val: e.val, negative: e.negative, fresh: min(e.recFresh, now+int64(l1TTL)), recFresh: e.recFresh, hard: e.hard, loadNS: e.loadNS}
}

// hold puts e in the L1 as key's copy; while the Store's invalidation
// feed is lost (Tracker) the copy is fresh for gapL1TTL at most. The
// caller holds c.mu.
func (c *Cache[V]) hold(key string, e *entry[V]) {
	if c.untracked {
		e = e.relisted(c.now(), c.gapL1TTL)
	}
	c.l1.Set(key, e)
}

// now is the current time in Unix ns. Without a Clock it reads only the
// monotonic clock (time.Since), about half the cost of time.Now on the
// hit path.
func (c *Cache[V]) now() int64 {
	if c.o.Clock != nil {
		return c.o.Clock.Now().UnixNano()
	}
	return c.base.UnixNano() + int64(time.Since(c.base))
}

// use is what an L1 lookup allows.
type use int

const (
	useNone  use = iota // a miss: absent, or past serving
	useFresh            // fresh: serve it (a negative entry answers ErrNotFound)
	useStale            // past TTL within StaleFor: serve it while one refresh runs
)

// peek looks key up in the L1: the entry, the time of the lookup and
// what the entry allows. It is the whole of a hit's work.
func (c *Cache[V]) peek(key string) (*entry[V], int64, use) {
	ent, ok := c.l1.GetEntry(key)
	if !ok {
		return nil, 0, useNone
	}
	e := ent.Value
	// otter read the clock for its own expiry check: with the default
	// clock its snapshot is this lookup's now, one clock read saved.
	now := ent.SnapshotAtNano
	if c.o.Clock != nil || now == 0 {
		now = c.now()
	}
	switch {
	case now < e.fresh:
		return e, now, useFresh
	case now < e.hard && !e.negative:
		return e, now, useStale
	}
	return nil, now, useNone
}

// refresh says whether serving e (as u allows, at now) starts a
// background refresh, and of which kind: a stale copy is refreshed, a
// fresh one early when XFetch draws it; neither while retryAt holds
// refreshes back.
func (c *Cache[V]) refresh(e *entry[V], now int64, u use) (loadMode, bool) {
	if u == useStale {
		return modeStale, now >= e.retryAt.Load()
	}
	return modeEarly, !c.o.NoEarlyRefresh && !e.negative && c.xfetch(now, e) && now >= e.retryAt.Load()
}

// xfetch reports whether a hit should refresh early: now - delta*beta*ln(r)
// >= expiry, with -ln(r) exponentially distributed.
func (c *Cache[V]) xfetch(now int64, e *entry[V]) bool {
	if e.loadNS <= 0 {
		return false
	}
	// Never earlier than EarlyWindow before expiry; and -ln(r) above 30
	// has probability e^-30: far from expiry, skip the draw.
	if left := e.recFresh - now; left > c.early || float64(left) > 30*float64(e.loadNS)*c.o.Beta {
		return false
	}
	r := c.o.random()
	if r <= 0 {
		return true
	}
	return float64(now)-float64(e.loadNS)*c.o.Beta*math.Log(r) >= float64(e.recFresh)
}

// newEntry is a value loaded (or Set) at now, fresh for TTL less jitter;
// with a Store its L1 copy is fresh for at most L1TTL.
func (c *Cache[V]) newEntry(v V, now int64) *entry[V] {
	ttl := c.o.TTL
	if c.o.Jitter > 0 {
		ttl -= time.Duration(float64(ttl) * c.o.Jitter * c.o.random())
	}
	fresh := now + int64(ttl)
	e := &entry[V]{val: v, fresh: fresh, recFresh: fresh, hard: fresh + int64(c.o.StaleFor)}
	if c.store != nil {
		e.fresh = min(fresh, now+int64(c.o.L1TTL))
	}
	return e
}

// negativeEntry is a remembered ErrNotFound, for NegativeTTL.
func (c *Cache[V]) negativeEntry(now int64) *entry[V] {
	until := now + int64(c.o.NegativeTTL)
	return &entry[V]{negative: true, fresh: until, recFresh: until, hard: until}
}
