package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
)

// BenchmarkRedisAllow: decisions against one real redis-server on loopback,
// 16 goroutines per core, over 1000 keys, a limit so high every call is
// admitted (both sides run the full script and write). ns/op is the
// inverse of decisions per second at that parallelism.
func BenchmarkRedisAllow(b *testing.B) {
	r := testinfra.Redis(b)
	ctx := context.Background()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	b.Run("scalekit", func(b *testing.B) {
		l, err := ratelimitredis.New(ratelimitredis.Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 1_000_000, Burst: 1_000_000}}, Timeout: testinfra.CallTimeout}) // not the 100ms default: a loaded CI box would measure fallbacks
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				d, err := l.Allow(ctx, keys[i%len(keys)])
				if err != nil || !d.Allowed {
					b.Errorf("Allow = %+v, %v", d, err)
					return
				}
			}
		})
		if st := l.Stats(); st.Errors+st.FailOpen > 0 {
			b.Fatalf("decisions that did not come from Redis: %+v", st)
		}
	})
	b.Run("redis_rate", func(b *testing.B) {
		l := redis_rate.NewLimiter(r.Client)
		lim := redis_rate.Limit{Rate: 1_000_000, Burst: 1_000_000, Period: time.Second}
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				res, err := l.Allow(ctx, keys[i%len(keys)], lim)
				if err != nil || res.Allowed != 1 {
					b.Errorf("Allow = %+v, %v", res, err)
					return
				}
			}
		})
	})
}
