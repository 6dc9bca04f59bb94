package breaker_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/scalekit-go/scalekit/breaker"
)

func ExampleBreaker_Do() {
	br, _ := breaker.New(breaker.Options{Name: "payments", ConsecutiveFailures: 3})
	down := func(ctx context.Context) error { return errors.New("connection refused") }
	for i := 0; i < 5; i++ {
		err := br.Do(context.Background(), down)
		fmt.Println(i, br.State(), errors.Is(err, breaker.ErrOpen))
	}
	// Output:
	// 0 closed false
	// 1 closed false
	// 2 open false
	// 3 open true
	// 4 open true
}

func ExampleDoValue() {
	br, _ := breaker.New(breaker.Options{})
	price, err := breaker.DoValue(context.Background(), br, func(ctx context.Context) (int, error) { return 42, nil })
	fmt.Println(price, err)
	// Output: 42 <nil>
}

func ExampleGroup() {
	hosts, _ := breaker.NewGroup(breaker.GroupOptions{Template: breaker.Options{ConsecutiveFailures: 1}})
	hosts.Do(context.Background(), "eu.api.example", func(ctx context.Context) error { return errors.New("timeout") })
	err := hosts.Do(context.Background(), "eu.api.example", func(ctx context.Context) error { return nil })
	fmt.Println(errors.Is(err, breaker.ErrOpen))
	err = hosts.Do(context.Background(), "us.api.example", func(ctx context.Context) error { return nil })
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}

func ExampleDoValueJudged() {
	br, _ := breaker.New(breaker.Options{ConsecutiveFailures: 2})
	type response struct{ Status int }
	is5xx := func(r response) bool { return r.Status >= 500 }
	unavailable := func(ctx context.Context) (response, error) { return response{503}, nil }
	for i := 0; i < 3; i++ {
		r, err := breaker.DoValueJudged(context.Background(), br, unavailable, is5xx)
		fmt.Println(r.Status, err, br.State())
	}
	// Output:
	// 503 <nil> closed
	// 503 <nil> open
	// 0 breaker: open open
}

func ExampleBreaker_MetricsOnly() {
	br, _ := breaker.New(breaker.Options{ConsecutiveFailures: 2})
	br.MetricsOnly() // dry run: see how often it would trip before enforcing it
	for i := 0; i < 4; i++ {
		br.Do(context.Background(), func(ctx context.Context) error { return errors.New("timeout") })
	}
	st := br.Stats()
	fmt.Println(st.State, st.Failures, st.Rejected, st.WouldTrips)
	br.Reset() // enforce from now on
	fmt.Println(br.State())
	// Output:
	// metrics-only 4 0 2
	// closed
}

// Acquire is for code that cannot pass a function, such as a call that
// starts in one callback and ends in another: release records the outcome.
func ExampleBreaker_Acquire() {
	br, _ := breaker.New(breaker.Options{ConsecutiveFailures: 1})
	release, err := br.Acquire()
	if err != nil {
		return // rejected: breaker.ErrOpen
	}
	release(errors.New("timeout")) // the call failed
	release(nil)                   // a second call is harmless: it is not counted
	_, err = br.Acquire()
	fmt.Println(br.State(), err)
	// Output: open breaker: open
}
