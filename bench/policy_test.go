package bench

import (
	"context"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/policy"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/timeout"
)

// BenchmarkPolicyComposed: the success path through a composed retry (3
// attempts), circuit breaker (5 consecutive failures) and a 1s timeout per
// attempt, in parallel: scalekit's policy.Compose(r, br, attempt) against
// failsafe-go's failsafe.With(retry, cb, timeout), composed the same way
// (retry outermost, the timeout innermost).
func BenchmarkPolicyComposed(b *testing.B) {
	ctx := context.Background()
	b.Run("scalekit", func(b *testing.B) {
		r, err := retry.New(retry.Options{MaxAttempts: 3, Retryable: policy.Retryable})
		if err != nil {
			b.Fatal(err)
		}
		br, err := breaker.New(breaker.Options{ConsecutiveFailures: 5})
		if err != nil {
			b.Fatal(err)
		}
		attempt, err := timeout.New(timeout.Options{Timeout: time.Second, Kind: timeout.Attempt})
		if err != nil {
			b.Fatal(err)
		}
		p := policy.Compose(r, br, attempt)
		op := func(context.Context) error { return nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := p.Do(ctx, op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("failsafe", func(b *testing.B) {
		rp := retrypolicy.NewBuilder[any]().WithMaxAttempts(3).WithBackoff(100*time.Millisecond, 10*time.Second).Build()
		cb := circuitbreaker.NewBuilder[any]().WithFailureThreshold(5).Build()
		to := fstimeout.New[any](time.Second)
		ex := failsafe.With[any](rp, cb, to)
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
