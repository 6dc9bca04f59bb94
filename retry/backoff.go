package retry

import (
	"fmt"
	"math"
	"time"
)

// The bounds of Exponential{}.
const (
	defaultBase = 100 * time.Millisecond
	defaultCap  = 10 * time.Second
)

// Backoff gives the wait before retry number attempt (1 after the first
// failure) from the previous wait it gave (0 before the first retry) and r,
// a uniform random number in [0, 1). It must be pure: the randomness comes
// in through r, so a policy is deterministic under test and safe to share
// between goroutines.
type Backoff interface {
	Next(attempt int, prev time.Duration, r float64) time.Duration
}

// Jitter is how Exponential randomizes its waits. The definitions are those
// of the AWS Architecture Blog post "Exponential Backoff And Jitter", with
// t = min(Cap, Base*2^(attempt-1)).
type Jitter int

const (
	// FullJitter waits rand(0, t): the widest spread and the least total
	// work for competing clients. The zero value and the default.
	FullJitter Jitter = iota
	// EqualJitter waits t/2 + rand(0, t/2): never less than half of t.
	EqualJitter
	// DecorrelatedJitter waits min(Cap, rand(Base, 3*prev)), prev being
	// the previous wait (Base before the first retry): it grows from the
	// last wait rather than from the attempt number.
	DecorrelatedJitter
	// NoJitter waits exactly t.
	NoJitter
)

// String returns the jitter's name.
func (j Jitter) String() string {
	switch j {
	case FullJitter:
		return "full"
	case EqualJitter:
		return "equal"
	case DecorrelatedJitter:
		return "decorrelated"
	case NoJitter:
		return "none"
	}
	return fmt.Sprintf("Jitter(%d)", int(j))
}

// Exponential is exponential backoff: waits grow from Base, doubling with
// each attempt up to Cap, randomized by Jitter. The zero value is full
// jitter from 100ms capped at 10s.
type Exponential struct {
	// Base is the first wait's upper bound. Default: 100ms.
	Base time.Duration
	// Cap bounds every wait. Default: 10s, or Base if that is longer.
	Cap time.Duration
	// Jitter randomizes the waits. Default: FullJitter.
	Jitter Jitter
}

func (e Exponential) bounds() (base, cap time.Duration) {
	base, cap = e.Base, e.Cap
	if base <= 0 {
		base = defaultBase
	}
	if cap <= 0 {
		cap = max(defaultCap, base)
	}
	return base, max(cap, base)
}

// ceiling returns t = min(Cap, Base*2^(attempt-1)), the bound the jitter
// works under, without overflowing for any attempt.
func (e Exponential) ceiling(attempt int) time.Duration {
	base, cap := e.bounds()
	n := max(attempt-1, 0)
	if n >= 62 || base > cap>>n { // base<<n would pass cap (or overflow)
		return cap
	}
	return base << n
}

// Next implements Backoff. Whatever r (even outside [0, 1), or NaN) and
// prev, the wait is in [0, Cap] ([Base, Cap] for DecorrelatedJitter): the
// arithmetic saturates rather than overflow time.Duration.
func (e Exponential) Next(attempt int, prev time.Duration, r float64) time.Duration {
	switch e.Jitter {
	case EqualJitter:
		t := e.ceiling(attempt)
		return t/2 + scaled(r, t-t/2) // <= t/2 + (t - t/2) = t
	case DecorrelatedJitter:
		base, cap := e.bounds()
		hi := 3 * float64(max(prev, base)) // float: no overflow for any prev
		// w is in [base, hi): converted only when below cap, so it fits.
		if w := float64(base) + unit(r)*(hi-float64(base)); w < float64(cap) {
			return max(base, time.Duration(w))
		}
		return cap
	case NoJitter:
		return e.ceiling(attempt)
	default:
		return scaled(r, e.ceiling(attempt))
	}
}

// unit clamps r into [0, 1): NaN and negatives give 0, 1 and more give the
// largest float64 below 1. A source that keeps its contract passes through.
func unit(r float64) float64 {
	switch {
	case r >= 0 && r < 1:
		return r
	case r >= 1:
		return math.Nextafter(1, 0)
	}
	return 0 // NaN, negative
}

// scaled returns r*d for d >= 0, in [0, d] whatever r: the float product
// is clamped before it is converted, so it cannot overflow (float64(d)
// rounds d up, and a product at 2^63 would not fit a time.Duration).
func scaled(r float64, d time.Duration) time.Duration {
	return min(d, time.Duration(unit(r)*float64(d)))
}

// Constant waits D before every retry (0: retry at once).
type Constant struct {
	D time.Duration
}

// Next implements Backoff.
func (c Constant) Next(int, time.Duration, float64) time.Duration { return c.D }

// BackoffFunc adapts a function to Backoff.
type BackoffFunc func(attempt int, prev time.Duration, r float64) time.Duration

// Next implements Backoff.
func (f BackoffFunc) Next(attempt int, prev time.Duration, r float64) time.Duration {
	return f(attempt, prev, r)
}

var (
	_ Backoff = Exponential{}
	_ Backoff = Constant{}
	_ Backoff = BackoffFunc(nil)
)

func validateBackoff(b Backoff) error {
	bad := func(f string, args ...any) error {
		return fmt.Errorf("%w: Options.Backoff: "+f, append([]any{ErrInvalid}, args...)...)
	}
	switch x := b.(type) {
	case *Exponential:
		if x == nil {
			return bad("nil *Exponential")
		}
		return validateBackoff(*x)
	case *Constant:
		if x == nil {
			return bad("nil *Constant")
		}
		return validateBackoff(*x)
	case BackoffFunc:
		if x == nil {
			return bad("nil BackoffFunc")
		}
	case Exponential:
		switch {
		case x.Base < 0:
			return bad("Exponential.Base must be >= 0 (0: 100ms), got %v", x.Base)
		case x.Cap < 0:
			return bad("Exponential.Cap must be >= 0 (0: 10s), got %v", x.Cap)
		case x.Cap > 0 && x.Cap < x.Base:
			return bad("Exponential.Cap (%v) must be >= Base (%v)", x.Cap, x.Base)
		case x.Jitter < FullJitter || x.Jitter > NoJitter:
			return bad("Exponential.Jitter must be FullJitter, EqualJitter, DecorrelatedJitter or NoJitter, got %d", int(x.Jitter))
		}
	case Constant:
		if x.D < 0 {
			return bad("Constant.D must be >= 0, got %v", x.D)
		}
	}
	return nil
}
