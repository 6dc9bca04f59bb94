package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/internal/renew"
)

// BatchLoader loads many keys in one call (one SELECT ... WHERE id =
// ANY($1)); a key missing from the result does not exist (it is
// remembered as ErrNotFound for NegativeTTL).
type BatchLoader[V any] func(ctx context.Context, keys []string) (map[string]V, error)

// GetMany returns the values of keys, keyed by key; keys that do not exist
// are absent. Fresh L1 values are served as they are; the rest are read
// from the Store in one round trip; what is still missing is loaded with
// one batch call, under fill leases so that other instances missing the
// same keys wait for this fill instead of loading them again (keys whose
// lease another instance holds are waited for, then loaded in a second
// batch call if no fill lands within LoadTimeout + 2 x LeaseTTL). Keys
// another Get of this instance is loading already are joined, not loaded
// twice. A caller whose ctx ends gets what is ready and ctx.Err().
func (c *Cache[V]) GetMany(ctx context.Context, keys []string, batch BatchLoader[V]) (map[string]V, error) {
	return c.getMany(ctx, keys, keys, batch)
}

func (c *Cache[V]) getMany(ctx context.Context, keys, ids []string, batch BatchLoader[V]) (map[string]V, error) {
	res := make(map[string]V, len(keys))
	now := c.now()
	var miss, stale []int
	var staleEs []*entry[V]
	for i, k := range keys {
		if e, ok := c.l1.GetIfPresent(k); ok {
			switch {
			case now < e.fresh:
				if e.negative {
					c.st.negativeHits.Add(1)
				} else {
					c.st.hits.Add(1)
					res[ids[i]] = e.val
				}
				continue
			case now < e.hard && !e.negative:
				c.st.staleServed.Add(1)
				res[ids[i]] = e.val
				if now >= e.retryAt.Load() {
					stale = append(stale, i)
					staleEs = append(staleEs, e)
				}
				continue
			}
		}
		miss = append(miss, i)
	}
	if len(stale) > 0 {
		c.refreshMany(ctx, keys, ids, stale, staleEs, batch)
	}
	if len(miss) == 0 {
		return res, nil
	}
	c.st.misses.Add(uint64(len(miss)))
	calls := make([]*call[V], len(miss))
	var own []int // positions in miss this call loads
	c.mu.Lock()
	for j, i := range miss {
		if cl := c.calls[keys[i]]; cl != nil {
			calls[j] = cl
			c.st.coalesced.Add(1)
			continue
		}
		calls[j] = &call[V]{done: make(chan struct{})}
		c.calls[keys[i]] = calls[j]
		own = append(own, j)
	}
	c.mu.Unlock()
	if len(own) > 0 {
		b := &manyLoad[V]{c: c, batch: batch}
		for _, j := range own {
			b.keys = append(b.keys, keys[miss[j]])
			b.ids = append(b.ids, ids[miss[j]])
			b.calls = append(b.calls, calls[j])
		}
		go b.run(context.WithoutCancel(ctx))
	}
	var firstErr error
	for j, i := range miss {
		cl := calls[j]
		select {
		case <-cl.done:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		switch {
		case cl.err != nil:
			if firstErr == nil {
				firstErr = cl.err
			}
		case cl.e.negative:
			c.st.negativeHits.Add(1)
		default:
			res[ids[i]] = cl.e.val
		}
	}
	return res, firstErr
}

// refreshMany refreshes in the background, with one batch call, the
// stale keys at idx that no load of this instance is refreshing already.
func (c *Cache[V]) refreshMany(ctx context.Context, keys, ids []string, idx []int, cur []*entry[V], batch BatchLoader[V]) {
	b := &manyLoad[V]{c: c, batch: batch}
	c.mu.Lock()
	for j, i := range idx {
		if c.calls[keys[i]] != nil {
			c.st.coalesced.Add(1)
			continue
		}
		cl := &call[V]{done: make(chan struct{})}
		c.calls[keys[i]] = cl
		b.keys = append(b.keys, keys[i])
		b.ids = append(b.ids, ids[i])
		b.calls = append(b.calls, cl)
		b.cur = append(b.cur, cur[j])
	}
	c.mu.Unlock()
	if len(b.keys) == 0 {
		return
	}
	c.st.staleRefreshes.Add(uint64(len(b.keys)))
	go b.run(context.WithoutCancel(ctx))
}

// manyLoad is one GetMany's load of the keys it owns.
type manyLoad[V any] struct {
	c         *Cache[V]
	batch     BatchLoader[V]
	keys, ids []string
	calls     []*call[V]
	// cur, for a background refresh of stale keys, holds the copies being
	// served: a key whose lease another instance holds keeps its copy
	// (that instance refreshes it) instead of waiting for the fill.
	cur []*entry[V]
}

func (b *manyLoad[V]) run(ctx context.Context) {
	c := b.c
	ctx, cancel := context.WithTimeout(ctx, c.fillWait()+c.o.LoadTimeout)
	defer cancel()
	defer func() {
		for i, cl := range b.calls {
			c.finish(b.keys[i], cl, nil, fmt.Errorf("cache: the load of %q ended without a result", b.keys[i]))
		}
	}()
	all := make([]int, len(b.keys))
	for i := range all {
		all[i] = i
	}
	if c.store == nil {
		b.load(ctx, all, nil)
		return
	}
	pending, tokens, ok := b.fromStore(ctx, all)
	if !ok { // the Store is failing: load everything, fill nothing
		b.load(ctx, pending, nil)
		return
	}
	var won, held []int
	var wonTokens []string
	for j, i := range pending {
		if tokens[j] != "" {
			won = append(won, i)
			wonTokens = append(wonTokens, tokens[j])
		} else {
			held = append(held, i)
		}
	}
	c.st.leasesWon.Add(uint64(len(won)))
	b.load(ctx, won, wonTokens)
	if len(held) == 0 {
		return
	}
	if b.cur != nil {
		c.st.leaseBusy.Add(uint64(len(held)))
		now := c.now()
		for _, i := range held {
			cur := b.cur[i]
			if now < cur.hard {
				cur.retryAt.Store(now + max(cur.loadNS, int64(c.o.PollInterval)))
				c.finish(b.keys[i], b.calls[i], cur, nil)
			}
		}
		// Copies past serving (none, short of a clock jump) fall through
		// to the wait below.
		var rest []int
		for _, i := range held {
			if !b.calls[i].delivered {
				rest = append(rest, i)
			}
		}
		if held = rest; len(held) == 0 {
			return
		}
	}
	c.st.leaseWaits.Add(uint64(len(held)))
	rest, won, wonTokens := b.waitFills(ctx, held)
	c.st.leasesWon.Add(uint64(len(won)))
	b.load(ctx, won, wonTokens)
	b.load(ctx, rest, nil)
}

// fromStore delivers what the Store has fresh and leases the rest. It
// returns the positions still to load with their tokens ("" where another
// instance holds the lease); ok is false when the Store failed.
func (b *manyLoad[V]) fromStore(ctx context.Context, idx []int) (pending []int, tokens []string, ok bool) {
	c := b.c
	es, err := c.storeGet(ctx, b.pick(idx))
	if err != nil {
		return idx, nil, false
	}
	now := c.now()
	for j, i := range idx {
		if e := es[j]; e != nil && now < e.recFresh {
			c.keep(b.keys[i], b.calls[i], e)
			c.finish(b.keys[i], b.calls[i], e, nil)
			continue
		}
		pending = append(pending, i)
	}
	if len(pending) == 0 {
		return nil, nil, true
	}
	tokens, err = c.lease(ctx, b.pick(pending))
	if err != nil {
		return pending, nil, false
	}
	// Close the race with a holder that filled between the read and the
	// lease: read the leased keys once more.
	var leased []int
	for j, i := range pending {
		if tokens[j] != "" {
			leased = append(leased, i)
		}
	}
	if len(leased) > 0 {
		if es, err := c.storeGet(ctx, b.pick(leased)); err == nil {
			now := c.now()
			filled := map[int]*entry[V]{}
			for j, i := range leased {
				if e := es[j]; e != nil && now < e.recFresh {
					filled[i] = e
				}
			}
			if len(filled) > 0 {
				var p2 []int
				var t2 []string
				for j, i := range pending {
					if e := filled[i]; e != nil {
						c.release(ctx, b.keys[i], tokens[j])
						c.keep(b.keys[i], b.calls[i], e)
						c.finish(b.keys[i], b.calls[i], e, nil)
						continue
					}
					p2 = append(p2, i)
					t2 = append(t2, tokens[j])
				}
				pending, tokens = p2, t2
			}
		}
	}
	return pending, tokens, true
}

// waitFills polls the Store for the fills of keys other instances are
// loading, delivering each as it lands, and takes over the lease of a key
// whose holder gave it back or let it expire (or whose value a Delete
// removed meanwhile): those it returns in won, with their tokens, to load
// and fill. It returns in rest those still missing after fillWait (or
// when the Store fails), to load without filling.
func (b *manyLoad[V]) waitFills(ctx context.Context, idx []int) (rest, won []int, wonTokens []string) {
	c := b.c
	start := c.now()
	deadline := start + int64(c.fillWait())
	wait := c.o.PollInterval
	for len(idx) > 0 && c.now() < deadline {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return idx, won, wonTokens
		case <-t.C:
		}
		es, err := c.storeGet(ctx, b.pick(idx))
		if err != nil {
			return idx, won, wonTokens
		}
		now := c.now()
		var missing []int
		for j, i := range idx {
			// fresh, or filled during the wait and still servable
			if e := es[j]; e != nil && (now < e.recFresh || e.recFresh > start && now < e.hard) {
				c.keep(b.keys[i], b.calls[i], e)
				c.finish(b.keys[i], b.calls[i], e, nil)
				continue
			}
			missing = append(missing, i)
		}
		if len(missing) == 0 {
			return nil, won, wonTokens
		}
		tokens, err := c.lease(ctx, b.pick(missing))
		if err != nil {
			return missing, won, wonTokens
		}
		idx = idx[:0:0]
		for j, i := range missing {
			if tokens[j] != "" {
				won = append(won, i)
				wonTokens = append(wonTokens, tokens[j])
			} else {
				idx = append(idx, i)
			}
		}
		wait = min(wait*3/2, 100*time.Millisecond)
	}
	if len(idx) > 0 {
		c.st.leaseTimeouts.Add(uint64(len(idx)))
	}
	return idx, won, wonTokens
}

func (b *manyLoad[V]) pick(idx []int) []string {
	out := make([]string, len(idx))
	for j, i := range idx {
		out[j] = b.keys[i]
	}
	return out
}

// load runs one batch call for the keys at idx, fills the Store under
// tokens (when given) and delivers.
func (b *manyLoad[V]) load(ctx context.Context, idx []int, tokens []string) {
	if len(idx) == 0 {
		return
	}
	c := b.c
	ids := make([]string, len(idx))
	for j, i := range idx {
		ids[j] = b.ids[i]
	}
	if c.sem != nil {
		select {
		case c.sem <- struct{}{}:
			defer func() { <-c.sem }()
		case <-ctx.Done():
			err := fmt.Errorf("cache: waiting for a load slot: %w", ctx.Err())
			b.fail(ctx, idx, tokens, err)
			return
		}
	}
	lctx, cancel := context.WithTimeout(ctx, c.o.LoadTimeout)
	defer cancel()
	var rn *renew.Renewer
	if tokens != nil {
		rn = c.renewLeases(ctx, b.pick(idx), tokens)
	}
	c.st.loads.Add(1)
	start := c.now()
	m, err := b.call(lctx, ids)
	rn.Stop()
	now := c.now()
	if err != nil {
		c.st.loadErrors.Add(1)
		b.fail(ctx, idx, tokens, err)
		return
	}
	es := make([]*entry[V], len(idx))
	for j := range idx {
		if v, ok := m[ids[j]]; ok {
			es[j] = c.newEntry(v, now)
			es[j].loadNS = now - start
		} else {
			es[j] = c.negativeEntry(now)
		}
	}
	kept := make([]bool, len(idx))
	for j := range kept {
		kept[j] = true
	}
	if tokens != nil {
		kept = c.fill(ctx, b.pick(idx), tokens, es)
	}
	for j, i := range idx {
		if kept[j] {
			c.keep(b.keys[i], b.calls[i], es[j])
		}
		c.finish(b.keys[i], b.calls[i], es[j], nil)
	}
}

func (b *manyLoad[V]) fail(ctx context.Context, idx []int, tokens []string, err error) {
	for j, i := range idx {
		if tokens != nil {
			b.c.release(ctx, b.keys[i], tokens[j])
		}
		b.c.finish(b.keys[i], b.calls[i], nil, err)
	}
}

// call runs the batch loader, turning a panic into a *PanicError.
func (b *manyLoad[V]) call(ctx context.Context, ids []string) (m map[string]V, err error) {
	defer func() {
		if r := recover(); r != nil {
			b.c.st.panics.Add(1)
			err = &PanicError{Key: fmt.Sprint(ids), Value: r}
		}
	}()
	m, err = b.batch(ctx, ids)
	if errors.Is(err, ErrNotFound) { // a batch loader signals absence by leaving keys out
		return map[string]V{}, nil
	}
	return m, err
}
