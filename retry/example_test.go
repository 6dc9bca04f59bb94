package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/retry"
)

func ExampleRetrier_Do() {
	r, _ := retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{D: time.Millisecond}})
	calls := 0
	err := r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("connection reset")
		}
		return nil
	})
	fmt.Println(err, calls)

	err = r.Do(context.Background(), func(ctx context.Context) error { return errors.New("503") })
	fmt.Println(errors.Is(err, retry.ErrExhausted))
	fmt.Println(err)
	// Output:
	// <nil> 3
	// true
	// retry: gave up after 3 attempt(s) (max attempts): 503
}

func ExampleBudget() {
	// One budget per downstream dependency, shared by every caller of it.
	budget, _ := retry.NewBudget(retry.BudgetOptions{Ratio: 0.1, MinPerSecond: 1})
	r, _ := retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{}, Budget: budget})
	attempts := 0
	for i := 0; i < 100; i++ { // the dependency is down
		r.Do(context.Background(), func(ctx context.Context) error { attempts++; return errors.New("down") })
	}
	fmt.Printf("100 calls -> %d attempts (without the budget: 300)\n", attempts)
	// Output: 100 calls -> 111 attempts (without the budget: 300)
}

func ExampleParseRetryAfter() {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	d, _ := retry.ParseRetryAfter("120", now)
	fmt.Println(d)
	d, _ = retry.ParseRetryAfter("Tue, 24 Nov 2026 12:00:30 GMT", now)
	fmt.Println(d)
	// Output:
	// 2m0s
	// 30s
}
