package bench

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/scalekit-go/scalekit/ratelimit"
)

// BenchmarkLocalAllow: one key, parallel, every call admitted (a rate so high
// the bucket never empties), so both sides run their full decision path.
func BenchmarkLocalAllow(b *testing.B) {
	ctx := context.Background()
	b.Run("scalekit", func(b *testing.B) {
		l, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 1_000_000_000, Burst: 1_000_000}}})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if d, _ := l.Allow(ctx, "key"); !d.Allowed {
					b.Error("denied")
					return
				}
			}
		})
	})
	b.Run("xrate", func(b *testing.B) {
		l := rate.NewLimiter(rate.Limit(1_000_000_000), 1_000_000)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !l.Allow() {
					b.Error("denied")
					return
				}
			}
		})
	})
}

// BenchmarkLocalManyKeys fills a limiter with 1M distinct keys, reporting the
// heap each key costs, then measures decisions spread over them.
func BenchmarkLocalManyKeys(b *testing.B) {
	const keys = 1_000_000
	b.Run("scalekit", func(b *testing.B) {
		names := make([]string, keys)
		for i := range names {
			names[i] = "user:" + strconv.Itoa(i)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 10, Period: time.Hour}}, MaxKeys: keys})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for _, k := range names {
			l.Allow(ctx, k)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := l.Stats().Keys; got != keys {
			b.Fatalf("held %d keys, want %d", got, keys)
		}
		b.ReportAllocs()
		b.ResetTimer()
		// After ResetTimer, which deletes reported metrics.
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/keys, "bytes/key")
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				l.Allow(ctx, names[i%keys])
				i += 7919
			}
		})
	})
}

// BenchmarkLocalKeys: parallel decisions spread over 1, 1k and 1M keys
// already held, every call admitted, against what a service writes
// without a library: a sync.Map of x/time/rate limiters, one per key.
func BenchmarkLocalKeys(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1, 1_000, 1_000_000} {
		keys := func() []string {
			names := make([]string, n)
			for i := range names {
				names[i] = "user:" + strconv.Itoa(i)
			}
			return names
		}
		// A stride prime to every n walks all the keys in an order the
		// caches cannot predict.
		const stride = 7919
		b.Run(strconv.Itoa(n)+"/scalekit", func(b *testing.B) {
			names := keys()
			// The default MaxKeys (1M) holds every key: no key is swept or
			// evicted while the benchmark runs.
			l, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 1_000_000_000, Burst: 1_000_000}}})
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range names {
				l.Allow(ctx, k)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var start atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(1)) * 104_729
				for pb.Next() {
					if d, _ := l.Allow(ctx, names[i%n]); !d.Allowed {
						b.Error("denied")
						return
					}
					i += stride
				}
			})
			b.StopTimer()
			if st := l.Stats(); st.Keys != n || st.Swept+st.Evicted != 0 {
				b.Fatalf("stats %+v: the benchmark did not measure %d held keys", st, n)
			}
		})
		b.Run(strconv.Itoa(n)+"/syncmap-xrate", func(b *testing.B) {
			names := keys()
			var m sync.Map
			for _, k := range names {
				m.Store(k, rate.NewLimiter(rate.Limit(1_000_000_000), 1_000_000))
			}
			get := func(k string) *rate.Limiter {
				if v, ok := m.Load(k); ok {
					return v.(*rate.Limiter)
				}
				v, _ := m.LoadOrStore(k, rate.NewLimiter(rate.Limit(1_000_000_000), 1_000_000))
				return v.(*rate.Limiter)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var start atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(1)) * 104_729
				for pb.Next() {
					if !get(names[i%n]).Allow() {
						b.Error("denied")
						return
					}
					i += stride
				}
			})
		})
	}
}
