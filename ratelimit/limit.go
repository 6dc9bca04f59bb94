package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/internal/pause"
)

// ErrLimited is what a denied event is: Wait returns it (wrapped in a
// *LimitedError) when the wait would pass the ctx deadline, and middleware
// answers 429 for it. Match with errors.Is.
var ErrLimited = errors.New("ratelimit: limited")

// ErrInvalid is wrapped by every error about bad configuration or arguments
// (zero rate, burst < 1, empty key, n < 1, n above a burst).
var ErrInvalid = errors.New("ratelimit: invalid argument")

// LimitedError is a denial with its Decision; errors.Is(err, ErrLimited).
type LimitedError struct {
	Key      string
	Decision Decision
}

// Error says which limit denied the key and when to retry.
func (e *LimitedError) Error() string {
	return fmt.Sprintf("ratelimit: limited: key %q over limit %q, retry after %v", e.Key, e.Decision.Limit.Name, e.Decision.RetryAfter)
}

// Is makes errors.Is(err, ErrLimited) true.
func (e *LimitedError) Is(target error) bool { return target == ErrLimited }

// Limit is one rate: Rate events per Period, with bursts of up to Burst
// events at once. It is a token bucket of Burst tokens refilled at
// Rate/Period, decided with GCRA (one timestamp per key and limit).
type Limit struct {
	// Name identifies the limit in Decisions and in the RateLimit-Policy
	// header. Default: "<rate>/<period>", e.g. "10/1s".
	Name string
	// Rate is how many events are allowed per Period; must be >= 1.
	Rate int
	// Period is the time Rate is spread over. Default: 1s.
	Period time.Duration
	// Burst is how many events may happen at once after an idle spell;
	// must be >= 1 when set. Default: Rate. Burst times Interval (the
	// time a full burst takes to refill, GCRA's tolerance) must be at most
	// 100 years of 365.25 days: NewLocal and ratelimitredis.New refuse a
	// longer one.
	Burst int
}

// PerSecond is Limit{Rate: rate, Period: time.Second, Burst: burst}.
func PerSecond(rate, burst int) Limit {
	return Limit{Rate: rate, Period: time.Second, Burst: burst}
}

// Interval is the time between two events at the sustained rate (the GCRA
// emission interval), Period/Rate.
func (l Limit) Interval() time.Duration { return l.Period / time.Duration(l.Rate) }

// withDefaults fills Period, Burst and Name and validates. i is the limit's
// index, for the error message.
func (l Limit) withDefaults(i int) (Limit, error) {
	if l.Rate < 1 {
		return l, fmt.Errorf("%w: Limits[%d].Rate must be >= 1, got %d", ErrInvalid, i, l.Rate)
	}
	if l.Period == 0 {
		l.Period = time.Second
	}
	if l.Period < 0 {
		return l, fmt.Errorf("%w: Limits[%d].Period must be > 0, got %v", ErrInvalid, i, l.Period)
	}
	if l.Period/time.Duration(l.Rate) < time.Nanosecond {
		return l, fmt.Errorf("%w: Limits[%d] allows more than one event per nanosecond (Rate %d per %v)", ErrInvalid, i, l.Rate, l.Period)
	}
	if l.Burst == 0 {
		l.Burst = l.Rate
	}
	if l.Burst < 1 {
		return l, fmt.Errorf("%w: Limits[%d].Burst must be >= 1, got %d", ErrInvalid, i, l.Burst)
	}
	if int64(l.Burst) > maxTolerance/int64(l.Interval()) {
		return l, fmt.Errorf("%w: Limits[%d]: Burst %d times the interval %v is over 100 years (36525 days), the most a burst may take to refill", ErrInvalid, i, l.Burst, l.Interval())
	}
	if l.Name == "" {
		l.Name = fmt.Sprintf("%d/%v", l.Rate, l.Period)
	}
	return l, nil
}

// Policy is a set of limits checked together: an event is allowed only if
// every limit allows it, and then it counts against all of them.
type Policy []Limit

// Normalize returns a copy of p with defaults filled, or an error naming the
// bad field. An empty policy is an error.
func (p Policy) Normalize() (Policy, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("%w: Limits must hold at least one Limit", ErrInvalid)
	}
	out := make(Policy, len(p))
	seen := map[string]bool{}
	for i, l := range p {
		var err error
		if out[i], err = l.withDefaults(i); err != nil {
			return nil, err
		}
		if seen[out[i].Name] {
			return nil, fmt.Errorf("%w: Limits[%d].Name %q is used twice", ErrInvalid, i, out[i].Name)
		}
		seen[out[i].Name] = true
	}
	return out, nil
}

// MaxBurst is the smallest Burst of the policy: the most events one call
// can ever ask for.
func (p Policy) MaxBurst() int {
	m := p[0].Burst
	for _, l := range p[1:] {
		m = min(m, l.Burst)
	}
	return m
}

// Decision is the outcome of one Allow: whether the events may happen and
// the numbers a client needs (the RateLimit headers are made from it).
type Decision struct {
	// Allowed is true when the events were admitted (and counted).
	Allowed bool
	// Limit is the binding limit: the one that denied, or when allowed the
	// one with the fewest events left.
	Limit Limit
	// Remaining is how many more events Limit admits right now.
	Remaining int
	// ResetAfter is how long until Limit is back to its full burst if no
	// more events come.
	ResetAfter time.Duration
	// RetryAfter is how long to wait before the same request can be
	// admitted; 0 when allowed.
	RetryAfter time.Duration
}

// Limiter decides per key. Implementations are safe for concurrent use; the
// in-process one is Local, the Redis one is in ratelimitredis.
type Limiter interface {
	// AllowN reports whether n events for key may happen now and, if so,
	// counts them. Bad arguments (empty key, n < 1, n above the smallest
	// burst) return an error wrapping ErrInvalid; a backend failure returns
	// its error (what a limiter does then is its own documented choice).
	AllowN(ctx context.Context, key string, n int) (Decision, error)
}

// Wait blocks until n events for key are admitted by l, or fails fast: when
// the next admission would come after ctx's deadline it returns a
// *LimitedError at once instead of sleeping in vain. It returns ctx.Err()
// if ctx ends while waiting, and l's errors as they are. A ctx that has
// already ended admits nothing and spends nothing: Wait returns ctx.Err()
// before asking l (as x/time/rate's Wait does), whatever l's AllowN does
// with an ended ctx.
func Wait(ctx context.Context, l Limiter, key string, n int) (Decision, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Decision{}, err
		}
		d, err := l.AllowN(ctx, key, n)
		if err != nil || d.Allowed {
			return d, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d.RetryAfter {
			return d, &LimitedError{Key: key, Decision: d}
		}
		if !pause.For(ctx.Done(), d.RetryAfter) {
			return d, ctx.Err()
		}
	}
}
