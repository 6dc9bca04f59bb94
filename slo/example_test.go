package slo_test

import (
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/clock"
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
