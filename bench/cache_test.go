package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/scalekit-go/scalekit/cache"
)

// BenchmarkCacheHitL1: parallel hits over 1000 hot keys, all present.
func BenchmarkCacheHitL1(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	ctx := context.Background()
	b.Run("scalekit", func(b *testing.B) {
		c, err := cache.New[string](cache.Options{TTL: time.Hour, MaxEntries: 10_000})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		load := func(ctx context.Context, k string) (string, error) { return k, nil }
		for _, k := range keys {
			c.Get(ctx, k, load)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if v, _ := c.Get(ctx, keys[i%len(keys)], load); v == "" {
					b.Error("miss")
					return
				}
				i++
			}
		})
	})
	b.Run("otter", func(b *testing.B) {
		c := otter.Must(&otter.Options[string, string]{MaximumSize: 10_000, ExpiryCalculator: otter.ExpiryWriting[string, string](time.Hour)})
		defer c.StopAllGoroutines()
		for _, k := range keys {
			c.Set(k, k)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if v, _ := c.GetIfPresent(keys[i%len(keys)]); v == "" {
					b.Error("miss")
					return
				}
				i++
			}
		})
	})
}
