package timeout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/stripe"
	"github.com/scalekit-go/scalekit/internal/valuecall"
)

// ErrTimeout is matched by every *Error: a call failed after a Timeout's
// deadline passed.
var ErrTimeout = errors.New("timeout: deadline passed")

// ErrTotal is matched by an *Error of Kind Total (and is itself a
// ErrTimeout): the whole call, retries included, ran out of time.
var ErrTotal = fmt.Errorf("timeout: total timeout: %w", ErrTimeout)

// ErrAttempt is matched by an *Error of Kind Attempt (and is itself a
// ErrTimeout): one attempt ran out of time; the next may be tried.
var ErrAttempt = fmt.Errorf("timeout: attempt timeout: %w", ErrTimeout)

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = errors.New("timeout: invalid")

// Kind says what a Timeout bounds.
type Kind uint8

// The kinds of timeout.
const (
	// Total bounds a whole call, retries and their waits included.
	Total Kind = iota
	// Attempt bounds one attempt of a retried call.
	Attempt
)

// String returns "total" or "attempt".
func (k Kind) String() string {
	switch k {
	case Total:
		return "total"
	case Attempt:
		return "attempt"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// sentinel is the error a Kind matches, and the cause of the ctx it ends.
func (k Kind) sentinel() error {
	if k == Attempt {
		return ErrAttempt
	}
	return ErrTotal
}

// Error is what Do returns for a call that failed after its Timeout's
// deadline. It matches ErrTimeout, the Kind's sentinel (ErrTotal or
// ErrAttempt) and context.DeadlineExceeded, and unwraps to Err.
type Error struct {
	// Kind is the Timeout's Kind: which one fired.
	Kind Kind
	// Timeout is the Timeout's duration.
	Timeout time.Duration
	// Err is the call's error.
	Err error
}

// Error says which timeout fired, its duration and the call's error.
func (e *Error) Error() string {
	return fmt.Sprintf("timeout: %s timeout %v passed: %v", e.Kind, e.Timeout, e.Err)
}

// Is reports whether target is ErrTimeout, the Kind's sentinel or
// context.DeadlineExceeded.
func (e *Error) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded || target == e.Kind.sentinel()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Options configures New.
type Options struct {
	// Timeout is how long a call may run; required, > 0.
	Timeout time.Duration
	// Kind says what the Timeout bounds, for its errors: Total (the zero
	// value) or Attempt. Default: Total.
	Kind Kind
	// Logger receives every timeout, at Debug level. Default: discard.
	Logger *slog.Logger
}

// Timeout runs calls with a deadline. It is safe for concurrent use.
type Timeout struct {
	d      time.Duration
	kind   Kind
	cause  error
	logger *slog.Logger

	calls    stripe.Counter
	timeouts atomic.Uint64
}

// New returns a Timeout, or an error naming the bad option.
func New(o Options) (*Timeout, error) {
	switch {
	case o.Timeout <= 0:
		return nil, fmt.Errorf("%w: Options.Timeout must be > 0, got %v", ErrInvalid, o.Timeout)
	case o.Kind > Attempt:
		return nil, fmt.Errorf("%w: Options.Kind must be Total or Attempt, got %v", ErrInvalid, o.Kind)
	}
	return &Timeout{d: o.Timeout, kind: o.Kind, cause: o.Kind.sentinel(), logger: logx.Or(o.Logger)}, nil
}

// Timeout is Options.Timeout.
func (t *Timeout) Timeout() time.Duration { return t.d }

// Kind is Options.Kind.
func (t *Timeout) Kind() Kind { return t.kind }

// Do calls fn with a ctx that ends after the Timeout (or with ctx, if
// sooner), on the calling goroutine, and returns fn's error, or an *Error
// when fn failed past the Timeout's deadline while ctx was still live (see
// the package doc). It waits for fn to return, however late: fn must
// respect its ctx for the Timeout to bound it.
func (t *Timeout) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	t.calls.Add(1)
	s := since() // negative in a synctest bubble, whose clock is behind epoch
	deadline := s + t.d
	if deadline < s {
		deadline = math.MaxInt64 // overflow: a Timeout of about math.MaxInt64
	}
	if pd, ok := ctx.Deadline(); ok && !epoch.Add(deadline).Before(pd) {
		return fn(ctx) // the caller's deadline comes first: this Timeout cannot fire
	}
	c := &lazyCtx{Context: ctx, t: t, deadline: deadline}
	err := fn(c)
	fired := c.finish(err != nil)
	if err == nil || ctx.Err() != nil || !fired && !bareDeadline(err) {
		return err
	}
	t.timeouts.Add(1)
	if t.logger.Enabled(ctx, slog.LevelDebug) {
		t.logger.LogAttrs(ctx, slog.LevelDebug, "timeout: call failed past its deadline",
			slog.String("kind", t.kind.String()), slog.Duration("timeout", t.d), slog.Any("error", err))
	}
	return &Error{Kind: t.kind, Timeout: t.d, Err: err}
}

// bareDeadline reports whether err is or wraps context.DeadlineExceeded
// outside any *Error (a nested Timeout's, which speaks for itself).
func bareDeadline(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case *Error:
		return false
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			if bareDeadline(x) {
				return true
			}
		}
		return false
	case interface{ Unwrap() error }:
		return bareDeadline(e.Unwrap())
	}
	return err == context.DeadlineExceeded
}

// IsTimeout reports whether err is, or wraps, an *Error.
func IsTimeout(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// DoValue is Do for calls that return a value: it returns the value fn
// returned with a nil error, even past the deadline.
func DoValue[T any](ctx context.Context, t *Timeout, fn func(ctx context.Context) (T, error)) (T, error) {
	return valuecall.Do(ctx, t.Do, fn)
}

// Stats is a snapshot of a Timeout's counters.
type Stats struct {
	// Calls counts calls to Do.
	Calls uint64
	// Timeouts counts calls that ended in an *Error.
	Timeouts uint64
}

// Stats returns a snapshot.
func (t *Timeout) Stats() Stats {
	return Stats{Calls: t.calls.Load(), Timeouts: t.timeouts.Load()}
}
