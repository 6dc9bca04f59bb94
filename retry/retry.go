package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/stripe"
)

// ErrExhausted is what every give-up matches: errors.Is(err, ErrExhausted)
// for the *ExhaustedError Do returns when it stops retrying.
var ErrExhausted = errors.New("retry: gave up")

// ErrBudgetExhausted matches a give-up because the retry budget was empty.
var ErrBudgetExhausted = errors.New("retry: retry budget exhausted")

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = errors.New("retry: invalid")

// Reason says why Do stopped.
type Reason string

// The reasons.
const (
	ReasonAttempts Reason = "max attempts"
	ReasonElapsed  Reason = "max elapsed time"
	ReasonDeadline Reason = "the next attempt would pass the ctx deadline"
	ReasonContext  Reason = "ctx ended"
	ReasonBudget   Reason = "retry budget exhausted"
)

// ExhaustedError is returned when Do gives up on a retryable error. It
// matches ErrExhausted, unwraps to the last attempt's error, and for
// ReasonContext and ReasonBudget also to ctx.Err() or ErrBudgetExhausted.
type ExhaustedError struct {
	Attempts int
	Reason   Reason
	Last     error // the last attempt's error
	cause    error // ctx.Err() or ErrBudgetExhausted, if any
}

// Error says how many attempts were made, why it stopped and the last error.
func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("retry: gave up after %d attempt(s) (%s): %v", e.Attempts, e.Reason, e.Last)
}

// Is makes errors.Is(err, ErrExhausted) true.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }

// Unwrap returns the last error and the cause, so errors.Is sees both.
func (e *ExhaustedError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Last, e.cause}
	}
	return []error{e.Last}
}

type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: Do returns it (unwrapped) at
// once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}

// RetryAfterError asks for the next attempt no sooner than After (a
// server's Retry-After); the wait is the longer of it and the backoff.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Options configures New. The zero value works.
type Options struct {
	// MaxAttempts is the most attempts, the first included. Default: 3.
	MaxAttempts int
	// MaxElapsed stops retrying once this much time has passed since the
	// first attempt. Default: 0, no limit (the ctx deadline still applies).
	MaxElapsed time.Duration
	// Backoff gives the wait before each retry. Default: Exponential with
	// full jitter, base 100ms, cap 10s.
	Backoff Backoff
	// Retryable decides whether an error is worth another attempt. Default:
	// every error except Permanent ones and the ctx's own cancellation or
	// deadline.
	Retryable func(error) bool
	// Budget, when set, is drawn from by every retry (see Budget). Share
	// one per downstream dependency. Default: none.
	Budget *Budget
	// OnRetry is called before each wait (attempt is the one that failed).
	// It must not block. Default: none.
	OnRetry func(attempt int, err error, wait time.Duration)
	// Rand returns a uniform float in [0, 1) for jitter. Default:
	// math/rand/v2.
	Rand func() float64
	// Logger receives give-ups. Default: discard.
	Logger *slog.Logger
}

// Retrier runs calls with retries. It is safe for concurrent use.
type Retrier struct {
	o Options

	calls, attempts             stripe.Counter // every call bumps these: striped
	retries, exhausted, refused atomic.Uint64
}

// New returns a Retrier, or an error naming the bad option.
func New(o Options) (*Retrier, error) {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.MaxAttempts < 1 {
		return nil, fmt.Errorf("%w: Options.MaxAttempts must be >= 1, got %d", ErrInvalid, o.MaxAttempts)
	}
	if o.MaxElapsed < 0 {
		return nil, fmt.Errorf("%w: Options.MaxElapsed must be >= 0, got %v", ErrInvalid, o.MaxElapsed)
	}
	if o.Backoff == nil {
		o.Backoff = Exponential{Base: 100 * time.Millisecond, Cap: 10 * time.Second, Jitter: FullJitter}
	}
	if err := validate(o.Backoff); err != nil {
		return nil, err
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Retrier{o: o}, nil
}

type loopKey struct{}

// Do calls fn until it succeeds, returns a non-retryable error, or a limit
// is reached. Waits between attempts follow Backoff (at least a
// RetryAfterError's After) and select on ctx: Do never sleeps past ctx's
// deadline, and returns at once when the next wait would end after it. On a
// give-up it returns an *ExhaustedError; a Permanent error comes back
// unwrapped; success returns nil.
func (r *Retrier) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	r.calls.Add(1)
	// A loop inside another retry loop does not earn retries for its
	// budget: only top-level calls deposit, so nested layers cannot
	// multiply one request into many.
	// (The mark costs an allocation, so only retriers with a budget set it.)
	if r.o.Budget != nil && ctx.Value(loopKey{}) == nil {
		ctx = context.WithValue(ctx, loopKey{}, true)
		r.o.Budget.deposit()
	}
	var start time.Time
	if r.o.MaxElapsed > 0 {
		start = time.Now()
	}
	var prev time.Duration
	for attempt := 1; ; attempt++ {
		r.attempts.Add(1)
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if p := (*permanent)(nil); errors.As(err, &p) {
			return p.err
		}
		if !r.retryable(ctx, err) {
			return err
		}
		giveUp := func(reason Reason, cause error) error {
			r.exhausted.Add(1)
			e := &ExhaustedError{Attempts: attempt, Reason: reason, Last: err, cause: cause}
			r.o.Logger.Debug("retry: giving up", slog.Int("attempts", attempt), slog.String("reason", string(reason)), slog.Any("error", err))
			return e
		}
		if attempt >= r.o.MaxAttempts {
			return giveUp(ReasonAttempts, nil)
		}
		wait := r.o.Backoff.Next(attempt, prev, r.o.Rand())
		prev = wait
		var ra *RetryAfterError
		if errors.As(err, &ra) && ra.After > wait {
			wait = ra.After
		}
		if r.o.MaxElapsed > 0 && time.Since(start)+wait > r.o.MaxElapsed {
			return giveUp(ReasonElapsed, nil)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return giveUp(ReasonDeadline, context.DeadlineExceeded)
		}
		if r.o.Budget != nil && !r.o.Budget.withdraw() {
			r.refused.Add(1)
			return giveUp(ReasonBudget, ErrBudgetExhausted)
		}
		r.retries.Add(1)
		if r.o.OnRetry != nil {
			r.o.OnRetry(attempt, err, wait)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return giveUp(ReasonContext, ctx.Err())
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return giveUp(ReasonContext, ctx.Err())
		}
	}
}

func (r *Retrier) retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return false // our own ctx ended: not the dependency's fault
	}
	if r.o.Retryable != nil {
		return r.o.Retryable(err)
	}
	return true
}

// DoValue is Do for calls that return a value.
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

var (
	defaultOnce sync.Once
	defaultR    *Retrier
)

// Do runs fn with a default Retrier (3 attempts, full-jitter exponential
// backoff from 100ms, no budget).
func Do(ctx context.Context, fn func(ctx context.Context) error) error {
	defaultOnce.Do(func() { defaultR, _ = New(Options{}) })
	return defaultR.Do(ctx, fn)
}

// Stats is a snapshot of a Retrier's counters.
type Stats struct {
	// Calls to Do; Attempts made; Retries (attempts after the first).
	Calls, Attempts, Retries uint64
	// Exhausted counts give-ups; BudgetRefusals those caused by the budget.
	Exhausted, BudgetRefusals uint64
}

// Stats returns a snapshot.
func (r *Retrier) Stats() Stats {
	return Stats{Calls: r.calls.Load(), Attempts: r.attempts.Load(), Retries: r.retries.Load(), Exhausted: r.exhausted.Load(), BudgetRefusals: r.refused.Load()}
}

// BudgetOptions configures NewBudget. The zero value works.
type BudgetOptions struct {
	// Ratio is the retry tokens each top-level call deposits: the share of
	// extra load retries may add. Default: 0.1 (10%).
	Ratio float64
	// MinPerSecond is a floor of retries allowed per second whatever the
	// traffic, so a quiet client can still retry. Default: 10.
	MinPerSecond float64
	// MaxTokens caps the deposited tokens, so a long healthy spell cannot
	// bank an unbounded retry storm. Default: 100.
	MaxTokens float64
	// Now is the clock for the floor's refill. Default: time.Now.
	Now func() time.Time
}

// Budget is a retry budget (Finagle's RetryBudget, gRPC retry throttling):
// a token bucket shared by the retriers calling one dependency. Each
// top-level call deposits Ratio tokens and each retry withdraws one, with a
// floor of MinPerSecond; when it is empty, retries stop and the original
// error returns. A dependency that always fails then sees about (1 + Ratio)
// times the calls, not MaxAttempts times. It is safe for concurrent use.
type Budget struct {
	o BudgetOptions

	// Tokens are kept in integer thousandths so deposits of 0.1 add up
	// exactly.
	ratio, maxT, minPS int64

	mu     sync.Mutex
	tokens int64 // from deposits, milli-tokens
	floor  int64 // from the per-second floor, milli-tokens, up to minPS
	last   time.Time

	deposits, withdrawals, refusals atomic.Uint64
}

// NewBudget returns a Budget, or an error naming the bad option.
func NewBudget(o BudgetOptions) (*Budget, error) {
	if o.Ratio == 0 {
		o.Ratio = 0.1
	}
	if o.MinPerSecond == 0 {
		o.MinPerSecond = 10
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.Ratio < 0 || o.Ratio > 1000:
		return nil, fmt.Errorf("%w: BudgetOptions.Ratio must be in [0, 1000], got %v", ErrInvalid, o.Ratio)
	case o.MinPerSecond < 0:
		return nil, fmt.Errorf("%w: BudgetOptions.MinPerSecond must be >= 0, got %v", ErrInvalid, o.MinPerSecond)
	case o.MaxTokens < 1:
		return nil, fmt.Errorf("%w: BudgetOptions.MaxTokens must be >= 1, got %v", ErrInvalid, o.MaxTokens)
	}
	milli := func(f float64) int64 { return int64(math.Round(f * 1000)) }
	return &Budget{o: o, ratio: milli(o.Ratio), maxT: milli(o.MaxTokens), minPS: milli(o.MinPerSecond), floor: milli(o.MinPerSecond), last: o.Now()}, nil
}

func (b *Budget) deposit() {
	b.deposits.Add(1)
	b.mu.Lock()
	b.tokens = min(b.maxT, b.tokens+b.ratio)
	b.mu.Unlock()
}

// withdraw takes one token for a retry, from deposits first, then the floor.
func (b *Budget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.o.Now()
	if el := now.Sub(b.last); el > 0 {
		refill := int64(float64(b.minPS) * el.Seconds())
		if refill > 0 { // keep the remainder of a short interval for later
			b.floor = min(b.minPS, b.floor+refill)
			b.last = now
		}
	}
	switch {
	case b.tokens >= 1000:
		b.tokens -= 1000
	case b.floor >= 1000:
		b.floor -= 1000
	default:
		b.refusals.Add(1)
		return false
	}
	b.withdrawals.Add(1)
	return true
}

// BudgetStats is a snapshot of a Budget.
type BudgetStats struct {
	Deposits, Withdrawals, Refusals uint64
	// Tokens is what could be withdrawn now (deposits plus floor).
	Tokens float64
}

// Stats returns a snapshot.
func (b *Budget) Stats() BudgetStats {
	b.mu.Lock()
	t := float64(b.tokens+b.floor) / 1000
	b.mu.Unlock()
	return BudgetStats{Deposits: b.deposits.Load(), Withdrawals: b.withdrawals.Load(), Refusals: b.refusals.Load(), Tokens: t}
}
