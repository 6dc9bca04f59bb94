package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/internal/jsonflat"
	"github.com/scalekit-go/scalekit/internal/pause"
	"github.com/scalekit-go/scalekit/internal/stripe"
)

// ErrNotFound is what a loader returns (possibly wrapped) for a key that
// does not exist; the cache remembers it for NegativeTTL and Get returns it.
var ErrNotFound = errors.New("cache: not found")

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = errors.New("cache: invalid")

// PanicError is what every waiter of a load gets when the loader panics:
// Key is the key loaded (for a BatchLoader call of several keys, the
// batch as fmt.Sprint prints it), Value what the loader panicked with and
// Stack the loader's stack.
type PanicError struct {
	Key   string
	Value any
	Stack []byte
}

// Error reports the panic.
func (e *PanicError) Error() string {
	return fmt.Sprintf("cache: loader for %q panicked: %v", e.Key, e.Value)
}

// Loader loads a key's value on a miss. It returns ErrNotFound for a key
// that does not exist.
type Loader[V any] func(ctx context.Context, key string) (V, error)

// Cache is a stampede-safe cache-aside over an in-process, size-bounded L1
// and an optional shared L2 Store: concurrent misses of a key run its
// loader once per fleet, expired values are served stale while one
// refresh runs, and hot keys are refreshed early by about one caller. It
// is safe for concurrent use.
type Cache[V any] struct {
	o Options
	// with Options.Clock nil: now = baseNS + time.Since(base), base's Unix ns
	base   time.Time
	baseNS int64
	early  int64 // EarlyWindow x TTL, ns: no early refresh before recFresh - early
	l1     *otter.Cache[string, slot[V]]
	// l1Clock is the L1's clock (see New), stopped by Close.
	l1Clock *otter.CoarseClock
	// inline is set while hold writes the L1 (under mu): the drain
	// that write asks for runs in the writer's goroutine (see New).
	inline *atomic.Bool
	sem    chan struct{}
	store  Store
	rn     LeaseRenewer // store's, when it renews leases
	one    OneGetter    // store's, when it reads one key by itself
	// flat decodes Store values without encoding/json's scanner and
	// reflection walk: set when the Codec is JSON and V is flat (a basic
	// type, or a struct of basic fields; see jsonflat.For). Values it
	// declines go to the Codec.
	flat   *jsonflat.Plan
	tracer Tracer // Options.Tracer; nil: none
	br     *breaker.Breaker
	id     string // this instance, in invalidation messages
	// tracked: the Store's subscription carries the server's own
	// invalidations (Tracker), so Set and Delete publish none and L1
	// copies are made fresh for o.L1TTL (TTL by default); gapL1TTL is the
	// L1TTL a copy kept while the feed is lost gets.
	tracked  bool
	gapL1TTL time.Duration

	mu    sync.Mutex
	calls map[string]*call[V]
	// untracked: the Store's invalidation feed is lost (Tracker): copies
	// put in the L1 get gapL1TTL.
	untracked bool

	versions sync.Map // namespace name -> *nsVersion

	kept     pending
	flushers sync.WaitGroup

	subMu   sync.Mutex
	stopSub func()
	closed  chan struct{}
	subDone chan struct{}

	st stats
}

type stats struct {
	hits                                                                                                    stripe.Counter // striped: one shared atomic would bounce between cores on every hit
	misses, negativeHits, staleServed, staleRefreshes, earlyRefreshes, loads, loadErrors, coalesced, panics atomic.Uint64
	l2Hits, l2Misses, l2Errors, l2Skipped, leasesWon, leaseWaits, leaseBusy, leaseTimeouts, fillsRefused    atomic.Uint64
	codecErrors, invalidations, resubscribes, pendingDelivered, pendingOverflows, feedLosses                atomic.Uint64
}

// l1ClockTick is the resolution of the L1's clock (see New).
const l1ClockTick = time.Second

// New returns a Cache, or an error naming the bad option. With a Store it
// subscribes to the Store's invalidation messages; Close stops that.
func New[V any](o Options) (*Cache[V], error) {
	defaultL1TTL := o.L1TTL == 0
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Breaker == nil {
		if o.Breaker, err = breaker.New(breaker.Options{Name: "cache-l2", ConsecutiveFailures: 3, OpenTimeout: time.Second,
			OpenTimeoutMultiplier: 2, MaxOpenTimeout: 10 * time.Second, Logger: o.Logger}); err != nil {
			return nil, err
		}
	}
	inline := new(atomic.Bool)
	l1Clock := otter.NewCoarseClock(l1ClockTick)
	l1, err := otter.New(&otter.Options[string, slot[V]]{
		MaximumSize: o.MaxEntries,
		// The L1 reads a coarse clock: its own expiry only frees the
		// memory of entries the cache no longer serves, and peek decides
		// with the precise time, so a hit reads the clock once (peek's
		// read), not twice. A coarse clock lags (up to a tick); an
		// entry's deadline is hard + l1ClockTick on otter's clock (from
		// the time otter read for the write, SnapshotAtNano), so it
		// expires in the L1 one to two ticks after it stops being
		// servable (hard), never before, and is removed at otter's next
		// 1s sweep or read.
		Clock: l1Clock,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, slot[V]]) time.Duration {
			now := e.SnapshotAtNano
			if o.Clock != nil {
				// hard is on the Clock's time: the time left is read
				// from it.
				now = o.Clock.Now().UnixNano()
			}
			return time.Duration(e.Value.e.hard-now) + l1ClockTick
		}),
		// The maintenance a write of the cache asks for (applying writes
		// to the eviction policy, evicting) runs in the writing goroutine
		// (see hold), not in a new goroutine each time: a goroutine per
		// drain costs more than the drain (its stack grows through the
		// policy every time), and a full L1 drains on every refill. The
		// drains reads ask for stay in their own goroutine: reads are
		// many, and a busy drain lets otter's lossy read buffer drop
		// them. otter takes the drain's lock with TryLock, so no caller
		// waits on another's drain; the cache has no OnDeletion and no
		// Compute function, the callbacks a synchronous executor could
		// deadlock.
		Executor: func(fn func()) {
			if inline.Load() {
				fn()
				return
			}
			go fn()
		},
	})
	if err != nil {
		l1Clock.Stop()
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c := &Cache[V]{o: o, inline: inline, l1Clock: l1Clock, tracer: o.Tracer, early: int64(o.EarlyWindow * float64(o.TTL)), l1: l1, calls: map[string]*call[V]{}, store: o.Store, br: o.Breaker,
		id: strconv.FormatUint(rand.Uint64(), 36), closed: make(chan struct{})}
	c.base = time.Now()
	c.baseNS = c.base.UnixNano()
	if o.MaxConcurrentLoads > 0 {
		c.sem = make(chan struct{}, o.MaxConcurrentLoads)
	}
	c.rn, _ = o.Store.(LeaseRenewer)
	c.one, _ = o.Store.(OneGetter)
	switch o.Codec.(type) {
	case JSON, *JSON:
		c.flat = jsonflat.For(reflect.TypeFor[V]())
	}
	c.gapL1TTL = o.L1TTL
	if t, ok := o.Store.(Tracker); ok && t.Tracking() {
		c.tracked = true
		if defaultL1TTL {
			// The server invalidates every copy, and the L1 is dropped
			// whenever its feed is lost: trust a copy while it is fresh.
			c.o.L1TTL = max(c.o.L1TTL, c.o.TTL)
		}
	}
	if c.store != nil {
		if stop, err := c.subscribe(); err == nil {
			c.stopSub = stop
		} else {
			c.untracked = c.tracked
			o.Logger.Warn("cache: cannot subscribe to invalidations; retrying in the background (L1 copies are trusted for L1TTL meanwhile)", slog.Any("error", err))
			c.subDone = make(chan struct{})
			go c.resubscribe()
		}
	}
	return c, nil
}

// resubscribe retries the invalidation subscription until it holds or the
// cache is closed.
func (c *Cache[V]) resubscribe() {
	defer close(c.subDone)
	g := pause.Growing{Min: time.Second, Max: 30 * time.Second}
	for g.Wait(c.closed) {
		if stop, err := c.subscribe(); err == nil {
			c.subMu.Lock()
			select {
			case <-c.closed:
				stop()
			default:
				c.stopSub = stop
			}
			c.subMu.Unlock()
			if c.tracked {
				c.onTrackingBack()
			}
			return
		}
	}
}

// Get returns key's value: from the L1 when fresh (a hit XFetch draws
// refreshes it early in the background); stale (while one background
// refresh runs) within StaleFor after expiry; otherwise from the Store,
// or from loader, which runs once however many callers (and, with a
// Store, instances) miss the key at once; a miss that finds a stale
// value in the Store gets it at once while the refresh runs. A caller
// whose ctx ends returns ctx.Err() at once and the load goes on for the
// others (the first caller of a miss reads the Store itself, bounded by
// the Store's timeout, before it can leave). Loader errors are returned
// and not cached, except ErrNotFound, remembered for NegativeTTL. A
// loader panic is a *PanicError (with the stack) for every waiter. Get
// is the one-key case of GetMany.
func (c *Cache[V]) Get(ctx context.Context, key string, loader Loader[V]) (V, error) {
	// peek, inline: the common hit is this lookup, one clock read and
	// one counter.
	s, _ := c.l1.GetIfPresent(key)
	var e *entry[V]
	var now int64
	u := useNone
	if s.e != nil {
		now = c.now()
		if now < s.quiet && c.tracer == nil {
			// Fresh, and too far from expiry for XFetch.
			c.st.hits.Add(1)
			return s.val, nil
		}
		e, u = s.e.allows(now)
	}
	v, _, err := c.got(ctx, key, key, loader, e, now, u)
	return v, err
}

// Info is what the cache knows of the value GetInfo answered with: the
// instants an HTTP response built from it can state (package httpcache
// turns them into Cache-Control, Expires and Age).
type Info struct {
	// FreshUntil is the value's own fresh-until: TTL (less jitter) after
	// it was loaded or Set, wherever it was loaded (this instance, another
	// one through the Store). Past it the value is stale.
	FreshUntil time.Time
	// StaleUntil is when the value stops being servable at all:
	// FreshUntil + StaleFor (FreshUntil with NoStale, and for a
	// remembered ErrNotFound).
	StaleUntil time.Time
}

// info is e's Info; zero for no entry.
func (e *entry[V]) info() Info {
	if e == nil {
		return Info{}
	}
	return Info{FreshUntil: time.Unix(0, e.recFresh), StaleUntil: time.Unix(0, e.hard)}
}

// GetInfo is Get that also returns the answer's Info: when the value
// stops being fresh and servable, so a response built from it can say
// exactly how long it may be cached. A remembered ErrNotFound has the
// Info of the negative entry (cacheable as a 404 for NegativeTTL); any
// other error has the zero Info. It costs what Get costs.
func (c *Cache[V]) GetInfo(ctx context.Context, key string, loader Loader[V]) (V, Info, error) {
	v, e, err := c.get(ctx, key, key, loader)
	return v, e.info(), err
}

// get is Get for the cache key key, loaded as id (a namespace's keys are
// versioned; its loader sees the plain id), with the entry it answered
// from (nil when there is none).
func (c *Cache[V]) get(ctx context.Context, key, id string, load Loader[V]) (V, *entry[V], error) {
	e, now, u := c.peek(key)
	return c.got(ctx, key, id, load, e, now, u)
}

// got is get once the L1 was looked up: e, now and u are peek's answer.
func (c *Cache[V]) got(ctx context.Context, key, id string, load Loader[V], e *entry[V], now int64, u use) (V, *entry[V], error) {
	if u != useNone {
		mode, ok := c.refresh(e, now, u)
		if ok {
			c.refreshOne(ctx, mode, key, id, e, load)
		}
		if c.tracer != nil {
			c.traceHit(ctx, u, mode, ok)
		}
		v, err := c.serve(e, u)
		return v, e, err
	}
	c.st.misses.Add(1)
	if c.tracer != nil {
		ctx = c.tracer.TraceLoadStart(ctx, TraceLoadStartData{Keys: []string{id}})
	}
	cl, started := c.fetchOne(ctx, key, id, load)
	select {
	case <-cl.done: // the common L2 hit: fetchOne settled it already
	default:
		select {
		case <-cl.done:
		case <-ctx.Done():
			if c.tracer != nil {
				c.tracer.TraceLoadEnd(ctx, TraceLoadEndData{Keys: 1, Joined: 1 - started, Err: ctx.Err()})
			}
			var zero V
			return zero, nil, ctx.Err()
		}
	}
	var val V
	err := cl.err
	if err == nil {
		val, err = c.answer(cl.e)
	}
	if c.tracer != nil {
		d := TraceLoadEndData{Keys: 1, Joined: 1 - started, Err: err}
		d.count(cl.src, cl.waited)
		c.tracer.TraceLoadEnd(ctx, d)
	}
	if cl.err != nil {
		return val, nil, err
	}
	return val, cl.e, err
}

// traceHit tells the Tracer of an L1 answer to a Get: u how it was used,
// mode and refreshed the refresh it started, if any.
func (c *Cache[V]) traceHit(ctx context.Context, u use, mode loadMode, refreshed bool) {
	d := TraceHitData{Keys: 1}
	if u == useStale {
		d.Stale = 1
	}
	if refreshed {
		if mode == modeEarly {
			d.EarlyRefreshes = 1
		} else {
			d.StaleRefreshes = 1
		}
	}
	c.tracer.TraceHit(ctx, d)
}

// refreshOne starts Get's background refresh of key's L1 copy e.
func (c *Cache[V]) refreshOne(ctx context.Context, mode loadMode, key, id string, e *entry[V], load Loader[V]) {
	c.refreshAll(ctx, mode, []string{key}, []string{id}, []*entry[V]{e}, loader[V]{one: load})
}

// refreshAll starts the background refresh of the L1 copies cur of keys
// and counts the refreshes it started.
func (c *Cache[V]) refreshAll(ctx context.Context, mode loadMode, keys, ids []string, cur []*entry[V], load loader[V]) {
	_, started := c.fetch(ctx, mode, keys, ids, cur, load)
	if mode == modeEarly {
		c.st.earlyRefreshes.Add(uint64(started))
	} else {
		c.st.staleRefreshes.Add(uint64(started))
	}
}

// serve answers a caller with an L1 entry, as u allows, and counts it.
func (c *Cache[V]) serve(e *entry[V], u use) (V, error) {
	if u == useStale {
		c.st.staleServed.Add(1)
		return e.val, nil
	}
	if e.negative {
		return c.answer(e)
	}
	c.st.hits.Add(1)
	return e.val, nil
}

func (c *Cache[V]) answer(e *entry[V]) (V, error) {
	if e.negative {
		c.st.negativeHits.Add(1)
		var zero V
		return zero, ErrNotFound
	}
	return e.val, nil
}

// BatchLoader loads many keys in one call (one SELECT ... WHERE id =
// ANY($1)); a key missing from the result does not exist (it is
// remembered as ErrNotFound for NegativeTTL), and so does every key when
// it returns ErrNotFound.
type BatchLoader[V any] func(ctx context.Context, keys []string) (map[string]V, error)

// GetMany returns the values of keys, keyed by key; keys that do not exist
// are absent. Each key goes through the same protocol as Get, over the
// whole set at once: fresh L1 values are served as they are (a hit
// XFetch draws is refreshed early in the background), stale ones at once
// while one background batch refreshes them; the rest are read from the
// Store in one round trip (a stale Store value is served at once while
// its refresh runs, as Get does); what is still missing is loaded with
// one batch call, under fill leases so that other instances missing the
// same keys wait for this fill instead of loading them again (keys whose
// lease another instance holds are waited for, then loaded in a second
// batch call if no fill lands within LoadTimeout + 2 x LeaseTTL). Keys
// another Get or GetMany of this instance is loading already are joined,
// not loaded twice. The error is that of the first key, in the order of
// keys, whose load failed (a panic is a *PanicError with the stack); the
// other keys' values are returned with it. A caller whose ctx ends gets what is
// ready and ctx.Err().
func (c *Cache[V]) GetMany(ctx context.Context, keys []string, batch BatchLoader[V]) (map[string]V, error) {
	res := make(map[string]V, len(keys))
	err := c.getMany(ctx, keys, keys, batch, manyOut[V]{m: res})
	return res, err
}

// GetManyInto is GetMany answering into slices the caller owns instead
// of a new map: vals[i] is keys[i]'s value and found[i] reports whether
// it has one (false, with the zero value, for a key that does not exist,
// whose load failed or that was not ready when ctx ended). found may be
// nil when the zero value tells enough (a pointer V, say). vals and a
// non-nil found must be at least len(keys) long (else it returns an error
// wrapping ErrInvalid and loads nothing); their first len(keys) elements
// are overwritten, the rest untouched.
// The protocol, the loads and the error are GetMany's. Building GetMany's
// map costs more than reading the keys from the L1: with slices reused
// across calls, a GetManyInto whose keys are all fresh in the L1
// allocates nothing and costs less than a Get per key.
func (c *Cache[V]) GetManyInto(ctx context.Context, keys []string, vals []V, found []bool, batch BatchLoader[V]) error {
	out, err := intoOut(len(keys), vals, found)
	if err != nil {
		return err
	}
	return c.getMany(ctx, keys, keys, batch, out)
}

// manyOut is where getMany answers: a map keyed by id (GetMany), or
// slices aligned with the keys (GetManyInto).
type manyOut[V any] struct {
	m     map[string]V
	vals  []V
	found []bool
}

// intoOut is GetManyInto's manyOut for n keys, cleared, or an error
// when vals or found is too short.
func intoOut[V any](n int, vals []V, found []bool) (manyOut[V], error) {
	switch {
	case len(vals) < n:
		return manyOut[V]{}, fmt.Errorf("%w: GetManyInto: %d keys but len(vals) is %d: vals must be at least as long as keys", ErrInvalid, n, len(vals))
	case found != nil && len(found) < n:
		return manyOut[V]{}, fmt.Errorf("%w: GetManyInto: %d keys but len(found) is %d: found must be nil or at least as long as keys", ErrInvalid, n, len(found))
	}
	vals = vals[:n]
	clear(vals)
	if found != nil {
		found = found[:n]
		clear(found)
	}
	return manyOut[V]{vals: vals, found: found}, nil
}

// put answers key i (id its id) with v.
func (o manyOut[V]) put(i int, id string, v V) {
	if o.m != nil {
		o.m[id] = v
		return
	}
	o.vals[i] = v
	if o.found != nil {
		o.found[i] = true
	}
}

// refreshes are the L1 copies one GetMany refreshes, of one kind.
type refreshes[V any] struct {
	keys, ids []string
	cur       []*entry[V]
}

func (c *Cache[V]) getMany(ctx context.Context, keys, ids []string, batch BatchLoader[V], res manyOut[V]) error {
	var miss []int
	var refresh [modeEarly + 1]refreshes[V]
	var hits uint64 // counted once for the batch
	var stale int
	// now is read once, at the first key the L1 holds: the L1 answers the
	// batch as of then (one clock read instead of one a key, which was a
	// quarter of a 100-key GetMany's time).
	var now int64
	for i, k := range keys {
		s, _ := c.l1.GetIfPresent(k)
		if s.e == nil {
			miss = append(miss, i)
			continue
		}
		if now == 0 {
			now = c.now()
		}
		if now < s.quiet { // Get's common hit; put, by hand
			hits++
			switch {
			case res.m != nil:
				res.m[ids[i]] = s.val
			case res.found != nil:
				res.vals[i], res.found[i] = s.val, true
			default:
				res.vals[i] = s.val
			}
			continue
		}
		e, u := s.e.allows(now)
		if u == useNone {
			miss = append(miss, i)
			continue
		}
		if u == useStale {
			stale++
		}
		if mode, ok := c.refresh(e, now, u); ok {
			r := &refresh[mode]
			r.keys, r.ids, r.cur = append(r.keys, k), append(r.ids, ids[i]), append(r.cur, e)
		}
		if u == useFresh && !e.negative {
			hits++
			res.put(i, ids[i], e.val)
		} else if v, err := c.serve(e, u); err == nil {
			res.put(i, ids[i], v)
		}
	}
	c.st.hits.Add(hits)
	for mode, r := range refresh {
		if len(r.keys) > 0 {
			c.refreshAll(ctx, loadMode(mode), r.keys, r.ids, r.cur, loader[V]{batch: batch})
		}
	}
	if c.tracer != nil && len(miss) < len(keys) {
		c.tracer.TraceHit(ctx, TraceHitData{Keys: len(keys) - len(miss), Stale: stale,
			EarlyRefreshes: len(refresh[modeEarly].keys), StaleRefreshes: len(refresh[modeStale].keys)})
	}
	if len(miss) == 0 {
		return nil
	}
	c.st.misses.Add(uint64(len(miss)))
	mids := pick(ids, miss)
	if c.tracer != nil {
		ctx = c.tracer.TraceLoadStart(ctx, TraceLoadStartData{Keys: mids})
	}
	calls, started := c.fetch(ctx, modeMiss, pick(keys, miss), mids, nil, loader[V]{batch: batch})
	var firstErr error
	if c.tracer != nil {
		defer func() {
			d := TraceLoadEndData{Keys: len(calls), Joined: len(calls) - started, Err: firstErr}
			for _, cl := range calls {
				select {
				case <-cl.done:
					d.count(cl.src, cl.waited)
				default:
				}
			}
			c.tracer.TraceLoadEnd(ctx, d)
		}()
	}
	for j, cl := range calls {
		select {
		case <-cl.done:
		case <-ctx.Done():
			firstErr = ctx.Err()
			return firstErr
		}
		switch {
		case cl.err != nil:
			if firstErr == nil {
				firstErr = cl.err
			}
		case cl.e.negative:
			c.st.negativeHits.Add(1)
		default:
			res.put(miss[j], mids[j], cl.e.val)
		}
	}
	return firstErr
}

// supersede marks a load of key in flight as overtaken by a Set or Delete:
// its result must not land in the L1.
func (c *Cache[V]) supersede(key string) {
	c.mu.Lock()
	if cl := c.calls[key]; cl != nil {
		cl.superseded = true
	}
	c.mu.Unlock()
}

// Set stores v for key as freshly loaded, in the L1 and the Store, voids
// any fill of key in flight anywhere (so a load that read the old value
// cannot write it back), and tells the other instances to drop their L1
// copy. The error is the Store's: the L1 has v regardless, and the
// invalidation is kept and delivered when the Store answers again (see
// Options.MaxPendingInvalidations).
func (c *Cache[V]) Set(ctx context.Context, key string, v V) error {
	now := c.now()
	e := c.newEntry(v, now)
	c.mu.Lock()
	if cl := c.calls[key]; cl != nil {
		cl.superseded = true
	}
	c.hold(key, e)
	c.mu.Unlock()
	if c.store == nil {
		return nil
	}
	data, err := c.encode(e)
	if err != nil {
		return fmt.Errorf("cache: Set %q: %w", key, err)
	}
	err = c.l2(ctx, func(ctx context.Context) error { return c.store.Set(ctx, key, data, ttlUntil(e.hard, now)) })
	c.delivered(ctx, key, err)
	if err != nil {
		return fmt.Errorf("cache: Set %q: the Store: %w", key, err)
	}
	return nil
}

// delivered publishes the invalidation of key after its Store write (err
// its outcome); when either failed, the invalidation is kept and
// delivered later (Options.MaxPendingInvalidations).
func (c *Cache[V]) delivered(ctx context.Context, key string, err error) {
	if err == nil && !c.tracked {
		err = c.publish(ctx, "k", key)
	}
	switch {
	case err != nil:
		c.pend(key, false)
	case c.kept.n.Load() > 0:
		c.unpend(key)
	}
}

// Delete drops key from the L1 and the Store, voids any fill of it in
// flight, and tells the other instances to drop their L1 copy; the next
// Get loads it. The error is the Store's; the invalidation is then kept
// and delivered when the Store answers again (see
// Options.MaxPendingInvalidations).
func (c *Cache[V]) Delete(ctx context.Context, key string) error {
	c.supersede(key)
	c.l1.Invalidate(key)
	if c.store == nil {
		return nil
	}
	err := c.l2(ctx, func(ctx context.Context) error { return c.store.Delete(ctx, key) })
	c.delivered(ctx, key, err)
	if err != nil {
		return fmt.Errorf("cache: Delete %q: the Store: %w", key, err)
	}
	return nil
}

// Close stops the cache's background goroutines: the invalidation
// subscription, the flusher of pending invalidations (Close tries once
// more to deliver what is pending, and logs what it could not), the
// L1's periodic expiry sweep and the L1's clock. It is idempotent. The
// cache keeps answering after Close, without invalidation messages.
func (c *Cache[V]) Close() error {
	c.subMu.Lock()
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	stop := c.stopSub
	c.stopSub = nil
	c.subMu.Unlock()
	if c.subDone != nil {
		<-c.subDone
	}
	if stop != nil {
		stop()
	}
	// A barrier: a flusher registers in c.flushers under kept.mu after
	// checking closed, so once the lock is free none is left to start.
	c.kept.mu.Lock()
	//lint:ignore SA2001 the empty critical section is the barrier
	c.kept.mu.Unlock()
	c.flushers.Wait()
	c.kept.mu.Lock()
	left := len(c.kept.keys)+len(c.kept.names) > 0 || c.kept.overflow
	c.kept.mu.Unlock()
	if left && !c.deliverPending(context.Background()) {
		c.o.Logger.Warn("cache: closed with invalidations the Store did not take; other instances may serve the old values until their TTL",
			slog.Int64("pending", c.kept.n.Load()))
	}
	c.l1.StopAllGoroutines()
	c.l1Clock.Stop()
	return nil
}

// Stats is a snapshot of the counters.
type Stats struct {
	// Hits are fresh L1 values served; Misses are Gets that had to wait
	// for the Store or a load; NegativeHits are remembered ErrNotFounds
	// served.
	Hits, Misses, NegativeHits uint64
	// StaleServed counts values served past their freshness while a
	// refresh runs.
	StaleServed uint64
	// EarlyRefreshes counts refreshes XFetch started before expiry;
	// StaleRefreshes those started by a stale read.
	EarlyRefreshes, StaleRefreshes uint64
	// Loads are loader calls (a GetMany batch counts once); LoadErrors
	// those that failed (not ErrNotFound); Panics those that panicked.
	Loads, LoadErrors, Panics uint64
	// Coalesced counts Gets and refreshes that joined a load in flight
	// instead of starting one.
	Coalesced uint64
	// L2Hits and L2Misses count keys looked up in the Store; L2Errors the
	// Store calls that failed and L2Skipped those the open circuit kept
	// from the Store.
	L2Hits, L2Misses, L2Errors, L2Skipped uint64
	// LeasesWon counts loads this instance did under a fill lease;
	// LeaseWaits the misses that waited for another instance's fill;
	// LeaseBusy the refreshes left to another instance; LeaseTimeouts the
	// waits that gave up on another instance's fill; FillsRefused the fills a Set,
	// Delete or expired lease voided.
	LeasesWon, LeaseWaits, LeaseBusy, LeaseTimeouts, FillsRefused uint64
	// CodecErrors counts values that could not be encoded or decoded;
	// Invalidations the messages from other instances applied.
	CodecErrors, Invalidations uint64
	// PendingInvalidations is the number of invalidations (keys and
	// namespaces) waiting for the Store to answer again; DelayedInvalidations
	// counts those delivered late; PendingOverflows the times
	// MaxPendingInvalidations was passed (the pending keys then collapse
	// into a flush of every L1 and a bump of every namespace).
	PendingInvalidations                   int
	DelayedInvalidations, PendingOverflows uint64
	// Resubscribes counts the times the invalidation subscription came
	// back after losing its connection (messages may have been lost
	// meanwhile): each dropped the whole L1. FeedLosses counts, with a
	// Tracker Store, the times the server's invalidation feed was lost:
	// each dropped the whole L1 too.
	Resubscribes, FeedLosses uint64
	// Circuit is the state of the breaker around the Store.
	Circuit breaker.State
	// Entries is the number of entries held now (estimated).
	Entries int
}

// Stats returns a snapshot.
func (c *Cache[V]) Stats() Stats {
	s := &c.st
	return Stats{Hits: s.hits.Load(), Misses: s.misses.Load(), NegativeHits: s.negativeHits.Load(), StaleServed: s.staleServed.Load(),
		EarlyRefreshes: s.earlyRefreshes.Load(), StaleRefreshes: s.staleRefreshes.Load(), Loads: s.loads.Load(), LoadErrors: s.loadErrors.Load(), Panics: s.panics.Load(),
		Coalesced: s.coalesced.Load(), L2Hits: s.l2Hits.Load(), L2Misses: s.l2Misses.Load(), L2Errors: s.l2Errors.Load(), L2Skipped: s.l2Skipped.Load(),
		LeasesWon: s.leasesWon.Load(), LeaseWaits: s.leaseWaits.Load(), LeaseBusy: s.leaseBusy.Load(), LeaseTimeouts: s.leaseTimeouts.Load(),
		FillsRefused: s.fillsRefused.Load(), CodecErrors: s.codecErrors.Load(), Invalidations: s.invalidations.Load(), Resubscribes: s.resubscribes.Load(), FeedLosses: s.feedLosses.Load(),
		PendingInvalidations: int(c.kept.n.Load()), DelayedInvalidations: s.pendingDelivered.Load(), PendingOverflows: s.pendingOverflows.Load(),
		Circuit: c.br.State(), Entries: c.l1.EstimatedSize()}
}
