package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/timeout"
)

func ExampleTimeout_Do() {
	attempt, err := timeout.New(timeout.Options{Timeout: 20 * time.Millisecond, Kind: timeout.Attempt})
	if err != nil {
		panic(err)
	}
	slow := func(ctx context.Context) error {
		select {
		case <-ctx.Done(): // a call that respects its ctx returns at the deadline
			return ctx.Err()
		case <-time.After(time.Minute):
			return nil
		}
	}
	err = attempt.Do(context.Background(), slow)
	fmt.Println(err)
	fmt.Println(errors.Is(err, timeout.ErrAttempt), errors.Is(err, timeout.ErrTotal), errors.Is(err, context.DeadlineExceeded))

	err = attempt.Do(context.Background(), func(ctx context.Context) error { return nil })
	fmt.Println(err)
	// Output:
	// timeout: attempt timeout 20ms passed: context deadline exceeded
	// true false true
	// <nil>
}
