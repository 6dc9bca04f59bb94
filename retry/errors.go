package retry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrExhausted is matched by every give-up: errors.Is(err, ErrExhausted)
// holds for the *ExhaustedError that Do returns when it stops retrying a
// retryable error.
var ErrExhausted = errors.New("retry: gave up")

// ErrBudgetExhausted is matched by a give-up caused by an empty Budget
// (Reason ReasonBudget).
var ErrBudgetExhausted = errors.New("retry: retry budget exhausted")

// ErrInvalid is wrapped by the errors about invalid options.
var ErrInvalid = errors.New("retry: invalid")

// Reason says why Do gave up.
type Reason string

// The reasons for giving up.
const (
	// ReasonMaxAttempts: MaxAttempts attempts failed.
	ReasonMaxAttempts Reason = "max attempts"
	// ReasonMaxElapsed: the next attempt would start after MaxElapsed.
	ReasonMaxElapsed Reason = "max elapsed time"
	// ReasonDeadline: the next attempt would start after the ctx deadline,
	// so Do returned at once instead of sleeping in vain.
	ReasonDeadline Reason = "next attempt after ctx deadline"
	// ReasonContext: the ctx ended (cancelled or past its deadline) before
	// the next attempt.
	ReasonContext Reason = "ctx done"
	// ReasonBudget: the Budget refused the retry.
	ReasonBudget Reason = "retry budget exhausted"
	// ReasonRetryAfter: the attempt asked, with an AfterError (a
	// server's Retry-After), for a wait longer than MaxRetryAfter.
	ReasonRetryAfter Reason = "Retry-After over MaxRetryAfter"
)

// ExhaustedError is what Do returns when it gives up on a retryable error.
// It matches ErrExhausted and unwraps to Last, the last attempt's error, so
// errors.Is(err, io.EOF) sees through it. It also unwraps to
// context.DeadlineExceeded for ReasonDeadline, to ErrBudgetExhausted for
// ReasonBudget, and for ReasonContext to ctx.Err() and to
// context.Cause(ctx) when that is another error (a ctx from
// context.WithCancelCause or WithTimeoutCause): errors.Is(err,
// context.Canceled) and errors.Is(err, yourCause) both hold.
type ExhaustedError struct {
	// Attempts is how many attempts were made.
	Attempts int
	// Reason says why Do stopped.
	Reason Reason
	// Last is the last attempt's error.
	Last error

	cause    error // context.DeadlineExceeded, ctx.Err() or ErrBudgetExhausted
	ctxCause error // ReasonContext: context.Cause(ctx) when it is not ctx.Err()
}

// Error says how many attempts failed, why Do stopped (with the ctx's
// cause, if it has one) and the last error.
func (e *ExhaustedError) Error() string {
	s := "s"
	if e.Attempts == 1 {
		s = ""
	}
	if e.ctxCause != nil {
		return fmt.Sprintf("retry: gave up after %d attempt%s (%s: %v): %v", e.Attempts, s, e.Reason, e.ctxCause, e.Last)
	}
	return fmt.Sprintf("retry: gave up after %d attempt%s (%s): %v", e.Attempts, s, e.Reason, e.Last)
}

// Is reports whether target is ErrExhausted.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }

// Unwrap returns Last and, for some reasons, the cause of the give-up and
// the ctx's cause (see ExhaustedError).
func (e *ExhaustedError) Unwrap() []error {
	switch {
	case e.ctxCause != nil:
		return []error{e.Last, e.cause, e.ctxCause}
	case e.cause != nil:
		return []error{e.Last, e.cause}
	}
	return []error{e.Last}
}

// permanentError marks an error not worth retrying.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: Do returns it at once, as is.
// The result has err's text and unwraps to err, so errors.Is and errors.As
// see the original; it stays Permanent through other wrapping, so retry
// loops further out stop at once too. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// AfterError (read retry.AfterError: "retry after") asks for the next
// attempt no sooner than After (a server's Retry-After, say): Do waits the
// longer of After and its backoff, and gives up at once when After is
// longer than Options.MaxRetryAfter (ReasonRetryAfter) or the wait would
// pass MaxElapsed or the ctx deadline.
type AfterError struct {
	// Err is the attempt's error.
	Err error
	// After is the shortest wait before the next attempt.
	After time.Duration
}

// Error returns Err's text.
func (e *AfterError) Error() string {
	if e.Err == nil {
		return "retry: retry after " + e.After.String()
	}
	return e.Err.Error()
}

// Unwrap returns Err.
func (e *AfterError) Unwrap() error { return e.Err }

// cappedRetryAfter is an AfterError from a Transport with its own
// MaxRetryAfter, which replaces the Retrier's for it. (A field on
// AfterError would break callers' unkeyed literals.)
type cappedRetryAfter struct {
	ra    *AfterError
	limit time.Duration // > 0
}

func (c *cappedRetryAfter) Error() string { return c.ra.Error() }
func (c *cappedRetryAfter) Unwrap() error { return c.ra }

// ctxError returns ctx.Err() for an ended ctx and, when context.Cause(ctx)
// is another error, an error matching both ("context canceled: cause").
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if c := context.Cause(ctx); c != nil && c != err {
		return fmt.Errorf("%w: %w", err, c)
	}
	return err
}
