package bench

import (
	"context"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/scalekit-go/scalekit/retry"
)

// BenchmarkRetryNoRetry: the success path (first attempt succeeds) through
// each library's retry API, 3 attempts max with exponential backoff, in
// parallel: the overhead every call through a retrier pays.
func BenchmarkRetryNoRetry(b *testing.B) {
	ctx := context.Background()
	b.Run("scalekit", func(b *testing.B) {
		r, err := retry.New(retry.Options{MaxAttempts: 3})
		if err != nil {
			b.Fatal(err)
		}
		op := func(context.Context) error { return nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := r.Do(ctx, op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("backoff", func(b *testing.B) {
		op := func() (struct{}, error) { return struct{}{}, nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := backoff.Retry(ctx, op, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxTries(3)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("failsafe", func(b *testing.B) {
		rp := retrypolicy.NewBuilder[any]().WithMaxAttempts(3).WithBackoff(100*time.Millisecond, 10*time.Second).Build()
		ex := failsafe.With[any](rp)
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
