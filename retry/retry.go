package retry

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
	"github.com/scalekit-go/scalekit/internal/stripe"
	"github.com/scalekit-go/scalekit/timeout"
)

// defaultMaxRetryAfter is Options.MaxRetryAfter's default.
const defaultMaxRetryAfter = 30 * time.Second

// Options configures New. The zero value works: 3 attempts, exponential
// backoff with full jitter from 100ms capped at 10s, a Retry-After of at
// most 30s honoured, every error but Permanent ones retried, no budget.
type Options struct {
	// MaxAttempts is the most attempts per call, the first included; 1
	// never retries. Default: 3.
	MaxAttempts int
	// MaxElapsed gives up when the next attempt would start later than
	// this after the first one (computed without overflow: a wait of any
	// length, math.MaxInt64 included, that passes it gives up at once).
	// Default: 0, no limit (the ctx deadline still applies).
	MaxElapsed time.Duration
	// Backoff gives the wait before each retry. Default: Exponential{}
	// (full jitter, base 100ms, cap 10s).
	Backoff Backoff
	// MaxRetryAfter caps the wait an AfterError (a server's
	// Retry-After) may ask for: when an attempt asks for a longer one, Do
	// gives up at once (ReasonRetryAfter) with that attempt's error rather
	// than sleep that long, or retry before the server said it would
	// answer. Transport applies the same cap to the Retry-After header.
	// Must be >= 0. Default: 30s.
	MaxRetryAfter time.Duration
	// AttemptTimeout bounds each attempt: it runs with a ctx that ends
	// after AttemptTimeout, and an attempt that fails past it returns a
	// *timeout.Error of Kind Attempt (errors.Is(err, timeout.ErrAttempt)),
	// which is retried like any error (Retryable sees it). The attempt
	// runs on the calling goroutine: one that ignores its ctx is waited
	// for (package timeout). Transport applies it per try, the response
	// body included. Must be >= 0. Default: 0, none.
	AttemptTimeout time.Duration
	// Timeout bounds the whole call, attempts and waits included: Do runs
	// under a ctx that ends after it, and when that ends the retries (an
	// attempt failing past it, or a wait that would end after it), Do
	// returns a *timeout.Error of Kind Total (errors.Is(err,
	// timeout.ErrTotal)) wrapping what it would have returned. Transport
	// applies it to the round trip, the response body included. Must be
	// >= 0. Default: 0, none (the ctx deadline still applies).
	Timeout time.Duration
	// Retryable decides whether an error is worth another attempt.
	// Default: every error. Whatever it says, a Permanent error is not
	// retried, and neither is anything once the caller's ctx has ended.
	Retryable func(error) bool
	// Budget, when set, pays for the retries (see Budget): share one per
	// dependency among the retriers calling it. Default: nil, no budget.
	Budget *Budget
	// OnRetry is called before each wait, on the calling goroutine: it
	// must not block (it delays the retry). Default: nil.
	OnRetry func(ctx context.Context, ev Event)
	// Clock replaces the system clock (see package clock); nil is the real
	// time. It measures MaxElapsed; waits use the runtime's timers (test
	// them in a testing/synctest bubble).
	Clock clock.Clock
	// Logger receives give-ups, at Debug level. Default: discard.
	Logger *slog.Logger

	// rand returns a uniform random number in [0, 1) for the jitter; it
	// must be safe for concurrent use. Default: math/rand/v2's Float64
	// (per-thread state, no lock). The package's tests set it.
	rand func() float64
}

// Event describes a retry about to happen, for Options.OnRetry.
type Event struct {
	// Attempt is the attempt that failed, from 1.
	Attempt int
	// Err is its error.
	Err error
	// Wait is how long Do waits before the next attempt.
	Wait time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.Backoff == nil {
		o.Backoff = Exponential{}
	}
	if o.MaxRetryAfter == 0 {
		o.MaxRetryAfter = defaultMaxRetryAfter
	}
	if o.rand == nil {
		o.rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.MaxAttempts < 1:
		return o, fmt.Errorf("%w: Options.MaxAttempts must be >= 1 (0: 3), got %d", ErrInvalid, o.MaxAttempts)
	case o.MaxElapsed < 0:
		return o, fmt.Errorf("%w: Options.MaxElapsed must be >= 0 (0: no limit), got %v", ErrInvalid, o.MaxElapsed)
	case o.MaxRetryAfter < 0:
		return o, fmt.Errorf("%w: Options.MaxRetryAfter must be >= 0 (0: 30s), got %v", ErrInvalid, o.MaxRetryAfter)
	case o.AttemptTimeout < 0:
		return o, fmt.Errorf("%w: Options.AttemptTimeout must be >= 0 (0: none), got %v", ErrInvalid, o.AttemptTimeout)
	case o.Timeout < 0:
		return o, fmt.Errorf("%w: Options.Timeout must be >= 0 (0: none), got %v", ErrInvalid, o.Timeout)
	}
	if err := validateBackoff(o.Backoff); err != nil {
		return o, err
	}
	return o, nil
}

// Retrier runs calls with retries. A call that succeeds at once costs a
// few atomic operations and, without a Budget, no allocation. It is safe
// for concurrent use; a nil *Retrier behaves as New(Options{}).
type Retrier struct {
	o Options

	attempt, total *timeout.Timeout // nil: none

	calls                       stripe.Counter // bumped on every call: striped
	retries, exhausted, refused atomic.Uint64
	notRetried                  atomic.Uint64
}

// New returns a Retrier, or an error naming the invalid option.
func New(o Options) (*Retrier, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Retrier{o: o}
	if o.AttemptTimeout > 0 {
		r.attempt, _ = timeout.New(timeout.Options{Timeout: o.AttemptTimeout, Kind: timeout.Attempt, Logger: o.Logger})
	}
	if o.Timeout > 0 {
		r.total, _ = timeout.New(timeout.Options{Timeout: o.Timeout, Kind: timeout.Total, Logger: o.Logger})
	}
	return r, nil
}

var defaultRetrier = sync.OnceValue(func() *Retrier {
	r, _ := New(Options{})
	return r
})

// Do runs fn with the default Retrier, New(Options{}): 3 attempts, full
// jitter backoff from 100ms, no budget.
func Do(ctx context.Context, fn func(ctx context.Context) error) error {
	return defaultRetrier().Do(ctx, fn)
}

// DoValue is Do for calls that return a value: it returns the value of the
// successful attempt. A nil r is the default Retrier.
func DoValue[T any](ctx context.Context, r *Retrier, fn func(ctx context.Context) (T, error)) (T, error) {
	var out T
	err := r.Do(ctx, func(ctx context.Context) error {
		v, err := fn(ctx)
		if err == nil {
			out = v
		}
		return err
	})
	return out, err
}

// nestedKey marks, in the ctx given to attempts, that they run inside a
// retry loop with a Budget, so that loops nested in it deposit nothing.
type nestedKey struct{}

// enterBudget deposits for a top-level call and marks ctx; nested calls
// neither deposit nor allocate.
func enterBudget(ctx context.Context, b *Budget) context.Context {
	if ctx.Value(nestedKey{}) != nil {
		return ctx
	}
	b.Deposit()
	return context.WithValue(ctx, nestedKey{}, struct{}{})
}

// Do calls fn until it succeeds, returns an error not worth retrying, or a
// limit is reached, waiting Backoff (at least an AfterError's After)
// between attempts. It returns:
//
//   - nil when an attempt succeeds;
//   - a Permanent error as is, at once;
//   - an error Retryable rejects, as is, at once;
//   - the first attempt's error as is, when ctx serves a request that is
//     itself a retry (WithRetried, Middleware): one layer retries;
//   - when ctx has ended: the attempt's error as is if it is ctx's own
//     (context.Canceled or DeadlineExceeded), else an *ExhaustedError
//     with ReasonContext, which also matches context.Cause(ctx). Either
//     way errors.Is(err, ctx.Err()) holds. A wait in progress ends as
//     soon as ctx does;
//   - otherwise an *ExhaustedError (errors.Is(err, ErrExhausted)), which
//     unwraps to the last attempt's error: after MaxAttempts attempts
//     (ReasonMaxAttempts), when the next attempt would start after
//     MaxElapsed (ReasonMaxElapsed) or after the ctx deadline
//     (ReasonDeadline: Do returns at once rather than sleep in vain),
//     when an AfterError asks for more than MaxRetryAfter
//     (ReasonRetryAfter), or when the Budget refuses the retry
//     (ReasonBudget);
//   - with Options.Timeout, when it ends the retries: a *timeout.Error
//     of Kind Total (errors.Is(err, timeout.ErrTotal)) wrapping what Do
//     would have returned. An attempt cut by Options.AttemptTimeout
//     fails with a *timeout.Error of Kind Attempt, retried like any error.
//
// The first attempt always runs, even with ctx already done; fn must
// respect its ctx.
func (r *Retrier) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if r == nil {
		r = defaultRetrier()
	}
	if r.total != nil || r.attempt != nil {
		return r.timed(ctx, fn)
	}
	return r.run(ctx, fn)
}

// timed is Do with a total or attempt timeout.
func (r *Retrier) timed(ctx context.Context, fn func(ctx context.Context) error) error {
	if r.total != nil {
		return r.total.Do(ctx, func(ctx context.Context) error { return r.do(ctx, fn, r.attempt) })
	}
	return r.do(ctx, fn, r.attempt)
}

// do is run with attempt (nil: none) as the per-attempt timeout.
func (r *Retrier) do(ctx context.Context, fn func(ctx context.Context) error, attempt *timeout.Timeout) error {
	if attempt != nil {
		inner := fn
		fn = func(ctx context.Context) error { return attempt.Do(ctx, inner) }
	}
	return r.run(ctx, fn)
}

// run is Do without timeouts: the first attempt, then retry.
func (r *Retrier) run(ctx context.Context, fn func(ctx context.Context) error) error {
	r.calls.Add(1)
	if r.o.Budget != nil {
		ctx = enterBudget(ctx, r.o.Budget)
	}
	var start time.Time
	if r.o.MaxElapsed > 0 {
		start = clock.Now(r.o.Clock)
	}
	err := fn(ctx)
	if err == nil {
		return nil
	}
	return r.retry(ctx, fn, err, start)
}

// retry is Do after a failed first attempt.
func (r *Retrier) retry(ctx context.Context, fn func(ctx context.Context) error, err error, start time.Time) error {
	var prev time.Duration
	for attempt := 1; ; attempt++ {
		if err == nil {
			return nil
		}
		if IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return err // the caller's own cancellation: not a failure to retry
			}
			return r.giveUp(ctx, attempt, ReasonContext, err, ctx.Err())
		}
		if r.o.Retryable != nil && !r.o.Retryable(err) {
			return err
		}
		if attempt == 1 && IsRetried(ctx) {
			r.notRetried.Add(1)
			return err // serving a retry: the client retries, not this layer
		}
		if attempt >= r.o.MaxAttempts {
			return r.giveUp(ctx, attempt, ReasonMaxAttempts, err, nil)
		}
		wait := max(0, r.o.Backoff.Next(attempt, prev, r.o.rand()))
		prev = wait
		if ra := (*AfterError)(nil); errors.As(err, &ra) {
			limit := r.o.MaxRetryAfter
			if c := (*cappedRetryAfter)(nil); errors.As(err, &c) {
				limit = c.limit // a Transport with its own MaxRetryAfter
			}
			if ra.After > limit {
				return r.giveUp(ctx, attempt, ReasonRetryAfter, err, nil)
			}
			wait = max(wait, ra.After)
		}
		// elapsed+wait > MaxElapsed, written so that it cannot overflow:
		// MaxElapsed > 0 and elapsed >= 0 (a clock gone back counts as 0).
		if r.o.MaxElapsed > 0 && wait > r.o.MaxElapsed-max(0, clock.Now(r.o.Clock).Sub(start)) {
			return r.giveUp(ctx, attempt, ReasonMaxElapsed, err, nil)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return r.giveUp(ctx, attempt, ReasonDeadline, err, context.DeadlineExceeded)
		}
		if r.o.Budget != nil && !r.o.Budget.Withdraw() {
			r.refused.Add(1)
			return r.giveUp(ctx, attempt, ReasonBudget, err, ErrBudgetExhausted)
		}
		r.retries.Add(1)
		if r.o.OnRetry != nil {
			r.o.OnRetry(ctx, Event{Attempt: attempt, Err: err, Wait: wait})
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return r.giveUp(ctx, attempt, ReasonContext, err, ctx.Err())
			case <-t.C:
			}
		}
		err = fn(ctx)
	}
}

func (r *Retrier) giveUp(ctx context.Context, attempts int, reason Reason, last, cause error) error {
	r.exhausted.Add(1)
	if r.o.Logger.Enabled(ctx, slog.LevelDebug) {
		r.o.Logger.LogAttrs(ctx, slog.LevelDebug, "retry: gave up",
			slog.Int("attempts", attempts), slog.String("reason", string(reason)), slog.Any("error", last))
	}
	e := &ExhaustedError{Attempts: attempts, Reason: reason, Last: last, cause: cause}
	if reason == ReasonContext {
		if c := context.Cause(ctx); c != nil && c != cause {
			e.ctxCause = c
		}
	}
	return e
}

// Stats is a snapshot of a Retrier's counters.
type Stats struct {
	// Calls counts calls to Do (and DoValue, Transport round trips).
	Calls uint64
	// Attempts counts attempts made: Calls + Retries.
	Attempts uint64
	// Retries counts attempts after the first.
	Retries uint64
	// Exhausted counts give-ups (*ExhaustedError returned), whatever the
	// Reason.
	Exhausted uint64
	// BudgetRefusals counts the give-ups caused by the Budget.
	BudgetRefusals uint64
	// NotRetried counts failed calls not retried because their ctx serves
	// a request that is itself a retry (WithRetried, Middleware).
	NotRetried uint64
}

// Stats returns a snapshot. A nil r reports the default Retrier.
func (r *Retrier) Stats() Stats {
	if r == nil {
		r = defaultRetrier()
	}
	retries := r.retries.Load()
	calls := r.calls.Load()
	return Stats{Calls: calls, Attempts: calls + retries, Retries: retries, Exhausted: r.exhausted.Load(), BudgetRefusals: r.refused.Load(), NotRetried: r.notRetried.Load()}
}
