package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/scalekit-go/scalekit/internal/stripe"
)

// ErrNotFound is what a loader returns (possibly wrapped) for a key that
// does not exist; the cache remembers it for NegativeTTL and Get returns it.
var ErrNotFound = errors.New("cache: not found")

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = errors.New("cache: invalid")

// PanicError is what every waiter of a load gets when the loader panics.
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

// Options configures New. The zero value works.
type Options struct {
	// TTL is how long a value is fresh. Default: 1m.
	TTL time.Duration
	// StaleFor is how long after TTL a value may still be served while one
	// refresh runs in the background (stale-while-revalidate). Set
	// NoStale to serve nothing stale. Default: equal to TTL.
	StaleFor time.Duration
	// NoStale disables serving stale values: an expired value is a miss.
	// Default: false.
	NoStale bool
	// NegativeTTL is how long a loader's ErrNotFound is remembered.
	// Default: the smaller of TTL and 10s.
	NegativeTTL time.Duration
	// Jitter shortens each entry's TTL by a random fraction up to Jitter,
	// so keys written together do not expire together; in [0, 1).
	// Default: 0.1. Set NoJitter for exact TTLs.
	Jitter float64
	// NoJitter disables Jitter. Default: false.
	NoJitter bool
	// Beta scales XFetch early refresh (Vattani et al., VLDB 2015): a hit
	// refreshes in the background when now - loadTime*Beta*ln(rand) >=
	// expiry, so a hot key is refreshed about once, just before it expires,
	// and no caller waits. Larger refreshes earlier. Default: 1. Set
	// NoEarlyRefresh to disable.
	Beta float64
	// NoEarlyRefresh disables XFetch early refresh. Default: false.
	NoEarlyRefresh bool
	// MaxEntries bounds the in-process cache (W-TinyLFU eviction).
	// Default: 10,000.
	MaxEntries int
	// MaxConcurrentLoads caps loader calls running at once across all keys,
	// so a burst of misses (or an L2 outage) cannot become a database
	// stampede; further loads wait for a slot. Default: 0, no cap.
	MaxConcurrentLoads int
	// LoadTimeout bounds one loader call. Loads outlive the caller that
	// started them (other callers may be waiting), so this is what stops a
	// hung loader. Default: 30s.
	LoadTimeout time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Rand returns a uniform float in [0, 1) for jitter and XFetch.
	// Default: math/rand/v2.
	Rand func() float64
	// Logger receives background refresh failures. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.TTL == 0 {
		o.TTL = time.Minute
	}
	if o.StaleFor == 0 && !o.NoStale {
		o.StaleFor = o.TTL
	}
	if o.NoStale {
		o.StaleFor = 0
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = min(o.TTL, 10*time.Second)
	}
	if o.Jitter == 0 && !o.NoJitter {
		o.Jitter = 0.1
	}
	if o.NoJitter {
		o.Jitter = 0
	}
	if o.Beta == 0 {
		o.Beta = 1
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = 10_000
	}
	if o.LoadTimeout == 0 {
		o.LoadTimeout = 30 * time.Second
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case o.TTL < 0:
		return o, fmt.Errorf("%w: Options.TTL must be > 0, got %v", ErrInvalid, o.TTL)
	case o.StaleFor < 0:
		return o, fmt.Errorf("%w: Options.StaleFor must be >= 0, got %v", ErrInvalid, o.StaleFor)
	case o.NegativeTTL < 0:
		return o, fmt.Errorf("%w: Options.NegativeTTL must be > 0, got %v", ErrInvalid, o.NegativeTTL)
	case o.Jitter < 0 || o.Jitter >= 1:
		return o, fmt.Errorf("%w: Options.Jitter must be in [0, 1), got %v", ErrInvalid, o.Jitter)
	case o.Beta < 0:
		return o, fmt.Errorf("%w: Options.Beta must be > 0, got %v", ErrInvalid, o.Beta)
	case o.MaxEntries < 1:
		return o, fmt.Errorf("%w: Options.MaxEntries must be >= 1, got %d", ErrInvalid, o.MaxEntries)
	case o.MaxConcurrentLoads < 0:
		return o, fmt.Errorf("%w: Options.MaxConcurrentLoads must be >= 0, got %d", ErrInvalid, o.MaxConcurrentLoads)
	case o.LoadTimeout < 0:
		return o, fmt.Errorf("%w: Options.LoadTimeout must be > 0, got %v", ErrInvalid, o.LoadTimeout)
	}
	return o, nil
}

// now is the current time in Unix ns. Without an injected clock it reads
// only the monotonic clock (time.Since), about half the cost of time.Now
// on the hit path.
func (c *Cache[V]) now() int64 {
	if c.o.Now != nil {
		return c.o.Now().UnixNano()
	}
	return c.base.UnixNano() + int64(time.Since(c.base))
}

func nowNS(now func() time.Time) int64 {
	if now != nil {
		return now().UnixNano()
	}
	return time.Now().UnixNano()
}

// entry is what the cache holds for a key.
type entry[V any] struct {
	val      V
	negative bool
	fresh    int64 // unix ns: fresh until
	hard     int64 // unix ns: servable (stale) until
	loadNS   int64 // how long the load took (XFetch's delta)
}

// Cache is a stampede-safe cache-aside over an in-process, size-bounded L1:
// concurrent misses of a key run its loader once, expired values are served
// stale while one refresh runs, and hot keys are refreshed early by about
// one caller. It is safe for concurrent use.
type Cache[V any] struct {
	o    Options
	base time.Time // with Options.Now nil: now = base + time.Since(base)
	l1   *otter.Cache[string, *entry[V]]
	sem  chan struct{}

	mu    sync.Mutex
	calls map[string]*call[V]

	st stats
}

// call is one load in flight; every caller of its key waits on done.
type call[V any] struct {
	done chan struct{}
	e    *entry[V]
	err  error
}

type stats struct {
	hits                                                                                                    stripe.Counter // striped: one shared atomic would bounce between cores on every hit
	misses, negativeHits, staleServed, staleRefreshes, earlyRefreshes, loads, loadErrors, coalesced, panics atomic.Uint64
}

// New returns a Cache, or an error naming the bad option.
func New[V any](o Options) (*Cache[V], error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	l1, err := otter.New(&otter.Options[string, *entry[V]]{
		MaximumSize: o.MaxEntries,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *entry[V]]) time.Duration {
			return time.Duration(e.Value.hard - nowNS(o.Now))
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c := &Cache[V]{o: o, l1: l1, calls: map[string]*call[V]{}, base: time.Now()}
	if o.MaxConcurrentLoads > 0 {
		c.sem = make(chan struct{}, o.MaxConcurrentLoads)
	}
	return c, nil
}

// Get returns key's value: from the cache when fresh; stale (while one
// background refresh runs) within StaleFor after expiry; otherwise from
// loader, which runs once however many callers miss the key at once. A
// caller whose ctx ends returns ctx.Err() at once and the load goes on for
// the others. Loader errors are returned and not cached, except
// ErrNotFound, remembered for NegativeTTL.
func (c *Cache[V]) Get(ctx context.Context, key string, loader Loader[V]) (V, error) {
	now := c.now()
	if e, ok := c.l1.GetIfPresent(key); ok {
		switch {
		case now < e.fresh:
			if !c.o.NoEarlyRefresh && !e.negative && c.xfetch(now, e) && c.refresh(ctx, key, loader) {
				c.st.earlyRefreshes.Add(1)
			}
			if e.negative {
				return c.answer(e, nil)
			}
			c.st.hits.Add(1)
			return e.val, nil
		case now < e.hard && !e.negative:
			c.st.staleServed.Add(1)
			if c.refresh(ctx, key, loader) {
				c.st.staleRefreshes.Add(1)
			}
			return c.answer(e, nil)
		}
	}
	c.st.misses.Add(1)
	cl, _ := c.load(ctx, key, loader)
	select {
	case <-cl.done:
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
	if cl.err != nil {
		var zero V
		return zero, cl.err
	}
	return c.answer(cl.e, nil)
}

func (c *Cache[V]) answer(e *entry[V], _ *atomic.Uint64) (V, error) {
	if e.negative {
		c.st.negativeHits.Add(1)
		var zero V
		return zero, ErrNotFound
	}
	return e.val, nil
}

// xfetch reports whether a hit should refresh early: now - delta*beta*ln(r)
// >= expiry, with -ln(r) exponentially distributed.
func (c *Cache[V]) xfetch(now int64, e *entry[V]) bool {
	if e.loadNS <= 0 {
		return false
	}
	// -ln(r) above 30 has probability e^-30: far from expiry, skip the draw.
	if float64(e.fresh-now) > 30*float64(e.loadNS)*c.o.Beta {
		return false
	}
	r := c.o.Rand()
	if r <= 0 {
		return true
	}
	return float64(now)-float64(e.loadNS)*c.o.Beta*math.Log(r) >= float64(e.fresh)
}

// refresh starts a background load of key unless one is in flight, and
// reports whether it started one.
func (c *Cache[V]) refresh(ctx context.Context, key string, loader Loader[V]) bool {
	_, started := c.load(ctx, key, loader)
	return started
}

// load returns the call loading key, starting it if none is in flight. The
// load runs detached from the caller (with its values, without its
// cancellation), bounded by LoadTimeout.
func (c *Cache[V]) load(ctx context.Context, key string, loader Loader[V]) (*call[V], bool) {
	c.mu.Lock()
	if cl := c.calls[key]; cl != nil {
		c.mu.Unlock()
		c.st.coalesced.Add(1)
		return cl, false
	}
	cl := &call[V]{done: make(chan struct{})}
	c.calls[key] = cl
	c.mu.Unlock()
	go c.run(context.WithoutCancel(ctx), key, loader, cl)
	return cl, true
}

func (c *Cache[V]) run(ctx context.Context, key string, loader Loader[V], cl *call[V]) {
	ctx, cancel := context.WithTimeout(ctx, c.o.LoadTimeout)
	defer cancel()
	defer func() {
		c.mu.Lock()
		delete(c.calls, key)
		c.mu.Unlock()
		close(cl.done)
	}()
	if c.sem != nil {
		select {
		case c.sem <- struct{}{}:
			defer func() { <-c.sem }()
		case <-ctx.Done():
			cl.err = fmt.Errorf("cache: waiting for a load slot for %q: %w", key, ctx.Err())
			return
		}
	}
	c.st.loads.Add(1)
	start := time.Unix(0, c.now())
	v, err := c.call(ctx, key, loader)
	now := time.Unix(0, c.now())
	switch {
	case errors.Is(err, ErrNotFound):
		cl.e = &entry[V]{negative: true, fresh: now.Add(c.o.NegativeTTL).UnixNano(), hard: now.Add(c.o.NegativeTTL).UnixNano()}
	case err != nil:
		c.st.loadErrors.Add(1)
		cl.err = err
		c.o.Logger.Warn("cache: load failed", slog.String("key", key), slog.Any("error", err))
		return
	default:
		cl.e = c.newEntry(v, now)
		cl.e.loadNS = int64(now.Sub(start))
	}
	c.l1.Set(key, cl.e)
}

// call runs loader, turning a panic into a *PanicError.
func (c *Cache[V]) call(ctx context.Context, key string, loader Loader[V]) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.st.panics.Add(1)
			err = &PanicError{Key: key, Value: r, Stack: debug.Stack()}
		}
	}()
	return loader(ctx, key)
}

func (c *Cache[V]) newEntry(v V, now time.Time) *entry[V] {
	ttl := c.o.TTL
	if c.o.Jitter > 0 {
		ttl -= time.Duration(float64(ttl) * c.o.Jitter * c.o.Rand())
	}
	fresh := now.Add(ttl)
	return &entry[V]{val: v, fresh: fresh.UnixNano(), hard: fresh.Add(c.o.StaleFor).UnixNano()}
}

// Set stores v for key as freshly loaded.
func (c *Cache[V]) Set(_ context.Context, key string, v V) {
	c.l1.Set(key, c.newEntry(v, time.Unix(0, c.now())))
}

// Delete drops key; the next Get loads it.
func (c *Cache[V]) Delete(_ context.Context, key string) {
	c.l1.Invalidate(key)
}

// Close stops the cache's background goroutine (the L1's periodic expiry
// sweep). It is idempotent. The cache keeps answering after Close; expired
// entries are then dropped only when read or evicted by size.
func (c *Cache[V]) Close() error {
	c.l1.StopAllGoroutines()
	return nil
}

// Stats is a snapshot of the counters.
type Stats struct {
	// Hits are fresh values served; Misses are Gets that had to wait for a
	// load; NegativeHits are remembered ErrNotFounds served.
	Hits, Misses, NegativeHits uint64
	// StaleServed counts values served past TTL while refreshing.
	StaleServed uint64
	// EarlyRefreshes counts loads XFetch started before expiry;
	// StaleRefreshes those started by a stale read.
	EarlyRefreshes, StaleRefreshes uint64
	// Loads are loader calls; LoadErrors those that failed (not
	// ErrNotFound); Panics those that panicked.
	Loads, LoadErrors, Panics uint64
	// Coalesced counts Gets and refreshes that joined a load in flight
	// instead of calling the loader.
	Coalesced uint64
	// Entries is the number of entries held now (estimated).
	Entries int
}

// Stats returns a snapshot.
func (c *Cache[V]) Stats() Stats {
	s := &c.st
	return Stats{Hits: s.hits.Load(), Misses: s.misses.Load(), NegativeHits: s.negativeHits.Load(), StaleServed: s.staleServed.Load(),
		EarlyRefreshes: s.earlyRefreshes.Load(), StaleRefreshes: s.staleRefreshes.Load(), Loads: s.loads.Load(), LoadErrors: s.loadErrors.Load(), Panics: s.panics.Load(),
		Coalesced: s.coalesced.Load(), Entries: c.l1.EstimatedSize()}
}
