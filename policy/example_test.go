package policy_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/policy"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/timeout"
)

func ExampleCompose() {
	lim, _ := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{ratelimit.PerSecond(100, 100)}})
	total, _ := timeout.New(timeout.Options{Timeout: time.Second, Kind: timeout.Total})
	r, _ := retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{}, Retryable: policy.Retryable})
	br, _ := breaker.New(breaker.Options{Name: "inventory"})
	attempt, _ := timeout.New(timeout.Options{Timeout: 50 * time.Millisecond, Kind: timeout.Attempt})
	// The standard order: rate limit, total timeout, retry, breaker,
	// attempt timeout.
	p := policy.Compose(policy.Limit(lim, "inventory"), total, r, br, attempt)

	calls := 0
	err := p.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls == 1 { // the first attempt hangs: its timeout cuts it, and it is retried
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	fmt.Println(err, calls)

	err = p.Do(context.Background(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	fmt.Println(errors.Is(err, retry.ErrExhausted), errors.Is(err, timeout.ErrAttempt), errors.Is(err, timeout.ErrTotal))
	// Output:
	// <nil> 2
	// true true false
}
