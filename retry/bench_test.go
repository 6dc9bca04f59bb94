package retry

import (
	"context"
	"testing"
)

func BenchmarkDoNoRetry(b *testing.B) {
	r, _ := New(Options{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Do(ctx, fn)
		}
	})
}
