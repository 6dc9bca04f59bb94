package breaker

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// The decision table of the package doc: when does a run of failures trip
// the breaker? (MinimumCalls is out of reach so no rate rule can trip.)
func TestConsecutiveRuleDecisionTable(t *testing.T) {
	const never = 0
	for _, c := range []struct {
		name string
		o    Options
		trip int // failures in a row that trip it; never: 50 do not
	}{
		{"defaults", Options{}, 5},
		{"explicit", Options{ConsecutiveFailures: 3}, 3},
		{"disabled", Options{NoConsecutive: true}, never},
		{"rate rule alone: off", Options{FailureRateThreshold: 0.5}, never},
		{"rate rule and explicit count: on", Options{FailureRateThreshold: 0.5, ConsecutiveFailures: 5}, 5},
		{"rate rule, explicit count, disabled", Options{FailureRateThreshold: 0.5, ConsecutiveFailures: 5, NoConsecutive: true}, never},
		{"slow-call rule alone keeps the default", Options{SlowCallThreshold: time.Hour}, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.WindowSize, c.o.MinimumCalls = 1000, 1000
			b := newB(t, c.o)
			for i := 1; i <= 50; i++ {
				run(b, 1, fail)
				if tripped := b.State() == Open; tripped != (i == c.trip) {
					t.Fatalf("after %d failures in a row: state %v, want a trip at %d (0: never)", i, b.State(), c.trip)
				}
				if b.State() == Open {
					return
				}
			}
		})
	}
}

// A breaker set to trip at 50% failures must not trip at 30%: at 1,000
// calls a second, runs of 5 failures come every few hundred calls, and
// before the fix the default consecutive rule (left on beside the rate
// rule) tripped on them.
func TestRateThresholdNotUndercutByConsecutiveDefault(t *testing.T) {
	b := newB(t, Options{FailureRateThreshold: 0.5}) // window 100, MinimumCalls 20
	rng := rand.New(rand.NewPCG(15, 3))
	ctx := context.Background()
	for i := 0; i < 10_000; i++ { // 10 s at 1,000 rps
		err := b.Do(ctx, func(context.Context) error {
			if rng.Float64() < 0.3 {
				return errBoom
			}
			return nil
		})
		if err != nil && b.State() == Open {
			t.Fatalf("tripped after %d calls at a 30%% failure rate: %+v", i+1, b.Stats())
		}
	}
	// The rate rule itself still works: at 60% it trips.
	for i := 0; i < 1000 && b.State() == Closed; i++ {
		b.Do(ctx, func(context.Context) error {
			if rng.Float64() < 0.6 {
				return errBoom
			}
			return nil
		})
	}
	if b.State() != Open {
		t.Fatalf("60%% failures did not trip a 50%% threshold: %+v", b.Stats())
	}
}
