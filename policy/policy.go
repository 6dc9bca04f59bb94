package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/internal/valuecall"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// Policy wraps a call: Do runs fn (or refuses to) and returns its error
// or the policy's own. *breaker.Breaker, *retry.Retrier,
// *timeout.Timeout, *bulkhead.Bulkhead and *throttle.Throttler implement
// it.
type Policy interface {
	Do(ctx context.Context, fn func(ctx context.Context) error) error
}

// Func adapts a function to a Policy.
type Func func(ctx context.Context, fn func(ctx context.Context) error) error

// Do calls f.
func (f Func) Do(ctx context.Context, fn func(ctx context.Context) error) error { return f(ctx, fn) }

// ErrInvalid is wrapped by errors about bad arguments.
var ErrInvalid = errors.New("policy: invalid")

// Compose returns the Policy that runs fn through ps, ps[0] outermost:
// Compose(a, b, c).Do(ctx, fn) is a.Do(ctx, b.Do(ctx, c.Do(ctx, fn))).
// Nil policies (a nil interface or a nil pointer in one) are left out;
// with none, Do calls fn. Pass them in the standard order (see the
// package doc).
func Compose(ps ...Policy) Policy {
	var out []Policy
	for _, p := range ps {
		if !isNil(p) {
			out = append(out, p)
		}
	}
	switch len(out) {
	case 0:
		return Func(func(ctx context.Context, fn func(ctx context.Context) error) error { return fn(ctx) })
	case 1:
		return out[0]
	}
	pl := &pipeline{ps: out, pooled: true}
	for _, p := range out {
		pl.pooled = pl.pooled && inline(p)
	}
	pl.frames.New = func() any { return pl.newFrame() }
	return pl
}

// isNil reports whether p is nil or holds a nil pointer or func.
func isNil(p Policy) bool {
	if p == nil {
		return true
	}
	v := reflect.ValueOf(p)
	return (v.Kind() == reflect.Pointer || v.Kind() == reflect.Func) && v.IsNil()
}

// pipeline is Compose's result: ps, outermost first, at least two.
//
// Nesting ps[i].Do(ctx, func(ctx) error { return ps[i+1].Do(ctx, ...) })
// would allocate a closure per inner policy and call, since each captures
// that call's fn. Instead each call borrows a frame from a pool: its
// closures, made once per frame, read fn from the frame, which Do fills
// in and clears. This relies on the Policy contract (a Policy does not
// call fn after its Do returned): a frame is reused only once the call
// that borrowed it has returned. Only the package's own policies are
// trusted to keep it (inline): a pipeline holding any other (a Func, a
// type of the caller's) nests fresh closures on every call, so a policy
// that runs fn on a goroutine of its own and returns before it starts
// can never run another call's fn.
type pipeline struct {
	ps     []Policy
	pooled bool      // every one of ps is inline
	frames sync.Pool // of *frame
}

// inline reports whether p is one of the scalekit policies known to call
// fn only on the goroutine of its Do, before Do returns.
func inline(p Policy) bool {
	switch p.(type) {
	case *breaker.Breaker, *retry.Retrier, *timeout.Timeout, *bulkhead.Bulkhead, *throttle.Throttler,
		*slo.Shedder, adapter, *pipeline:
		return true
	}
	return false
}

// adapter is the Policy of Limit, Wait, Concurrency and Adaptive: a Func
// of this package's own, which calls fn inline.
type adapter func(ctx context.Context, fn func(ctx context.Context) error) error

// Do calls a.
func (a adapter) Do(ctx context.Context, fn func(ctx context.Context) error) error { return a(ctx, fn) }

// frame is one call's state: fn, and the closures that run the inner
// policies around it.
type frame struct {
	fn func(ctx context.Context) error
	// next[i] is the fn given to ps[i]: it runs ps[i+1] (with next[i+1],
	// or with fn for the innermost).
	next []func(ctx context.Context) error
}

// newFrame makes a frame with its closures.
func (p *pipeline) newFrame() *frame {
	last := len(p.ps) - 1
	f := &frame{next: make([]func(ctx context.Context) error, last)}
	innermost := p.ps[last]
	f.next[last-1] = func(ctx context.Context) error { return innermost.Do(ctx, f.fn) }
	for i := last - 2; i >= 0; i-- {
		inner, next := p.ps[i+1], f.next[i+1]
		f.next[i] = func(ctx context.Context) error { return inner.Do(ctx, next) }
	}
	return f
}

// Do runs fn through the pipeline.
func (p *pipeline) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if !p.pooled {
		return p.nest(ctx, 0, fn)
	}
	f := p.frames.Get().(*frame)
	f.fn = fn
	err := p.ps[0].Do(ctx, f.next[0])
	f.fn = nil // keep no reference to fn; a panic drops the frame instead
	p.frames.Put(f)
	return err
}

// nest runs fn through ps[i:], a closure per policy and call.
func (p *pipeline) nest(ctx context.Context, i int, fn func(ctx context.Context) error) error {
	if i == len(p.ps)-1 {
		return p.ps[i].Do(ctx, fn)
	}
	return p.ps[i].Do(ctx, func(ctx context.Context) error { return p.nest(ctx, i+1, fn) })
}

// DoValue runs fn through p and returns the value of its successful
// call.
func DoValue[T any](ctx context.Context, p Policy, fn func(ctx context.Context) (T, error)) (T, error) {
	return valuecall.Do(ctx, p.Do, fn)
}

// Retryable reports whether an error is worth another attempt: false for
// the refusals of a policy that were not the dependency's answer — an open
// breaker (breaker.ErrOpen), a full bulkhead (bulkhead.ErrRejected), a
// rate limit (ratelimit.ErrLimited), a local throttle
// (throttle.ErrThrottled) and an SLO shedder (slo.ErrShed) — true for
// anything else. Use it as
// retry.Options.Retryable, or in your own.
func Retryable(err error) bool {
	return !errors.Is(err, breaker.ErrOpen) && !errors.Is(err, bulkhead.ErrRejected) &&
		!errors.Is(err, ratelimit.ErrLimited) && !errors.Is(err, throttle.ErrThrottled) && !errors.Is(err, slo.ErrShed)
}

// Limit is the Policy that asks l for one event of key per call, and
// refuses a call it denies with a *ratelimit.LimitedError (errors.Is
// ratelimit.ErrLimited) at once, without waiting; l's own errors are
// returned as they are. key must not be empty.
func Limit(l ratelimit.Limiter, key string) Policy {
	return adapter(func(ctx context.Context, fn func(ctx context.Context) error) error {
		d, err := l.AllowN(ctx, key, 1)
		if err != nil {
			return err
		}
		if !d.Allowed {
			return &ratelimit.LimitedError{Key: key, Decision: d}
		}
		return fn(ctx)
	})
}

// Wait is Limit that waits for the event to be admitted (ratelimit.Wait):
// it fails fast when the admission would come after ctx's deadline.
func Wait(l ratelimit.Limiter, key string) Policy {
	return adapter(func(ctx context.Context, fn func(ctx context.Context) error) error {
		if _, err := ratelimit.Wait(ctx, l, key, 1); err != nil {
			return err
		}
		return fn(ctx)
	})
}

// Concurrency is the Policy that holds a slot of l for key while fn runs,
// and refuses a call when every slot is held (ratelimit.ErrLimited).
func Concurrency(l ratelimit.ConcurrencyLimiter, key string) Policy {
	return adapter(func(ctx context.Context, fn func(ctx context.Context) error) error {
		release, err := l.Acquire(ctx, key)
		if err != nil {
			return err
		}
		defer release()
		return fn(ctx)
	})
}

// Adaptive is the Policy that runs fn within a's in-flight limit, shedding
// a call over it (ratelimit.ErrLimited); overloaded decides which errors
// of fn signal overload and cut the limit (nil: a *timeout.Error or
// context.DeadlineExceeded, see Overloaded).
func Adaptive(a *ratelimit.Adaptive, overloaded func(error) bool) (Policy, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: Adaptive needs a *ratelimit.Adaptive, got nil", ErrInvalid)
	}
	if overloaded == nil {
		overloaded = Overloaded
	}
	return adapter(func(ctx context.Context, fn func(ctx context.Context) error) error {
		release, err := a.Acquire()
		if err != nil {
			return err
		}
		over := true // a panic counts as overload
		defer func() { release(over) }()
		err = fn(ctx)
		over = err != nil && ctx.Err() == nil && overloaded(err)
		return err
	}), nil
}

// Overloaded is the default test of overload for Adaptive: a deadline
// passed (a *timeout.Error matches context.DeadlineExceeded).
func Overloaded(err error) bool { return errors.Is(err, context.DeadlineExceeded) }
