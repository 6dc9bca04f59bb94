package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/pause"
	"github.com/scalekit-go/scalekit/internal/renew"
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
	// and no caller waits. Larger refreshes earlier. With h hits per
	// second and a load time d, the refresh comes about
	// d*Beta*ln(h*d*Beta) before expiry (some 50ms for 1000 hits/s on a
	// 10ms load), so TTL should be well above that; EarlyWindow caps it.
	// Default: 1. Set NoEarlyRefresh to disable.
	Beta float64
	// EarlyWindow bounds how early, as a fraction of TTL, XFetch may
	// refresh before expiry; in (0, 1). The hits a process sees grow with
	// the fleet's traffic, and with them the XFetch lead
	// (d*Beta*ln(hits*d*Beta)): unbounded, a hot key on a busy fleet was
	// refreshed up to 0.4 TTL early, two loads per TTL. With the cap the
	// fleet loads a hot key about 1/(1 - EarlyWindow - Jitter/2) times per
	// TTL (1.05 with the defaults, measured by cacheredis's fleet test);
	// an instance whose early refresh finds a newer value in the Store
	// takes it instead of loading. Default: 0.05.
	EarlyWindow float64
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
	// Store is the L2 shared by every instance: cacheredis.Store on
	// Redis, or a MemoryStore. With it a miss reads the Store before the
	// loader, one instance per key loads (the fill lease) while the others
	// wait for its fill, and Set, Delete and Namespace.Invalidate reach
	// every instance's L1. Default: none, the L1 alone.
	Store Store
	// Codec encodes values for the Store. Default: JSON{}.
	Codec Codec
	// L1TTL bounds how long an L1 copy of a Store value counts as fresh
	// before the instance reads the Store again (serving its copy
	// meanwhile; while the Store fails, the copy is kept until the value's
	// own TTL): the most an L1 can lag behind another instance's Set or
	// Delete when the invalidation message is lost without the
	// subscription noticing (a Store that is a ReconnectSubscriber, as
	// cacheredis is, drops the whole L1 when its subscription reconnects).
	// Default: TTL/10.
	L1TTL time.Duration
	// LeaseTTL is how long an instance's fill lease on a key lasts without
	// renewal. The holder renews it every LeaseTTL/3 while its loader runs
	// (when the Store is a LeaseRenewer, as cacheredis and MemoryStore
	// are), so a load slower than LeaseTTL still fills; the other
	// instances wait for that fill, and if the lease runs out (its holder
	// died), one of them takes it over and loads. An instance waits at
	// most LoadTimeout + 2 x LeaseTTL in all (2 x LeaseTTL with a Store
	// that cannot renew) before it loads by itself. Default: 5s.
	LeaseTTL time.Duration
	// PollInterval is the first wait between checks for another instance's
	// fill; the wait grows by half each time, up to 100ms. Default: 5ms.
	PollInterval time.Duration
	// VersionTTL is how long an instance uses a namespace version before
	// reading it from the Store again; Invalidate on another instance
	// reaches it sooner through the Store's messages. Default: 1s.
	VersionTTL time.Duration
	// MaxPendingInvalidations bounds the invalidations kept while the
	// Store cannot take them. A Set or Delete whose Store write or message
	// fails (the Store is down, or the breaker is open) still returns the
	// error, and its key is kept: when the Store answers again, a
	// background flusher deletes the key from the Store and publishes its
	// invalidation, so no instance keeps serving the old value (the next
	// Get loads it). A failed Namespace.Invalidate is kept the same way.
	// Past the bound the kept keys collapse into one flush: every
	// namespace this instance uses is bumped and every instance drops its
	// whole L1; plain (non-namespace) keys written meanwhile keep their
	// Store copy until its TTL. Stats reports PendingInvalidations and
	// PendingOverflows. Default: 10,000.
	MaxPendingInvalidations int
	// Breaker is the circuit around the Store: while it is open the cache
	// does not call the Store (no per-request timeout on a dead Redis) and
	// serves from L1 and the loader. Default: opens after 3 consecutive
	// failures, for 1s growing to 10s while probes fail.
	Breaker *breaker.Breaker
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
	if o.EarlyWindow == 0 {
		o.EarlyWindow = 0.05
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
	if o.Codec == nil {
		o.Codec = JSON{}
	}
	if o.L1TTL == 0 {
		o.L1TTL = max(o.TTL/10, time.Millisecond)
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = 5 * time.Millisecond
	}
	if o.VersionTTL == 0 {
		o.VersionTTL = time.Second
	}
	if o.MaxPendingInvalidations == 0 {
		o.MaxPendingInvalidations = 10_000
	}
	o.Logger = logx.Or(o.Logger)
	switch {
	case o.TTL < 0:
		return o, fmt.Errorf("%w: Options.TTL must be > 0, got %v", ErrInvalid, o.TTL)
	case o.StaleFor < 0:
		return o, fmt.Errorf("%w: Options.StaleFor must be >= 0, got %v", ErrInvalid, o.StaleFor)
	case o.NegativeTTL < 0:
		return o, fmt.Errorf("%w: Options.NegativeTTL must be > 0, got %v", ErrInvalid, o.NegativeTTL)
	case o.EarlyWindow < 0 || o.EarlyWindow >= 1:
		return o, fmt.Errorf("%w: Options.EarlyWindow must be in (0, 1), got %v", ErrInvalid, o.EarlyWindow)
	case o.Jitter < 0 || o.Jitter >= 1:
		return o, fmt.Errorf("%w: Options.Jitter must be in [0, 1), got %v", ErrInvalid, o.Jitter)
	case o.Beta < 0:
		return o, fmt.Errorf("%w: Options.Beta must be > 0, got %v", ErrInvalid, o.Beta)
	case o.MaxEntries < 1:
		return o, fmt.Errorf("%w: Options.MaxEntries must be >= 1, got %d", ErrInvalid, o.MaxEntries)
	case o.MaxPendingInvalidations < 0:
		return o, fmt.Errorf("%w: Options.MaxPendingInvalidations must be >= 0, got %d", ErrInvalid, o.MaxPendingInvalidations)
	case o.MaxConcurrentLoads < 0:
		return o, fmt.Errorf("%w: Options.MaxConcurrentLoads must be >= 0, got %d", ErrInvalid, o.MaxConcurrentLoads)
	case o.LoadTimeout < 0:
		return o, fmt.Errorf("%w: Options.LoadTimeout must be > 0, got %v", ErrInvalid, o.LoadTimeout)
	case o.L1TTL < 0:
		return o, fmt.Errorf("%w: Options.L1TTL must be > 0, got %v", ErrInvalid, o.L1TTL)
	case o.LeaseTTL < time.Millisecond:
		return o, fmt.Errorf("%w: Options.LeaseTTL must be >= 1ms, got %v", ErrInvalid, o.LeaseTTL)
	case o.PollInterval < 0:
		return o, fmt.Errorf("%w: Options.PollInterval must be > 0, got %v", ErrInvalid, o.PollInterval)
	case o.VersionTTL < 0:
		return o, fmt.Errorf("%w: Options.VersionTTL must be > 0, got %v", ErrInvalid, o.VersionTTL)
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
	fresh    int64 // unix ns: fresh in L1 until (at most recFresh)
	recFresh int64 // unix ns: the value's own fresh-until
	hard     int64 // unix ns: servable (stale) until
	loadNS   int64 // how long the load took (XFetch's delta)
	// retryAt holds back refreshes of this entry (unix ns) after one found
	// another instance refreshing, so hits do not ask the Store again on
	// every call meanwhile.
	retryAt atomic.Int64
}

// Cache is a stampede-safe cache-aside over an in-process, size-bounded L1
// and an optional shared L2 Store: concurrent misses of a key run its
// loader once per fleet, expired values are served stale while one
// refresh runs, and hot keys are refreshed early by about one caller. It
// is safe for concurrent use.
type Cache[V any] struct {
	o     Options
	base  time.Time // with Options.Now nil: now = base + time.Since(base)
	early int64     // EarlyWindow x TTL, ns: no early refresh before recFresh - early
	l1    *otter.Cache[string, *entry[V]]
	sem   chan struct{}
	store Store
	rn    LeaseRenewer // store's, when it renews leases
	br    *breaker.Breaker
	id    string // this instance, in invalidation messages

	mu    sync.Mutex
	calls map[string]*call[V]

	versions sync.Map // namespace name -> *nsVersion

	kept     pending
	flushers sync.WaitGroup

	subMu   sync.Mutex
	stopSub func()
	closed  chan struct{}
	subDone chan struct{}

	st stats
}

// call is one load in flight; every caller of its key waits on done.
type call[V any] struct {
	done       chan struct{}
	e          *entry[V]
	err        error
	delivered  bool // touched by the loading goroutine only
	superseded bool // a Set or Delete came during the load; under Cache.mu
}

// relisted is a copy of e fresh in the L1 for l1TTL more (at most until
// the value's own expiry).
func (e *entry[V]) relisted(now int64, l1TTL time.Duration) *entry[V] {
	return &entry[V]{val: e.val, negative: e.negative, fresh: min(e.recFresh, now+int64(l1TTL)), recFresh: e.recFresh, hard: e.hard, loadNS: e.loadNS}
}

func (cl *call[V]) deliver(e *entry[V], err error) {
	if cl.delivered {
		return
	}
	cl.e, cl.err, cl.delivered = e, err, true
	close(cl.done)
}

type stats struct {
	hits                                                                                                    stripe.Counter // striped: one shared atomic would bounce between cores on every hit
	misses, negativeHits, staleServed, staleRefreshes, earlyRefreshes, loads, loadErrors, coalesced, panics atomic.Uint64
	l2Hits, l2Misses, l2Errors, l2Skipped, leasesWon, leaseWaits, leaseBusy, leaseTimeouts, fillsRefused    atomic.Uint64
	codecErrors, invalidations, resubscribes, pendingDelivered, pendingOverflows                            atomic.Uint64
}

// New returns a Cache, or an error naming the bad option. With a Store it
// subscribes to the Store's invalidation messages; Close stops that.
func New[V any](o Options) (*Cache[V], error) {
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
	l1, err := otter.New(&otter.Options[string, *entry[V]]{
		MaximumSize: o.MaxEntries,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *entry[V]]) time.Duration {
			return time.Duration(e.Value.hard - nowNS(o.Now))
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c := &Cache[V]{o: o, early: int64(o.EarlyWindow * float64(o.TTL)), l1: l1, calls: map[string]*call[V]{}, base: time.Now(), store: o.Store, br: o.Breaker,
		id: strconv.FormatUint(rand.Uint64(), 36), closed: make(chan struct{})}
	if o.MaxConcurrentLoads > 0 {
		c.sem = make(chan struct{}, o.MaxConcurrentLoads)
	}
	c.rn, _ = o.Store.(LeaseRenewer)
	if c.store != nil {
		if stop, err := c.subscribe(); err == nil {
			c.stopSub = stop
		} else {
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
	wait := time.Second
	for pause.For(c.closed, wait) {
		if stop, err := c.subscribe(); err == nil {
			c.subMu.Lock()
			select {
			case <-c.closed:
				stop()
			default:
				c.stopSub = stop
			}
			c.subMu.Unlock()
			return
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// Get returns key's value: from the L1 when fresh; stale (while one
// background refresh runs) within StaleFor after expiry; otherwise from
// the Store, or from loader, which runs once however many callers (and,
// with a Store, instances) miss the key at once. A caller whose ctx ends
// returns ctx.Err() at once and the load goes on for the others (the
// first caller of a miss reads the Store itself, bounded by the Store's
// timeout, before it can leave). Loader
// errors are returned and not cached, except ErrNotFound, remembered for
// NegativeTTL.
func (c *Cache[V]) Get(ctx context.Context, key string, loader Loader[V]) (V, error) {
	return c.get(ctx, key, key, loader)
}

// get is Get for the cache key key, loaded as id (a namespace's keys are
// versioned; its loader sees the plain id).
func (c *Cache[V]) get(ctx context.Context, key, id string, loader Loader[V]) (V, error) {
	if ent, ok := c.l1.GetEntry(key); ok {
		e := ent.Value
		// otter read the clock for its own expiry check: with the default
		// clock its snapshot is this Get's now, one clock read saved.
		now := ent.SnapshotAtNano
		if c.o.Now != nil || now == 0 {
			now = c.now()
		}
		switch {
		case now < e.fresh:
			if !c.o.NoEarlyRefresh && !e.negative && c.xfetch(now, e) && now >= e.retryAt.Load() {
				if _, started := c.load(ctx, key, id, loader, modeEarly, e); started {
					c.st.earlyRefreshes.Add(1)
				}
			}
			if e.negative {
				return c.answer(e)
			}
			c.st.hits.Add(1)
			return e.val, nil
		case now < e.hard && !e.negative:
			c.st.staleServed.Add(1)
			if now >= e.retryAt.Load() {
				if _, started := c.load(ctx, key, id, loader, modeStale, e); started {
					c.st.staleRefreshes.Add(1)
				}
			}
			return e.val, nil
		}
	}
	c.st.misses.Add(1)
	cl, _ := c.load(ctx, key, id, loader, modeMiss, nil)
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
	return c.answer(cl.e)
}

func (c *Cache[V]) answer(e *entry[V]) (V, error) {
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
	// Never earlier than EarlyWindow before expiry; and -ln(r) above 30
	// has probability e^-30: far from expiry, skip the draw.
	if left := e.recFresh - now; left > c.early || float64(left) > 30*float64(e.loadNS)*c.o.Beta {
		return false
	}
	r := c.o.Rand()
	if r <= 0 {
		return true
	}
	return float64(now)-float64(e.loadNS)*c.o.Beta*math.Log(r) >= float64(e.recFresh)
}

// loadMode is why a load runs.
type loadMode int

const (
	modeMiss  loadMode = iota // callers wait for it
	modeStale                 // the L1 copy is past its L1 freshness: anything fresh will do
	modeEarly                 // XFetch: only a value newer than the current one will do
)

// load returns the call loading key, starting it if none is in flight. The
// load runs detached from the caller (with its values, without its
// cancellation), bounded by LoadTimeout.
func (c *Cache[V]) load(ctx context.Context, key, id string, loader Loader[V], mode loadMode, cur *entry[V]) (*call[V], bool) {
	c.mu.Lock()
	if cl := c.calls[key]; cl != nil {
		c.mu.Unlock()
		c.st.coalesced.Add(1)
		return cl, false
	}
	cl := &call[V]{done: make(chan struct{})}
	c.calls[key] = cl
	c.mu.Unlock()
	dctx := context.WithoutCancel(ctx)
	var pre *storeRead[V]
	if c.store != nil && mode == modeMiss {
		// The common L2 hit is served here, in the caller's goroutine (the
		// Store bounds the read): no goroutine, no handoff. Anything else
		// continues in the background with what was read.
		recs, err := c.storeGet(dctx, []string{key})
		if err == nil && recs[0] != nil && c.now() < recs[0].recFresh {
			c.keep(key, cl, recs[0])
			c.finish(key, cl, recs[0], nil)
			return cl, true
		}
		pre = &storeRead[V]{recs: recs, err: err}
	}
	go c.run(dctx, key, id, loader, cl, mode, cur, pre)
	return cl, true
}

// storeRead is a Store read a load starts from.
type storeRead[V any] struct {
	recs []*entry[V]
	err  error
}

func (c *Cache[V]) run(ctx context.Context, key, id string, loader Loader[V], cl *call[V], mode loadMode, cur *entry[V], pre *storeRead[V]) {
	ctx, cancel := context.WithTimeout(ctx, c.fillWait()+c.o.LoadTimeout)
	defer cancel()
	defer c.finish(key, cl, nil, fmt.Errorf("cache: the load of %q ended without a result", key))
	token := ""
	if c.store != nil {
		var e *entry[V]
		var ok bool
		e, token, ok = c.fromStore(ctx, key, mode, cur, cl, pre)
		if e != nil {
			c.keep(key, cl, e)
			c.finish(key, cl, e, nil)
			return
		}
		switch {
		case ok && token == "" && mode == modeStale && cur != nil && c.now() < cur.recFresh:
			// Only the L1 freshness ran out and the Store fails: keep the
			// copy (its value is fresh) rather than load it again every
			// L1TTL for as long as the Store is down.
			ne := cur.relisted(c.now(), c.o.L1TTL)
			c.keep(key, cl, ne)
			c.finish(key, cl, ne, nil)
			return
		case ok:
		case cur == nil:
			return // a miss already served a stale Store value; another instance refreshes
		case c.now() < cur.hard:
			// Another instance refreshes; the L1 copy stays, and this
			// instance looks again after about one load time. A Get that
			// joined this refresh (its L1 lookup missed meanwhile) gets
			// the copy too.
			cur.retryAt.Store(c.now() + max(cur.loadNS, int64(c.o.PollInterval)))
			c.finish(key, cl, cur, nil)
			return
		default:
			// The copy is past serving and another instance refreshes:
			// load here (without filling) rather than answer nothing.
		}
	}
	var rn *renew.Renewer
	if token != "" {
		rn = c.renewLeases(ctx, []string{key}, []string{token})
	}
	e, err := c.loadValue(ctx, key, id, loader)
	rn.Stop()
	if err != nil {
		if token != "" {
			c.release(ctx, key, token)
		}
		c.finish(key, cl, nil, err)
		return
	}
	if token != "" && !c.fill(ctx, []string{key}, []string{token}, []*entry[V]{e})[0] {
		c.finish(key, cl, e, nil) // the callers asked before the Set or Delete that voided the fill
		return
	}
	c.keep(key, cl, e)
	c.finish(key, cl, e, nil)
}

// finish ends a load: it takes the call out of the in-flight map first, so
// a Get that comes after sees the L1 (or loads again after an error)
// instead of joining a call that is over, then delivers to its waiters.
// Later calls are no-ops.
func (c *Cache[V]) finish(key string, cl *call[V], e *entry[V], err error) {
	c.mu.Lock()
	if c.calls[key] == cl {
		delete(c.calls, key)
	}
	c.mu.Unlock()
	cl.deliver(e, err)
}

// keep puts e in the L1 unless a Set or Delete of key came during its
// load.
func (c *Cache[V]) keep(key string, cl *call[V], e *entry[V]) {
	c.mu.Lock()
	if !cl.superseded {
		c.l1.Set(key, e)
	}
	c.mu.Unlock()
}

// fromStore is the L2 half of a load. It returns a fresh entry from the
// Store (or one another instance filled while this one waited); or the
// lease token to load and fill with ("" to load without filling: the
// Store is down or its lease holder vanished); ok false means another
// instance is refreshing a key this one can keep serving. A stale Store
// value is delivered to the waiting callers at once.
func (c *Cache[V]) fromStore(ctx context.Context, key string, mode loadMode, cur *entry[V], cl *call[V], pre *storeRead[V]) (e *entry[V], token string, ok bool) {
	// usable says whether a Store value ends this load: a fresh one, and
	// for an early refresh one newer than the copy being refreshed.
	usable := func(se *entry[V]) bool {
		return se != nil && c.now() < se.recFresh && (mode != modeEarly || se.recFresh > cur.recFresh)
	}
	var recs []*entry[V]
	var err error
	if pre != nil {
		recs, err = pre.recs, pre.err
	} else {
		recs, err = c.storeGet(ctx, []string{key})
	}
	if err != nil {
		return nil, "", true
	}
	if se := recs[0]; usable(se) {
		return se, "", true
	} else if se != nil && mode == modeMiss && c.now() < se.hard && !se.negative {
		c.st.staleServed.Add(1)
		c.keep(key, cl, se)
		cl.deliver(se, nil)
		mode = modeStale
	}
	tokens, err := c.lease(ctx, []string{key})
	if err != nil {
		return nil, "", true
	}
	if tokens[0] != "" {
		return c.recheck(ctx, key, tokens[0], usable)
	}
	if mode != modeMiss {
		c.st.leaseBusy.Add(1)
		return nil, "", false
	}
	return c.waitFill(ctx, key, usable)
}

// recheck closes the race between reading the Store and winning the
// lease: the previous holder may have filled in between. With a usable
// value there, the lease goes back and the value is used.
func (c *Cache[V]) recheck(ctx context.Context, key, token string, usable func(*entry[V]) bool) (*entry[V], string, bool) {
	recs, err := c.storeGet(ctx, []string{key})
	if err == nil && usable(recs[0]) {
		c.release(ctx, key, token)
		return recs[0], "", true
	}
	c.st.leasesWon.Add(1)
	return nil, token, true
}

// waitFill waits for the lease holder's fill, polling the Store, and
// takes the lease over if the holder gives it back or it expires. After
// fillWait (or with the Store failing) it returns no token: load without
// filling.
func (c *Cache[V]) waitFill(ctx context.Context, key string, usable func(*entry[V]) bool) (*entry[V], string, bool) {
	c.st.leaseWaits.Add(1)
	start := c.now()
	deadline := start + int64(c.fillWait())
	wait := c.o.PollInterval
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, "", true
		case <-t.C:
		}
		recs, err := c.storeGet(ctx, []string{key})
		if err != nil {
			return nil, "", true
		}
		// A value fresh when the wait began (so filled during it) ends the
		// wait even if it is stale by now: with a TTL shorter than the
		// polls, waiting for a fresh one could last the whole fillWait.
		if se := recs[0]; usable(se) || se != nil && se.recFresh > start && c.now() < se.hard {
			return se, "", true
		}
		tokens, err := c.lease(ctx, []string{key})
		if err != nil {
			return nil, "", true
		}
		if tokens[0] != "" {
			return c.recheck(ctx, key, tokens[0], usable)
		}
		if c.now() >= deadline {
			c.st.leaseTimeouts.Add(1)
			return nil, "", true
		}
		wait = min(wait*3/2, 100*time.Millisecond)
	}
}

// loadValue runs loader under the load cap and builds the entry; a
// loader's ErrNotFound becomes a negative entry.
func (c *Cache[V]) loadValue(ctx context.Context, key, id string, loader Loader[V]) (*entry[V], error) {
	if c.sem != nil {
		select {
		case c.sem <- struct{}{}:
			defer func() { <-c.sem }()
		case <-ctx.Done():
			return nil, fmt.Errorf("cache: waiting for a load slot for %q: %w", key, ctx.Err())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.LoadTimeout)
	defer cancel()
	c.st.loads.Add(1)
	start := c.now()
	v, err := c.call(ctx, id, loader)
	now := c.now()
	switch {
	case errors.Is(err, ErrNotFound):
		return c.negativeEntry(now), nil
	case err != nil:
		c.st.loadErrors.Add(1)
		c.o.Logger.Warn("cache: load failed", slog.String("key", key), slog.Any("error", err))
		return nil, err
	}
	e := c.newEntry(v, now)
	e.loadNS = now - start
	return e, nil
}

func (c *Cache[V]) negativeEntry(now int64) *entry[V] {
	until := now + int64(c.o.NegativeTTL)
	return &entry[V]{negative: true, fresh: until, recFresh: until, hard: until}
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

func (c *Cache[V]) newEntry(v V, now int64) *entry[V] {
	ttl := c.o.TTL
	if c.o.Jitter > 0 {
		ttl -= time.Duration(float64(ttl) * c.o.Jitter * c.o.Rand())
	}
	fresh := now + int64(ttl)
	e := &entry[V]{val: v, fresh: fresh, recFresh: fresh, hard: fresh + int64(c.o.StaleFor)}
	if c.store != nil {
		e.fresh = min(fresh, now+int64(c.o.L1TTL))
	}
	return e
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
	c.l1.Set(key, e)
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
	if err == nil {
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
// more to deliver what is pending, and logs what it could not) and the
// L1's periodic expiry sweep. It is idempotent. The
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
	// meanwhile): each dropped the whole L1.
	Resubscribes uint64
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
		FillsRefused: s.fillsRefused.Load(), CodecErrors: s.codecErrors.Load(), Invalidations: s.invalidations.Load(), Resubscribes: s.resubscribes.Load(),
		PendingInvalidations: int(c.kept.n.Load()), DelayedInvalidations: s.pendingDelivered.Load(), PendingOverflows: s.pendingOverflows.Load(),
		Circuit: c.br.State(), Entries: c.l1.EstimatedSize()}
}
