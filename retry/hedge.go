package retry

import (
	"context"
	"fmt"
	"time"
)

// Hedge calls fn and, each time delay passes without an answer, fires
// another concurrent attempt, up to 1+maxHedges attempts in all; the first
// success wins and the ctx of every other attempt is cancelled (Hedge does
// not wait for them to return). Use it for idempotent reads with a long
// latency tail: with delay near the p95 latency, about 5% of calls send a
// second request.
//
// An attempt that fails while others run is dropped; when none is left
// running, the next hedge fires at once. Hedge returns the first success,
// a Permanent error at once, the last error when every attempt failed, or
// ctx's error when ctx ends first (ctx.Err(), which also matches
// context.Cause(ctx) when the ctx has a cause of its own).
//
// With a budget, Hedge deposits for a top-level call like Do, and each
// hedge withdraws a token like a retry: when the budget is empty, no hedge
// is fired. budget may be nil. delay must be > 0 and maxHedges >= 0.
func Hedge[T any](ctx context.Context, delay time.Duration, maxHedges int, budget *Budget, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if delay <= 0 || maxHedges < 0 {
		return zero, fmt.Errorf("%w: Hedge needs delay > 0 and maxHedges >= 0, got %v and %d", ErrInvalid, delay, maxHedges)
	}
	if budget != nil {
		ctx = enterBudget(ctx, budget)
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel() // the losers' ctx
	type result struct {
		v   T
		err error
	}
	results := make(chan result)
	launched, running := 0, 0
	launch := func() {
		launched++
		running++
		go func() {
			v, err := fn(hctx)
			select {
			case results <- result{v, err}:
			case <-hctx.Done(): // Hedge has returned, or is about to
			}
		}()
	}
	mayLaunch := func() bool {
		return launched <= maxHedges && ctx.Err() == nil && (budget == nil || budget.Withdraw())
	}
	launch()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	var lastErr error
	for {
		select {
		case res := <-results:
			running--
			if res.err == nil {
				return res.v, nil
			}
			lastErr = res.err
			if IsPermanent(res.err) {
				return zero, res.err
			}
			if running == 0 {
				if !mayLaunch() {
					return zero, lastErr
				}
				launch()
				timer.Reset(delay)
			}
		case <-timer.C:
			if mayLaunch() {
				launch()
				timer.Reset(delay)
			}
		case <-ctx.Done():
			return zero, ctxError(ctx)
		}
	}
}
