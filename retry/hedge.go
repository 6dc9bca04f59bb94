package retry

import (
	"context"
	"fmt"
	"time"
)

// Hedge calls fn and, each time delay passes without a success, fires
// another concurrent attempt, up to 1+maxHedges attempts; the first success
// wins and the other attempts' ctx is cancelled. For idempotent reads whose
// latency has a long tail. If every attempt fails, the last error returns.
// With a budget, each hedge withdraws from it like a retry and no hedge is
// fired when it is empty.
func Hedge[T any](ctx context.Context, delay time.Duration, maxHedges int, budget *Budget, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if delay <= 0 || maxHedges < 0 {
		return zero, fmt.Errorf("%w: Hedge needs delay > 0 and maxHedges >= 0, got %v and %d", ErrInvalid, delay, maxHedges)
	}
	if budget != nil && ctx.Value(loopKey{}) == nil {
		budget.deposit()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	results := make(chan result, maxHedges+1)
	launch := func() {
		go func() {
			v, err := fn(ctx)
			results <- result{v, err}
		}()
	}
	launch()
	running, launched := 1, 1
	t := time.NewTimer(delay)
	defer t.Stop()
	var lastErr error
	for {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				return r.v, nil
			}
			lastErr = r.err
			if running == 0 && launched > maxHedges {
				return zero, lastErr
			}
			if running == 0 { // failed fast: try the next hedge now
				t.Reset(0)
			}
		case <-t.C:
			if launched <= maxHedges && (budget == nil || budget.withdraw()) {
				launch()
				running++
				launched++
				t.Reset(delay)
			} else if running == 0 {
				return zero, lastErr
			}
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}
