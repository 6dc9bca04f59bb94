package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/valuecall"
	"github.com/scalekit-go/scalekit/priority"
)

// ErrThrottled is returned, without calling the function, for a call the
// Throttler refused locally.
var ErrThrottled = errors.New("throttle: refused locally, the backend is refusing requests")

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = errors.New("throttle: invalid")

// buckets is how many buckets the window has.
const buckets = 10

// Options configures New. The zero value works: K = 2 over a 2-minute
// window, every error a refusal.
type Options struct {
	// Name identifies the throttler in logs and metrics. Default: "".
	Name string
	// K is the multiplier of accepts in the formula: the backend gets
	// about K times the requests it accepts. In [1, 100]. Default: 2.
	K float64
	// Window is how far back requests and accepts are counted, in 10
	// buckets; at least 10ms. Default: 2m.
	Window time.Duration
	// Rejected decides whether an error means the backend refused the
	// request (overloaded, unavailable, out of quota). Default: every
	// error does. Whatever it says, an error after the caller's own ctx
	// ended counts as accepted.
	Rejected func(error) bool
	// Clock replaces the system clock (see package clock); nil is the real
	// time.
	Clock clock.Clock
	// Logger receives local refusals, at Debug level. Default: discard.
	Logger *slog.Logger

	// rand returns a uniform number in [0, 1); the package's tests set it.
	// Default: math/rand/v2's Float64.
	rand func() float64
}

func (o Options) withDefaults() (Options, error) {
	if o.K == 0 {
		o.K = 2
	}
	if o.Window == 0 {
		o.Window = 2 * time.Minute
	}
	if o.rand == nil {
		o.rand = rand.Float64
	}
	o.Logger = logx.Or(o.Logger)
	switch {
	case !(o.K >= 1 && o.K <= 100):
		return o, fmt.Errorf("%w: Options.K must be in [1, 100] (0: 2), got %v", ErrInvalid, o.K)
	case o.Window < 10*time.Millisecond:
		return o, fmt.Errorf("%w: Options.Window must be >= 10ms (0: 2m), got %v", ErrInvalid, o.Window)
	}
	return o, nil
}

// bucket counts one tenth of the window.
type bucket struct {
	index             int64 // the time / bucket width it counts; -1: never used
	requests, accepts uint64
}

// Throttler refuses calls locally as the package doc says. It is safe for
// concurrent use.
type Throttler struct {
	o     Options
	width int64 // ns per bucket

	mu      sync.Mutex
	buckets [buckets]bucket

	calls, rejected atomic.Uint64
	throttled       [len(priority.Classes)]atomic.Uint64
}

// New returns a Throttler, or an error naming the bad option.
func New(o Options) (*Throttler, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Throttler{o: o, width: int64(o.Window / buckets)}
	for i := range t.buckets {
		t.buckets[i].index = -1
	}
	return t, nil
}

// Name is Options.Name.
func (t *Throttler) Name() string { return t.o.Name }

// k is K for class c.
func (t *Throttler) k(c priority.Class) float64 {
	switch c {
	case priority.Sheddable:
		return max(1, t.o.K/2)
	case priority.Critical:
		return 2 * t.o.K
	}
	return t.o.K
}

// probability is the formula.
func probability(requests, accepts uint64, k float64) float64 {
	return max(0, (float64(requests)-k*float64(accepts))/(float64(requests)+1))
}

// bucketLocked returns the bucket of now, emptied if it held an older
// time, and the sums over the window ending at now.
func (t *Throttler) bucketLocked(now time.Time) (b *bucket, requests, accepts uint64) {
	idx := now.UnixNano() / t.width
	b = &t.buckets[uint64(idx)%buckets]
	if b.index != idx {
		*b = bucket{index: idx}
	}
	for i := range t.buckets {
		x := &t.buckets[i]
		if x.index > idx-buckets && x.index <= idx {
			requests += x.requests
			accepts += x.accepts
		}
	}
	return b, requests, accepts
}

// Probability is the probability that a call of class c is refused now.
func (t *Throttler) Probability(c priority.Class) float64 {
	t.mu.Lock()
	_, req, acc := t.bucketLocked(clock.Now(t.o.Clock))
	t.mu.Unlock()
	return probability(req, acc, t.k(c))
}

// Do calls fn unless the Throttler refuses the call locally
// (ErrThrottled), and counts whether the backend accepted it. The class
// of the call is priority.From(ctx).
func (t *Throttler) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	t.calls.Add(1)
	class := priority.From(ctx)
	t.mu.Lock()
	b, req, acc := t.bucketLocked(clock.Now(t.o.Clock))
	p := probability(req, acc, t.k(class))
	if p > 0 && t.o.rand() < p {
		b.requests++ // a local refusal is a request not accepted
		t.mu.Unlock()
		t.throttled[class.Index()].Add(1)
		if t.o.Logger.Enabled(ctx, slog.LevelDebug) {
			t.o.Logger.LogAttrs(ctx, slog.LevelDebug, "throttle: refused locally", slog.String("throttler", t.o.Name),
				slog.String("class", class.String()), slog.Float64("probability", p))
		}
		return ErrThrottled
	}
	t.mu.Unlock()
	err := fn(ctx)
	accepted := err == nil || ctx.Err() != nil || (t.o.Rejected != nil && !t.o.Rejected(err))
	if !accepted {
		t.rejected.Add(1)
	}
	t.mu.Lock()
	b, _, _ = t.bucketLocked(clock.Now(t.o.Clock))
	b.requests++
	if accepted {
		b.accepts++
	}
	t.mu.Unlock()
	return err
}

// DoValue is Do for calls that return a value.
func DoValue[T any](ctx context.Context, t *Throttler, fn func(ctx context.Context) (T, error)) (T, error) {
	return valuecall.Do(ctx, t.Do, fn)
}

// Stats is a snapshot of a Throttler.
type Stats struct {
	// Calls counts calls to Do.
	Calls uint64
	// Throttled counts calls refused locally, by class.
	Throttled priority.Counts
	// Rejected counts calls the backend refused (Options.Rejected).
	Rejected uint64
	// Requests and Accepts are the window's counts now; Probability the
	// refusal probability of a default call now.
	Requests, Accepts uint64
	Probability       float64
}

// Stats returns a snapshot.
func (t *Throttler) Stats() Stats {
	t.mu.Lock()
	_, req, acc := t.bucketLocked(clock.Now(t.o.Clock))
	t.mu.Unlock()
	return Stats{
		Calls: t.calls.Load(), Rejected: t.rejected.Load(),
		Throttled: priority.Counts{
			Sheddable: t.throttled[priority.Sheddable.Index()].Load(),
			Default:   t.throttled[priority.Default.Index()].Load(),
			Critical:  t.throttled[priority.Critical.Index()].Load(),
		},
		Requests: req, Accepts: acc, Probability: probability(req, acc, t.o.K),
	}
}
