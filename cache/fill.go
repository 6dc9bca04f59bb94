package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/scalekit-go/scalekit/internal/pause"
	"github.com/scalekit-go/scalekit/internal/renew"
)

// The fill protocol, written once for Get (one key) and GetMany (a set of
// keys): after the L1 (l1.go), the keys no load of this instance has in
// flight are claimed by one fill, which reads them from the Store in one
// batch, serves a miss a stale Store value at once, leases what is left
// in one batch, loads the won keys with one loader call (Get's Loader is
// the one-key case of a BatchLoader), fills the Store under the lease
// tokens and delivers; keys whose lease another instance holds are
// waited for (misses) or left to it (refreshes). Which keys take which
// step is data; every step is the same code for one key or many.

// loadMode is why a fill runs.
type loadMode int

const (
	modeMiss  loadMode = iota // callers wait for it
	modeStale                 // the L1 copy is past its L1 freshness: anything fresh will do
	modeEarly                 // XFetch: only a value newer than the current one will do
)

// call is one key's load in flight; every caller of the key waits on done.
type call[V any] struct {
	done       chan struct{}
	e          *entry[V]
	err        error
	delivered  bool // touched by the fill's goroutine only (and by its starter before it)
	superseded bool // a Set or Delete came during the load; under Cache.mu
	// src is where the answer came from and waited whether the fill
	// waited on another instance's lease first (for Options.Tracer): set
	// by the fill's goroutine before done is closed, read after.
	src    source
	waited bool
}

func (cl *call[V]) deliver(e *entry[V], err error, src source) {
	if cl.delivered {
		return
	}
	cl.e, cl.err, cl.src, cl.delivered = e, err, src, true
	close(cl.done)
}

// fill is one run of the protocol over the keys one Get or GetMany
// claimed for one reason (mode).
type fill[V any] struct {
	c     *Cache[V]
	load  loader[V]
	mode  loadMode
	keys  []string // cache keys
	ids   []string // what load sees: the keys, or a namespace's plain ids
	calls []*call[V]
	cur   []*entry[V] // refreshes: the L1 copies being refreshed; nil for misses
}

// loader is what a fill calls: Get's Loader (one key) or GetMany's
// BatchLoader, which the protocol calls in the batch shape.
type loader[V any] struct {
	one   Loader[V]
	batch BatchLoader[V]
}

// call calls the loader for ids: a key Get's Loader reports ErrNotFound
// for is absent from the result, as a BatchLoader reports it.
func (l loader[V]) call(ctx context.Context, ids []string) (map[string]V, error) {
	if l.one == nil {
		return l.batch(ctx, ids)
	}
	v, err := l.one(ctx, ids[0])
	if err != nil {
		return nil, err
	}
	return map[string]V{ids[0]: v}, nil
}

// fetch runs the protocol for keys (ids what load sees; cur, for a
// refresh, the L1 copies being replaced). Keys another load of this
// instance has in flight are joined (Stats.Coalesced), a refresh of a
// copy the L1 no longer holds is dropped, and the others are claimed by
// one fill. A miss reads the Store in the caller's goroutine
// first, so the common L2 hit needs no goroutine (the Store bounds the
// read); the rest runs in the background, with the caller's values but
// not its cancellation, bounded by fillWait + LoadTimeout. fetch returns
// each key's call (nil for a dropped refresh) and how many keys it
// claimed.
func (c *Cache[V]) fetch(ctx context.Context, mode loadMode, keys, ids []string, cur []*entry[V], load loader[V]) ([]*call[V], int) {
	calls := make([]*call[V], len(keys))
	var own []int // the positions claimed; nil while every key so far is
	c.mu.Lock()
	for i, k := range keys {
		cl := c.calls[k]
		switch {
		case cl != nil:
			c.st.coalesced.Add(1)
		case cur != nil && !c.holds(k, cur[i]):
			// The copy was replaced (a refresh just landed, a Set) or
			// dropped since the caller read it: nothing to refresh.
		default:
			calls[i] = &call[V]{done: make(chan struct{})}
			c.calls[k] = calls[i]
			if own != nil {
				own = append(own, i)
			}
			continue
		}
		if own == nil {
			own = make([]int, i, len(keys))
			for j := range own {
				own[j] = j
			}
		}
		calls[i] = cl
	}
	c.mu.Unlock()
	all := calls
	if own != nil {
		if len(own) == 0 {
			return all, 0
		}
		keys, ids, calls = pick(keys, own), pick(ids, own), pick(calls, own)
		if cur != nil {
			cur = pick(cur, own)
		}
	}
	ctx = detached(ctx)
	var todo []int
	var pre []*entry[V]
	var preErr error
	if c.store != nil && mode == modeMiss {
		// The common L2 hit is served here, without a fill or a goroutine.
		pre, preErr = c.storeGet(ctx, keys)
		if preErr == nil {
			now := c.now()
			for i, e := range pre {
				if e != nil && now < e.recFresh {
					c.settle(keys[i], calls[i], e, fromStore)
					continue
				}
				todo = append(todo, i)
			}
			if len(todo) == 0 {
				return all, len(keys)
			}
		}
	}
	f := &fill[V]{c: c, load: load, mode: mode, keys: keys, ids: ids, calls: calls, cur: cur}
	if todo == nil {
		todo = make([]int, len(keys))
		for i := range todo {
			todo[i] = i
		}
	}
	go f.run(ctx, todo, pre, preErr)
	return all, len(keys)
}

// fetchOne is fetch for Get's miss of one key (mode modeMiss), without
// the slices: key is joined if a load of it is in flight, else claimed;
// the Store is read in the caller's goroutine and a fresh value there
// ends the miss (the common L2 hit: no fill, no goroutine); anything
// else goes on as fetch's fill would, with the Store's answer. It
// returns key's call and 1 if it claimed the key (0: joined).
func (c *Cache[V]) fetchOne(ctx context.Context, key, id string, load Loader[V]) (*call[V], int) {
	c.mu.Lock()
	if cl := c.calls[key]; cl != nil {
		c.mu.Unlock()
		c.st.coalesced.Add(1)
		return cl, 0
	}
	cl := &call[V]{done: make(chan struct{})}
	c.calls[key] = cl
	c.mu.Unlock()
	ctx = detached(ctx)
	var pre []*entry[V]
	var preErr error
	if c.store != nil {
		e, now, err := c.storeGetOne(ctx, key)
		if err == nil && e != nil && now < e.recFresh {
			c.settle(key, cl, e, fromStore)
			return cl, 1
		}
		if pre, preErr = []*entry[V]{e}, err; err != nil {
			pre = nil
		}
	}
	f := &fill[V]{c: c, load: loader[V]{one: load}, mode: modeMiss, keys: []string{key}, ids: []string{id}, calls: []*call[V]{cl}}
	go f.run(ctx, []int{0}, pre, preErr)
	return cl, 1
}

// detached is ctx without its cancellation and deadline, for the part of
// a load that outlives its first caller; ctx itself when it has neither.
func detached(ctx context.Context) context.Context {
	if _, ok := ctx.Deadline(); !ok && ctx.Done() == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// run is the background part of a fill, for the keys at todo (pre and
// preErr: the Store read of every key fetch did, if it did one).
func (f *fill[V]) run(ctx context.Context, todo []int, pre []*entry[V], preErr error) {
	c := f.c
	ctx, cancel := context.WithTimeout(ctx, c.fillWait()+c.o.LoadTimeout)
	defer cancel()
	defer f.end()
	if c.store == nil {
		f.loadAndFill(ctx, todo, nil)
		return
	}
	won, tokens, held, failed := f.fromStore(ctx, todo, pre, preErr)
	f.loadAndFill(ctx, won, tokens) // first: other instances wait for these fills
	wait, noFill := f.held(held)
	f.loadAndFill(ctx, append(noFill, f.storeFailed(failed)...), nil)
	won, tokens, rest := f.waitFills(ctx, wait)
	f.loadAndFill(ctx, won, tokens)
	f.loadAndFill(ctx, rest, nil)
}

// end finishes the calls of the fill that nothing delivered (a bug or a
// panic of the protocol itself) with an error, and takes every call out
// of the in-flight map.
func (f *fill[V]) end() {
	for i, cl := range f.calls {
		var err error
		if !cl.delivered {
			err = fmt.Errorf("cache: the load of %q ended without a result", f.keys[i])
		}
		f.c.finish(f.keys[i], cl, nil, err, fromNone)
	}
}

// usable says whether a Store entry ends the fill of key i: a fresh one,
// and for an early refresh one newer than the copy being refreshed.
func (f *fill[V]) usable(i int, se *entry[V], now int64) bool {
	return se != nil && now < se.recFresh && (f.mode != modeEarly || se.recFresh > f.cur[i].recFresh)
}

// holds says whether the L1 holds e for key (under c.mu, where keep
// replaces entries).
func (c *Cache[V]) holds(key string, e *entry[V]) bool {
	got, ok := c.l1.GetIfPresent(key)
	return ok && got.e == e
}

// deliver ends key i's fill with e: into the L1, out to its callers.
func (f *fill[V]) deliver(i int, e *entry[V], src source) {
	f.c.settle(f.keys[i], f.calls[i], e, src)
}

// pick is the elements of from at idx.
func pick[T any](from []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = from[i]
	}
	return out
}

// read reads the keys at idx from the Store, aligned with idx.
func (f *fill[V]) read(ctx context.Context, idx []int) ([]*entry[V], error) {
	return f.c.storeGet(ctx, pick(f.keys, idx))
}

// fromStore is the Store's half of a fill for the keys at idx: it
// delivers what the Store has usable, serves a miss a stale Store value
// at once (its refresh goes on), and leases the rest in one round trip.
// It returns the keys whose lease this fill won (to load and fill under
// tokens), those whose lease another instance holds, and those the Store
// failed for.
func (f *fill[V]) fromStore(ctx context.Context, idx []int, pre []*entry[V], preErr error) (won []int, tokens []string, held, failed []int) {
	c := f.c
	var recs []*entry[V]
	err := preErr
	if pre != nil {
		recs = make([]*entry[V], len(idx))
		for j, i := range idx {
			recs[j] = pre[i]
		}
	} else if err == nil {
		recs, err = f.read(ctx, idx)
	}
	if err != nil {
		return nil, nil, nil, idx
	}
	now := c.now()
	var rest []int
	for j, i := range idx {
		se := recs[j]
		switch {
		case f.usable(i, se, now):
			f.deliver(i, se, fromStore)
			continue
		case se != nil && f.mode == modeMiss && now < se.hard && !se.negative:
			c.st.staleServed.Add(1)
			c.keep(f.keys[i], f.calls[i], se)
			f.calls[i].deliver(se, nil, fromStoreStale)
		}
		rest = append(rest, i)
	}
	if len(rest) == 0 {
		return nil, nil, nil, nil
	}
	toks, err := c.lease(ctx, pick(f.keys, rest))
	if err != nil {
		return nil, nil, nil, rest
	}
	won, tokens, held = f.recheck(ctx, rest, toks)
	return won, tokens, held, nil
}

// recheck closes the race between reading the Store and winning a lease:
// the previous holder may have filled in between. A key with a usable
// value there gives its lease back and takes the value. It returns the
// keys won (with their tokens) and those another instance holds.
func (f *fill[V]) recheck(ctx context.Context, idx []int, toks []string) (won []int, tokens []string, held []int) {
	c := f.c
	var got []int
	var gotToks []string
	for j, i := range idx {
		if toks[j] == "" {
			held = append(held, i)
			continue
		}
		got = append(got, i)
		gotToks = append(gotToks, toks[j])
	}
	if len(got) == 0 {
		return nil, nil, held
	}
	recs, err := f.read(ctx, got)
	now := c.now()
	for j, i := range got {
		if err == nil && f.usable(i, recs[j], now) {
			c.release(ctx, f.keys[i], gotToks[j])
			f.deliver(i, recs[j], fromStore)
			continue
		}
		won = append(won, i)
		tokens = append(tokens, gotToks[j])
	}
	c.st.leasesWon.Add(uint64(len(won)))
	return won, tokens, held
}

// held sorts the keys whose lease another instance holds. A miss waits
// for that instance's fill; a refresh (or a miss already served a stale
// Store value) leaves the key to it: the copy stays served and this
// instance asks again after about one load time; a copy past serving
// (none, short of a clock jump) is loaded here without filling rather
// than answer nothing.
func (f *fill[V]) held(idx []int) (wait, noFill []int) {
	c := f.c
	now := c.now()
	for _, i := range idx {
		if f.mode == modeMiss && !f.calls[i].delivered {
			wait = append(wait, i)
			continue
		}
		c.st.leaseBusy.Add(1)
		if f.cur == nil {
			continue // served stale already; end takes the call out
		}
		if cur := f.cur[i]; now < cur.hard {
			// A Get that joined this refresh (its L1 lookup missed
			// meanwhile) gets the copy too.
			cur.retryAt.Store(now + max(cur.loadNS, int64(c.o.PollInterval)))
			c.finish(f.keys[i], f.calls[i], cur, nil, fromCopy)
			continue
		}
		noFill = append(noFill, i)
	}
	return wait, noFill
}

// storeFailed sorts the keys the Store failed for: a stale refresh whose
// value is still fresh (only its L1 freshness ran out) keeps its copy,
// rather than load it again every L1TTL while the Store is down; the
// others are returned, to load without filling.
func (f *fill[V]) storeFailed(idx []int) (load []int) {
	c := f.c
	now := c.now()
	for _, i := range idx {
		if f.mode == modeStale && now < f.cur[i].recFresh {
			f.deliver(i, c.relisted(f.cur[i], now, c.o.L1TTL), fromCopy)
			continue
		}
		load = append(load, i)
	}
	return load
}

// waitFills waits for the fills of the keys at idx that other instances
// are loading, polling the Store and delivering each fill as it lands; a
// key whose holder gave its lease back or let it expire (or whose value a
// Delete removed meanwhile) is taken over: returned in won, with its
// token, to load and fill. A value fresh when the wait began (so filled
// during it) ends the wait even if it is stale by now: with a TTL shorter
// than the polls, waiting for a fresh one could last the whole fillWait.
// The keys still missing after fillWait (or when the Store fails) are
// returned in rest, to load without filling.
func (f *fill[V]) waitFills(ctx context.Context, idx []int) (won []int, tokens []string, rest []int) {
	if len(idx) == 0 {
		return nil, nil, nil
	}
	c := f.c
	c.st.leaseWaits.Add(uint64(len(idx)))
	for _, i := range idx {
		f.calls[i].waited = true // not delivered yet: held() sends only those here
	}
	start := c.now()
	deadline := start + int64(c.fillWait())
	wait := c.o.PollInterval
	for {
		if !pause.For(ctx.Done(), wait) {
			return won, tokens, idx
		}
		recs, err := f.read(ctx, idx)
		if err != nil {
			return won, tokens, idx
		}
		now := c.now()
		var missing []int
		for j, i := range idx {
			if se := recs[j]; f.usable(i, se, now) || se != nil && se.recFresh > start && now < se.hard {
				f.deliver(i, se, fromFill)
				continue
			}
			missing = append(missing, i)
		}
		if len(missing) == 0 {
			return won, tokens, nil
		}
		toks, err := c.lease(ctx, pick(f.keys, missing))
		if err != nil {
			return won, tokens, missing
		}
		w, t, h := f.recheck(ctx, missing, toks)
		won, tokens = append(won, w...), append(tokens, t...)
		if idx = h; len(idx) == 0 {
			return won, tokens, nil
		}
		if c.now() >= deadline {
			c.st.leaseTimeouts.Add(uint64(len(idx)))
			return won, tokens, idx
		}
		wait = min(wait*3/2, 100*time.Millisecond)
	}
}

// loadAndFill runs one loader call for the keys at idx, fills the Store
// under tokens (nil: no fill; the leases are renewed while the load
// runs) and delivers. A failed load gives the leases back.
func (f *fill[V]) loadAndFill(ctx context.Context, idx []int, tokens []string) {
	if len(idx) == 0 {
		return
	}
	c := f.c
	keys := pick(f.keys, idx)
	var rn *renew.Renewer
	if tokens != nil {
		rn = c.renewLeases(ctx, keys, tokens)
	}
	es, err := f.call(ctx, idx)
	rn.Stop()
	if err != nil {
		for j, i := range idx {
			if tokens != nil {
				c.release(ctx, keys[j], tokens[j])
			}
			c.finish(keys[j], f.calls[i], nil, err, fromNone)
		}
		return
	}
	var kept []bool
	if tokens != nil {
		kept = c.storeFill(ctx, keys, tokens, es)
	}
	src := fromLoad
	if tokens != nil {
		src = fromLeasedLoad
	}
	for j, i := range idx {
		if kept == nil || kept[j] { // else a Set or Delete voided the fill: the callers asked before it
			c.keep(keys[j], f.calls[i], es[j])
		}
		c.finish(keys[j], f.calls[i], es[j], nil, src)
	}
}

// call runs the loader for the keys at idx, under MaxConcurrentLoads and
// LoadTimeout, and builds their entries: a key the loader leaves out (or
// a whole call's ErrNotFound) is a remembered ErrNotFound; a panic is a
// *PanicError with its stack.
func (f *fill[V]) call(ctx context.Context, idx []int) ([]*entry[V], error) {
	c := f.c
	ids := pick(f.ids, idx)
	if c.sem != nil {
		select {
		case c.sem <- struct{}{}:
			defer func() { <-c.sem }()
		case <-ctx.Done():
			return nil, fmt.Errorf("cache: waiting for a load slot for %q: %w", label(ids), ctx.Err())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.LoadTimeout)
	defer cancel()
	c.st.loads.Add(1)
	start := c.now()
	m, err := f.protected(ctx, ids)
	now := c.now()
	if err != nil {
		c.st.loadErrors.Add(1)
		c.o.Logger.LogAttrs(ctx, slog.LevelWarn, "cache: load failed", slog.String("key", label(ids)), slog.Any("error", err))
		return nil, err
	}
	es := make([]*entry[V], len(ids))
	for j, id := range ids {
		if v, ok := m[id]; ok {
			es[j] = c.newEntry(v, now)
			es[j].loadNS = now - start
			c.seal(es[j])
		} else {
			es[j] = c.negativeEntry(now)
		}
	}
	if c.o.Logger.Enabled(ctx, slog.LevelDebug) {
		c.o.Logger.LogAttrs(ctx, slog.LevelDebug, "cache: loaded", slog.String("key", label(ids)), slog.Int("found", len(m)), slog.Duration("took", time.Duration(now-start)))
	}
	return es, nil
}

// protected runs the loader, turning a panic into a *PanicError.
func (f *fill[V]) protected(ctx context.Context, ids []string) (m map[string]V, err error) {
	defer func() {
		if r := recover(); r != nil {
			f.c.st.panics.Add(1)
			err = &PanicError{Key: label(ids), Value: r, Stack: debug.Stack()}
		}
	}()
	m, err = f.load.call(ctx, ids)
	if errors.Is(err, ErrNotFound) { // every key absent
		return nil, nil
	}
	return m, err
}

// label names the keys of a load in errors and logs: the key itself, or
// the batch as fmt.Sprint prints it.
func label(ids []string) string {
	if len(ids) == 1 {
		return ids[0]
	}
	return fmt.Sprint(ids)
}

// finish ends a key's load: it takes the call out of the in-flight map
// first, so a Get that comes after sees the L1 (or loads again after an
// error) instead of joining a call that is over, then delivers to its
// waiters. Later calls are no-ops.
func (c *Cache[V]) finish(key string, cl *call[V], e *entry[V], err error, src source) {
	c.mu.Lock()
	if c.calls[key] == cl {
		delete(c.calls, key)
	}
	c.mu.Unlock()
	cl.deliver(e, err, src)
}

// settle ends key's load cl with e (from src): keep then finish, under
// one hold of c.mu.
func (c *Cache[V]) settle(key string, cl *call[V], e *entry[V], src source) {
	c.mu.Lock()
	if !cl.superseded {
		c.hold(key, e)
	}
	if c.calls[key] == cl {
		delete(c.calls, key)
	}
	c.mu.Unlock()
	cl.deliver(e, nil, src)
}

// keep puts e in the L1 unless a Set or Delete of key came during its
// load.
func (c *Cache[V]) keep(key string, cl *call[V], e *entry[V]) {
	c.mu.Lock()
	if !cl.superseded {
		c.hold(key, e)
	}
	c.mu.Unlock()
}
