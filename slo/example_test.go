package slo_test

import (
	"context"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/priority"
	"github.com/scalekit-go/scalekit/slo"
)

func Example() {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // records all land at one instant
	s, _ := slo.New(slo.Options{Name: "checkout", Target: 0.999, Clock: clk})
	for i := 0; i < 100_000; i++ {
		s.Record(i%2000 != 0) // 50 failures in 100k requests
	}
	b := s.Budget()
	fmt.Printf("allowed %.0f bad events, consumed %d, %.0f%% of the budget left\n", b.Allowed, b.Consumed, 100*b.RemainingFraction)
	fmt.Printf("burn rate over 1h: %.1fx\n", s.BurnRate(time.Hour))
	// Output:
	// allowed 100 bad events, consumed 50, 50% of the budget left
	// burn rate over 1h: 0.5x
}

func ExampleShedder() {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	api, _ := slo.New(slo.Options{Name: "api", Target: 0.99, Clock: clk})
	shedder, _ := slo.NewShedder(slo.ShedderOptions{Objectives: []*slo.SLO{api}, Clock: clk})
	for range 100 {
		api.Record(false) // an outage: every request fails
	}
	clk.Add(time.Second)
	prefetch := priority.With(context.Background(), priority.Sheddable)
	payment := priority.With(context.Background(), priority.Critical)
	call := func(ctx context.Context) error { return nil }
	fmt.Println(shedder.Level())
	fmt.Println(shedder.Do(prefetch, call))
	fmt.Println(shedder.Do(payment, call))
	// Output:
	// default
	// slo: shed to save the error budget
	// <nil>
}
