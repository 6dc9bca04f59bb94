package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/httpx"
	"github.com/scalekit-go/scalekit/internal/ratelimitx"
)

// ConcurrencyLimiter admits at most a fixed number of holders per key at
// once. The in-process one is Concurrency; ratelimitredis has one whose
// slots are leases that expire if a holder dies.
type ConcurrencyLimiter interface {
	// Acquire takes a slot for key, or returns a *LimitedError (errors.Is
	// ErrLimited) at once when every slot is held, whose RetryAfter is
	// how long until a slot is expected to free: short (the limiters of
	// this module say 100ms before any hold was timed, then the mean hold
	// over the holders), never the time a live holder could keep it.
	// release gives the slot back; calling it more than once is harmless.
	Acquire(ctx context.Context, key string) (release func(), err error)
}

// ConcurrencyOptions configures NewConcurrency.
type ConcurrencyOptions struct {
	// Limit is the most holders one key may have at once; required, >= 1.
	Limit int
	// Clock replaces the system clock (see package clock); nil is the real
	// time. It times how long slots are held, for the RetryAfter of a
	// refusal.
	Clock clock.Clock
}

// Concurrency is an in-process ConcurrencyLimiter. Memory is proportional
// to the keys in use right now: a key with no holders is forgotten. A
// refusal's RetryAfter is the expected wait for a slot: the limiter's
// moving average of hold durations (each new hold weighs 1/8; one average
// for all keys, since a key with no holders keeps nothing) over the key's
// Limit holders, at least 1ms, or 100ms before any hold was timed.
type Concurrency struct {
	limit    int
	clk      clock.Clock
	meanHold atomic.Int64 // ns, 0: nothing measured
	seed     maphash.Seed
	shards   [32]concShard

	acquired, rejected atomic.Uint64
}

type concShard struct {
	mu sync.Mutex
	n  map[string]int
	_  [40]byte
}

// NewConcurrency returns a Concurrency limiter, or an error naming the
// option to fix.
func NewConcurrency(opts ConcurrencyOptions) (*Concurrency, error) {
	if opts.Limit < 1 {
		return nil, fmt.Errorf("%w: ConcurrencyOptions.Limit must be >= 1, got %d", ErrInvalid, opts.Limit)
	}
	c := &Concurrency{limit: opts.Limit, clk: opts.Clock, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].n = make(map[string]int)
	}
	return c, nil
}

// Acquire takes a slot for key; see ConcurrencyLimiter.
func (c *Concurrency) Acquire(_ context.Context, key string) (release func(), err error) {
	if key == "" {
		return nil, fmt.Errorf("%w: key must not be empty", ErrInvalid)
	}
	s := &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
	s.mu.Lock()
	held := s.n[key]
	if held >= c.limit {
		s.mu.Unlock()
		c.rejected.Add(1)
		return nil, &LimitedError{Key: key, Decision: Decision{Limit: Limit{Name: "concurrency", Rate: c.limit, Burst: c.limit},
			RetryAfter: ratelimitx.ConcurrencyRetryAfter(time.Duration(c.meanHold.Load()), held)}}
	}
	if held == 0 {
		key = strings.Clone(key)
	}
	s.n[key] = held + 1
	s.mu.Unlock()
	c.acquired.Add(1)
	start := clock.Now(c.clk)
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		c.timeHold(clock.Now(c.clk).Sub(start))
		s.mu.Lock()
		if s.n[key] <= 1 {
			delete(s.n, key)
		} else {
			s.n[key]--
		}
		s.mu.Unlock()
	}, nil
}

// timeHold folds one hold into the moving average (ratelimitx.NextMeanHold).
func (c *Concurrency) timeHold(hold time.Duration) {
	for {
		old := c.meanHold.Load()
		if c.meanHold.CompareAndSwap(old, int64(ratelimitx.NextMeanHold(time.Duration(old), hold))) {
			return
		}
	}
}

// InFlight is how many slots key holds now.
func (c *Concurrency) InFlight(key string) int {
	s := &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[key]
}

// ConcurrencyStats is a snapshot of a Concurrency limiter's counters.
type ConcurrencyStats struct {
	Acquired, Rejected uint64
}

// Stats returns a snapshot of the counters.
func (c *Concurrency) Stats() ConcurrencyStats {
	return ConcurrencyStats{Acquired: c.acquired.Load(), Rejected: c.rejected.Load()}
}

// AdaptiveOptions configures NewAdaptive. The zero value works.
type AdaptiveOptions struct {
	// Initial is the starting in-flight limit. Default: 20.
	Initial int
	// Min and Max bound the limit. Defaults: 1 and 1000.
	Min, Max int
	// TargetLatency is the latency above which a completed call counts as a
	// sign of overload. Default: 100ms.
	TargetLatency time.Duration
	// Backoff multiplies the limit on overload, in (0, 1). Default: 0.9.
	Backoff float64
	// Clock replaces the system clock (see package clock); nil is the real
	// time. It measures the calls' latency.
	Clock clock.Clock
}

// Adaptive is a load-shedding concurrency limit that finds its own level
// with AIMD, as TCP does: a call that finishes under TargetLatency without
// an overload error raises the limit by 1/limit (so by one per limit's
// worth of such calls), but only if, when it was admitted, at least half
// the limit was in flight (itself included), the rule of Netflix's
// concurrency-limits: a fast call at low concurrency says nothing about
// what a higher limit would do, so the limit follows demand (it settles
// between the peak in-flight count and twice that) instead of drifting to
// Max during healthy traffic and letting the first seconds of an overload
// through. A slow or overloaded call cuts the limit by Backoff, at most
// once per TargetLatency so one burst of slow calls is one cut. Calls over
// the limit are rejected at once (shed) instead of queueing. It is safe for
// concurrent use.
type Adaptive struct {
	o AdaptiveOptions

	mu       sync.Mutex
	limit    float64
	inflight int
	lastCut  time.Time

	admitted, shed, cuts atomic.Uint64
}

// NewAdaptive returns an Adaptive limit, or an error naming the option to
// fix.
func NewAdaptive(o AdaptiveOptions) (*Adaptive, error) {
	if o.Min == 0 {
		o.Min = 1
	}
	if o.Max == 0 {
		o.Max = 1000
	}
	if o.Initial == 0 {
		o.Initial = min(20, o.Max)
	}
	if o.TargetLatency == 0 {
		o.TargetLatency = 100 * time.Millisecond
	}
	if o.Backoff == 0 {
		o.Backoff = 0.9
	}
	switch {
	case o.Min < 1:
		return nil, fmt.Errorf("%w: AdaptiveOptions.Min must be >= 1, got %d", ErrInvalid, o.Min)
	case o.Max < o.Min:
		return nil, fmt.Errorf("%w: AdaptiveOptions.Max must be >= Min (%d), got %d", ErrInvalid, o.Min, o.Max)
	case o.Initial < o.Min || o.Initial > o.Max:
		return nil, fmt.Errorf("%w: AdaptiveOptions.Initial must be in [Min, Max] = [%d, %d], got %d", ErrInvalid, o.Min, o.Max, o.Initial)
	case o.TargetLatency < 0:
		return nil, fmt.Errorf("%w: AdaptiveOptions.TargetLatency must be > 0, got %v", ErrInvalid, o.TargetLatency)
	case o.Backoff <= 0 || o.Backoff >= 1:
		return nil, fmt.Errorf("%w: AdaptiveOptions.Backoff must be in (0, 1), got %v", ErrInvalid, o.Backoff)
	}
	return &Adaptive{o: o, limit: float64(o.Initial)}, nil
}

// Acquire admits a call or sheds it with a *LimitedError (errors.Is
// ErrLimited) when the in-flight limit is reached. release must be called
// when the call ends, with overloaded true when the call failed in a way
// that signals overload (a timeout, a 503 from downstream); the latency is
// measured between Acquire and release. Only the first call of release
// counts: calling it again does nothing.
func (a *Adaptive) Acquire() (release func(overloaded bool), err error) {
	a.mu.Lock()
	if a.inflight >= int(a.limit) {
		lim := int(a.limit)
		a.mu.Unlock()
		a.shed.Add(1)
		return nil, &LimitedError{Key: "adaptive", Decision: Decision{Limit: Limit{Name: "adaptive", Rate: lim, Burst: lim}, RetryAfter: a.o.TargetLatency}}
	}
	a.inflight++
	// Raising the limit is only justified by a call that ran while the
	// limit was at least half used.
	busy := 2*a.inflight >= int(a.limit)
	a.mu.Unlock()
	a.admitted.Add(1)
	start := clock.Now(a.o.Clock)
	var once atomic.Bool
	return func(overloaded bool) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		now := clock.Now(a.o.Clock)
		slow := now.Sub(start) > a.o.TargetLatency
		a.mu.Lock()
		defer a.mu.Unlock()
		a.inflight--
		if overloaded || slow {
			if now.Sub(a.lastCut) >= a.o.TargetLatency {
				a.limit = max(float64(a.o.Min), a.limit*a.o.Backoff)
				a.lastCut = now
				a.cuts.Add(1)
			}
			return
		}
		if busy {
			a.limit = min(float64(a.o.Max), a.limit+1/a.limit)
		}
	}, nil
}

// Limit is the current in-flight limit.
func (a *Adaptive) Limit() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.limit)
}

// AdaptiveStats is a snapshot of an Adaptive limit.
type AdaptiveStats struct {
	Limit, InFlight      int
	Admitted, Shed, Cuts uint64
}

// Stats returns a snapshot.
func (a *Adaptive) Stats() AdaptiveStats {
	a.mu.Lock()
	lim, in := int(a.limit), a.inflight
	a.mu.Unlock()
	return AdaptiveStats{Limit: lim, InFlight: in, Admitted: a.admitted.Load(), Shed: a.shed.Load(), Cuts: a.cuts.Load()}
}

// Middleware wraps next to shed load with a: over the limit it answers
// 503 with Retry-After: 1 instead of queueing; a response with status 503
// or 504 from next counts as overload.
func (a *Adaptive) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := a.Acquire()
		if err != nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "overloaded, retry later", http.StatusServiceUnavailable)
			return
		}
		sw, ww := httpx.Wrap(w)
		defer func() {
			release(sw.Status() == http.StatusServiceUnavailable || sw.Status() == http.StatusGatewayTimeout)
		}()
		next.ServeHTTP(ww, r)
	})
}
