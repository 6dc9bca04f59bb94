package cache

import (
	"math"
	"sync/atomic"
	"time"
)

// entry is what the cache holds for a key.
type entry[V any] struct {
	val V
	// quiet (unix ns): before it a hit needs no more thought than a
	// lookup: fresh, not negative, and too far from expiry for XFetch to
	// draw an early refresh (see seal); 0 for a negative entry. Next to
	// val: a hit reads these two.
	quiet    int64
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

// slot is what the L1 holds for a key: the entry, and next to it copies
// of the two fields a quiet hit reads (quiet and val, final once the
// entry is sealed), kept in otter's node: a quiet hit reads no more
// memory than the node, where reading the entry cost a cache miss of its
// own in a large L1. The copies cost 8 bytes + the size of V (a string or
// slice header, a pointer: the data is shared) per entry.
type slot[V any] struct {
	quiet int64
	val   V
	e     *entry[V]
}

// slotOf is e's slot.
func slotOf[V any](e *entry[V]) slot[V] {
	return slot[V]{quiet: e.quiet, val: e.val, e: e}
}

// relisted is a copy of e fresh in the L1 for l1TTL more (at most until
// the value's own expiry).
func (c *Cache[V]) relisted(e *entry[V], now int64, l1TTL time.Duration) *entry[V] {
	return c.seal(&entry[V]{val: e.val, negative: e.negative, fresh: min(e.recFresh, now+int64(l1TTL)), recFresh: e.recFresh, hard: e.hard, loadNS: e.loadNS})
}

// seal sets e.quiet from its other fields, once they are final: before
// min(fresh, the first instant xfetch could draw an early refresh, see
// drawWindow) a hit is just the value.
func (c *Cache[V]) seal(e *entry[V]) *entry[V] {
	switch {
	case e.negative:
		e.quiet = 0
	case c.o.NoEarlyRefresh || e.loadNS <= 0:
		e.quiet = e.fresh
	default:
		e.quiet = min(e.fresh, e.recFresh-c.drawWindow(e))
	}
	return e
}

// drawWindow is how long before e's expiry (recFresh) xfetch may draw an
// early refresh: never earlier than EarlyWindow before it; and -ln(r)
// above 30 has probability e^-30, so not before 30 x loadNS x Beta
// either (truncated to whole ns: for a whole number of ns left, "left >
// the truncation" is "left > the bound"). xfetch and seal (the quiet
// hits) both use it, so a quiet hit never skips a draw.
func (c *Cache[V]) drawWindow(e *entry[V]) int64 {
	return int64(min(float64(c.early), 30*float64(e.loadNS)*c.o.Beta))
}

// hold puts e in the L1 as key's copy; while the Store's invalidation
// feed is lost (Tracker) the copy is fresh for gapL1TTL at most. The
// caller holds c.mu.
func (c *Cache[V]) hold(key string, e *entry[V]) {
	if c.untracked {
		e = c.relisted(e, c.now(), c.gapL1TTL)
	}
	c.inline.Store(true)
	c.l1.Set(key, slotOf(e))
	c.inline.Store(false)
}

// now is the current time in Unix ns. Without a Clock it reads only the
// monotonic clock (time.Since), about half the cost of time.Now on the
// hit path.
func (c *Cache[V]) now() int64 {
	if c.o.Clock == nil {
		return c.baseNS + int64(time.Since(c.base))
	}
	return c.o.Clock.Now().UnixNano()
}

// use is what an L1 lookup allows.
type use int

const (
	useNone  use = iota // a miss: absent, or past serving
	useFresh            // fresh: serve it (a negative entry answers ErrNotFound)
	useStale            // past TTL within StaleFor: serve it while one refresh runs
)

// peek looks key up in the L1: the entry, the time of the lookup and
// what the entry allows. It is the whole of a hit's work (Get does the
// same inline). (otter's GetEntry would hand over the time it read for
// its own expiry check, but building its Entry costs more than reading
// the clock again; and the L1's clock is coarse, see New.)
func (c *Cache[V]) peek(key string) (*entry[V], int64, use) {
	s, _ := c.l1.GetIfPresent(key)
	if s.e == nil {
		return nil, 0, useNone
	}
	now := c.now()
	e, u := s.e.allows(now)
	return e, now, u
}

// allows is what e (found in the L1) allows at now: e itself, or nil
// when it is past serving.
func (e *entry[V]) allows(now int64) (*entry[V], use) {
	switch {
	case now < e.fresh:
		return e, useFresh
	case now < e.hard && !e.negative:
		return e, useStale
	}
	return nil, useNone
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
	if e.recFresh-now > c.drawWindow(e) {
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
	return c.seal(e)
}

// negativeEntry is a remembered ErrNotFound, for NegativeTTL.
func (c *Cache[V]) negativeEntry(now int64) *entry[V] {
	until := now + int64(c.o.NegativeTTL)
	return &entry[V]{negative: true, fresh: until, recFresh: until, hard: until}
}
