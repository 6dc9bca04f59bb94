package bench

import (
	"bytes"
	"context"
	"testing"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// BenchmarkRedisGet is the floor for every Redis-backed primitive: one GET
// of a 128-byte value through go-redis against a real redis-server on
// loopback, from parallel goroutines. Cache L2 hits and Redis limiter
// decisions are read against it.
func BenchmarkRedisGet(b *testing.B) {
	r := testinfra.Redis(b)
	ctx := context.Background()
	val := bytes.Repeat([]byte("x"), 128)
	if err := r.Client.Set(ctx, "bench:key", val, 0).Err(); err != nil {
		b.Fatal(err)
	}
	b.Run("goredis", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				got, err := r.Client.Get(ctx, "bench:key").Bytes()
				if err != nil || len(got) != len(val) {
					b.Errorf("GET = %d bytes, %v", len(got), err)
					return
				}
			}
		})
	})
}
