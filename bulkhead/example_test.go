package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/bulkhead"
)

func ExampleBulkhead_Do() {
	bh, err := bulkhead.New(bulkhead.Options{Name: "inventory", MaxConcurrent: 1, NoQueue: true, MaxWait: time.Second})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	release, _ := bh.Acquire(ctx) // one call in flight: the bulkhead is full
	err = bh.Do(ctx, func(ctx context.Context) error { return nil })
	fmt.Println(err, errors.Is(err, bulkhead.ErrRejected))
	release()
	err = bh.Do(ctx, func(ctx context.Context) error { return nil })
	fmt.Println(err)
	s := bh.Stats()
	fmt.Println(s.Admitted, s.QueueFull)
	// Output:
	// bulkhead: full, wait queue full: bulkhead: rejected true
	// <nil>
	// 2 1
}
