package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func BenchmarkLocalAllowOneKey(b *testing.B) {
	l, _ := NewLocal(LocalOptions{Limits: Policy{{Rate: 1_000_000_000}}})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(ctx, "key")
		}
	})
}

func BenchmarkLocalAllowManyKeys(b *testing.B) {
	l, _ := NewLocal(LocalOptions{Limits: Policy{{Rate: 100, Period: time.Second}}})
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(ctx, keys[i%len(keys)])
			i++
		}
	})
}
