package breaker

import (
	"context"
	"testing"
)

func BenchmarkDoClosed(b *testing.B) {
	br, _ := New(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			br.Do(ctx, ok)
		}
	})
}

func BenchmarkDoOpen(b *testing.B) {
	br, _ := New(Options{ConsecutiveFailures: 1})
	ctx := context.Background()
	br.Do(ctx, fail)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			br.Do(ctx, ok)
		}
	})
}
