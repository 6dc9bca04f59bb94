package retry

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDoNoRetry is the cost every call through a Retrier pays: the
// first attempt succeeds.
func BenchmarkDoNoRetry(b *testing.B) {
	r, _ := New(Options{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Do(ctx, fn)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r.Do(ctx, fn)
			}
		})
	})
	// With a Budget: a deposit and the ctx mark for nested loops (one
	// allocation).
	bud, _ := NewBudget(BudgetOptions{})
	rb, _ := New(Options{Budget: bud})
	b.Run("budget/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rb.Do(ctx, fn)
			}
		})
	})
}

func BenchmarkDoValueNoRetry(b *testing.B) {
	r, _ := New(Options{})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			DoValue(ctx, r, fn)
		}
	})
}

// BenchmarkBudget: a deposit and a withdrawal, as a call and a retry make.
func BenchmarkBudget(b *testing.B) {
	bud, _ := NewBudget(BudgetOptions{Ratio: 1})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bud.Deposit()
			bud.Withdraw()
		}
	})
}

func BenchmarkBackoffNext(b *testing.B) {
	e := Exponential{Base: 100 * time.Millisecond, Cap: 10 * time.Second, Jitter: DecorrelatedJitter}
	var prev time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		prev = e.Next(i%10+1, prev, 0.5)
	}
}
