package cache

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
)

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
	// MaxEntries bounds the in-process cache (W-TinyLFU eviction). An
	// entry past serving (TTL + StaleFor) is never served, and leaves the
	// L1 one to about three seconds later (the L1's own expiry runs on a
	// coarse clock); until then it counts here and in Stats.Entries.
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
	// Default: TTL/10; TTL with a Store whose server invalidates the L1
	// copies itself (a Tracker: cacheredis with Options.Tracking), when
	// its subscription holds at New.
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
	// Clock replaces the system clock (see package clock); nil is the real time.
	Clock clock.Clock
	// Logger receives load failures, Store failures (Debug) and codec
	// errors, and at Debug each load ("cache: loaded"), logged with the
	// caller's ctx where there is one (so a requestid.NewLogHandler logger
	// adds its request_id). Default: discard.
	Logger *slog.Logger
	// Tracer sees each Get and GetMany: the L1 hits, and the loads
	// (where each key's answer came from: the Store, a stale Store value,
	// this instance's loader under a lease or not, another instance's
	// fill). The otel module's Tracer.Cache makes spans of them.
	// Default: none (one nil check per call).
	Tracer Tracer

	// random returns a uniform float in [0, 1) for jitter and XFetch
	// (math/rand/v2; tests set it through export_test.go).
	random func() float64
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
	if o.random == nil {
		o.random = rand.Float64
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
