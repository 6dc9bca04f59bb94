package throttle_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/scalekit-go/scalekit/priority"
	"github.com/scalekit-go/scalekit/throttle"
)

func ExampleThrottler_Do() {
	th, err := throttle.New(throttle.Options{Name: "inventory"}) // K = 2
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	overloaded := errors.New("503 Service Unavailable")
	for range 10 { // the backend refuses everything
		err = th.Do(ctx, func(ctx context.Context) error { return overloaded })
	}
	// 10 requests, 0 accepts: the next calls are refused locally with
	// probability (10 − 2·0)/(10 + 1).
	fmt.Printf("%.2f\n", th.Probability(priority.Default))
	fmt.Printf("%.2f\n", th.Probability(priority.Critical)) // K doubled, still no accepts
	fmt.Println(errors.Is(err, overloaded) || errors.Is(err, throttle.ErrThrottled))
	// Output:
	// 0.91
	// 0.91
	// true
}
