package retry

import (
	"fmt"
	"time"
)

// Backoff gives the wait before retry number attempt (1 after the first
// failure), from the previous wait and a uniform random r in [0, 1). It is
// pure, so policies are easy to test and to write.
type Backoff interface {
	Next(attempt int, prev time.Duration, r float64) time.Duration
}

// Jitter is how Exponential randomizes its waits, as defined in the AWS
// Architecture Blog's "Exponential Backoff And Jitter".
type Jitter int

const (
	// FullJitter waits rand(0, t), t = min(Cap, Base*2^(attempt-1)): the
	// best spread, the default.
	FullJitter Jitter = iota
	// EqualJitter waits t/2 + rand(0, t/2): never much shorter than t.
	EqualJitter
	// DecorrelatedJitter waits min(Cap, rand(Base, 3*prev)), growing from
	// the previous wait rather than the attempt number.
	DecorrelatedJitter
	// NoJitter waits exactly t.
	NoJitter
)

// Exponential is exponential backoff from Base, capped at Cap, with Jitter.
type Exponential struct {
	Base, Cap time.Duration
	Jitter    Jitter
}

// Next implements Backoff.
func (e Exponential) Next(attempt int, prev time.Duration, r float64) time.Duration {
	t := e.Cap
	if attempt-1 < 62 {
		if g := e.Base << (attempt - 1); g > 0 && g < e.Cap && g>>(attempt-1) == e.Base {
			t = g
		}
	}
	switch e.Jitter {
	case FullJitter:
		return time.Duration(r * float64(t))
	case EqualJitter:
		return t/2 + time.Duration(r*float64(t/2))
	case DecorrelatedJitter:
		if prev < e.Base {
			prev = e.Base
		}
		hi := 3 * prev
		return min(e.Cap, e.Base+time.Duration(r*float64(hi-e.Base)))
	default:
		return t
	}
}

// Constant waits D before every retry.
type Constant struct{ D time.Duration }

// Next implements Backoff.
func (c Constant) Next(int, time.Duration, float64) time.Duration { return c.D }

// BackoffFunc adapts a function to Backoff.
type BackoffFunc func(attempt int, prev time.Duration, r float64) time.Duration

// Next implements Backoff.
func (f BackoffFunc) Next(attempt int, prev time.Duration, r float64) time.Duration {
	return f(attempt, prev, r)
}

func validate(b Backoff) error {
	switch x := b.(type) {
	case Exponential:
		if x.Base <= 0 || x.Cap < x.Base {
			return fmt.Errorf("%w: Options.Backoff: Exponential needs 0 < Base <= Cap, got Base %v, Cap %v", ErrInvalid, x.Base, x.Cap)
		}
		if x.Jitter < FullJitter || x.Jitter > NoJitter {
			return fmt.Errorf("%w: Options.Backoff: unknown Jitter %d", ErrInvalid, x.Jitter)
		}
	case Constant:
		if x.D < 0 {
			return fmt.Errorf("%w: Options.Backoff: Constant.D must be >= 0, got %v", ErrInvalid, x.D)
		}
	}
	return nil
}
