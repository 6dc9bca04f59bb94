package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/scalekit-go/scalekit/breaker"
)

var errDown = errors.New("down")

// BenchmarkBreakerClosed: the success path through a closed breaker that
// trips on 5 consecutive failures, in parallel.
func BenchmarkBreakerClosed(b *testing.B) {
	ctx := context.Background()
	b.Run("scalekit", func(b *testing.B) {
		br, err := breaker.New(breaker.Options{ConsecutiveFailures: 5})
		if err != nil {
			b.Fatal(err)
		}
		op := func(context.Context) error { return nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Do(ctx, op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("gobreaker", func(b *testing.B) {
		br := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 }})
		op := func() (struct{}, error) { return struct{}{}, nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := br.Execute(op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("failsafe", func(b *testing.B) {
		cb := circuitbreaker.NewBuilder[any]().WithFailureThreshold(5).Build()
		ex := failsafe.With[any](cb)
		op := func() error { return nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := ex.Run(op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkBreakerOpen: the reject path of an open breaker, in parallel.
func BenchmarkBreakerOpen(b *testing.B) {
	ctx := context.Background()
	b.Run("scalekit", func(b *testing.B) {
		br, _ := breaker.New(breaker.Options{ConsecutiveFailures: 1, OpenTimeout: time.Hour})
		br.Do(ctx, func(context.Context) error { return errDown })
		op := func(context.Context) error { return nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Do(ctx, op); !errors.Is(err, breaker.ErrOpen) {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("gobreaker", func(b *testing.B) {
		br := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Timeout: time.Hour, ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }})
		br.Execute(func() (struct{}, error) { return struct{}{}, errDown })
		op := func() (struct{}, error) { return struct{}{}, nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := br.Execute(op); !errors.Is(err, gobreaker.ErrOpenState) {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("failsafe", func(b *testing.B) {
		cb := circuitbreaker.NewBuilder[any]().WithFailureThreshold(1).WithDelay(time.Hour).Build()
		cb.Open()
		ex := failsafe.With[any](cb)
		op := func() error { return nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := ex.Run(op); !errors.Is(err, circuitbreaker.ErrOpen) {
					b.Error(err)
					return
				}
			}
		})
	})
}
