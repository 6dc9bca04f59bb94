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

// BenchmarkLocalFullNewKeys: a limiter full of 1M active keys (each used
// its bucket within the hour) meets a flood of keys it has never seen, as
// under a scan or an attack with random keys: each costs a bounded look
// at 16 held keys and one eviction, not a sweep of its shard.
func BenchmarkLocalFullNewKeys(b *testing.B) {
	const held = 1_000_000
	l, err := NewLocal(LocalOptions{Limits: Policy{{Rate: 10, Period: time.Hour}}, MaxKeys: held})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range held {
		l.Allow(ctx, "held:"+strconv.Itoa(i))
	}
	names := make([]string, 1<<20)
	for i := range names {
		names[i] = "new:" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l.Allow(ctx, names[i%len(names)])
	}
}
