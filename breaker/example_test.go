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

func ExampleCall() {
	br, _ := breaker.New(breaker.Options{})
	price, err := breaker.Call(context.Background(), br, func(ctx context.Context) (int, error) { return 42, nil })
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
