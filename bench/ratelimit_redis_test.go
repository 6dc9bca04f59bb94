package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
)

// BenchmarkRedisAllow: decisions against one real redis-server on loopback
// over 1000 keys, at 1, 32 and 256 goroutines (g1, g32, g256), with a
// limit so high every call is admitted (every implementation runs its
// whole script and writes). ns/op is the inverse of decisions per second
// at that parallelism (dec/s says it directly); trips/op counts go-redis
// commands and pipelines per decision (a hook on the client), srv-µs/op
// is redis-server's CPU per decision (/proc/<pid>/stat), cli-µs/op this
// process's.
//
//   - scalekit: one script per AllowN (Options.Coalesce off).
//   - scalekit-coalesce: Options.Coalesce: concurrent AllowN calls share
//     round trips (exact decisions).
//   - scalekit-many: AllowMany of 32 keys per call (a caller with many
//     keys to decide at once: an op is one key's decision).
//   - scalekit-lease: Options.Lease 64 (not exact: see its bound).
//   - redis_rate: go-redis/redis_rate/v10, one script per decision.
func BenchmarkRedisAllow(b *testing.B) {
	r, rt, cpu := measuredRedis(b)
	benchAllow(b, r.Client, "", rt, cpu, []int{1, 32, 256})
}

// BenchmarkRedisClusterAllow is BenchmarkRedisAllow on a 3-master Redis
// Cluster (srv-µs/op: the three masters' CPU; trips/op: round trips to
// any master, a pipeline reaching three masters counts three), at 32 and
// 256 goroutines.
func BenchmarkRedisClusterAllow(b *testing.B) {
	c := testinfra.RedisCluster(b)
	cc := c.Server.NewClient()
	b.Cleanup(func() { cc.Close() })
	// Round trips are counted at the nodes: a Cluster pipeline is one per
	// master it reaches, and a batch's scripts go to each master directly.
	rt := &testinfra.RoundTrips{}
	cc.OnNewNode(func(n *redis.Client) { n.AddHook(rt) })
	var pids []int
	err := cc.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		pids = append(pids, redisPID(b, m))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	cpu := func() uint64 {
		var sum uint64
		for _, pid := range pids {
			sum += procTreeCPU(pid)
		}
		return sum
	}
	benchAllow(b, cc, c.Prefix, rt, cpu, []int{32, 256})
}

func benchAllow(b *testing.B, client redis.UniversalClient, prefix string, rt *testinfra.RoundTrips, cpu func() uint64, goroutines []int) {
	ctx := context.Background()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	policy := ratelimit.Policy{{Rate: 1_000_000, Burst: 1_000_000}}
	newLimiter := func(b *testing.B, o ratelimitredis.Options) *ratelimitredis.Limiter {
		o.Client, o.Limits, o.Prefix, o.Timeout = client, policy, prefix+"ratelimit", testinfra.CallTimeout // not the 100ms default: a loaded CI box would measure fallbacks
		l, err := ratelimitredis.New(o)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	fromRedis := func(b *testing.B, l *ratelimitredis.Limiter) {
		if st := l.Stats(); st.Errors+st.FailOpen > 0 {
			b.Fatalf("decisions that did not come from Redis: %+v", st)
		}
	}
	for _, g := range goroutines {
		b.Run(fmt.Sprintf("g%d", g), func(b *testing.B) {
			measure := func(b *testing.B, per int, allow func(i int) error) {
				measureParallel(b, g, per, rt.Load, cpu, allow)
			}
			single := func(o ratelimitredis.Options) func(b *testing.B) {
				return func(b *testing.B) {
					l := newLimiter(b, o)
					measure(b, 1, func(i int) error { return allowed(l.Allow(ctx, keys[i%len(keys)])) })
					fromRedis(b, l)
				}
			}
			b.Run("scalekit", single(ratelimitredis.Options{}))
			b.Run("scalekit-coalesce", single(ratelimitredis.Options{Coalesce: true}))
			b.Run("scalekit-many", func(b *testing.B) {
				const batch = 32
				l := newLimiter(b, ratelimitredis.Options{})
				measure(b, batch, func(i int) error {
					j := (i * batch) % (len(keys) - batch)
					ds, err := l.AllowMany(ctx, keys[j:j+batch], 1)
					if err != nil {
						return err
					}
					for _, d := range ds {
						if err := allowed(d, nil); err != nil {
							return err
						}
					}
					return nil
				})
				fromRedis(b, l)
			})
			b.Run("scalekit-lease", single(ratelimitredis.Options{Lease: 64}))
			b.Run("redis_rate", func(b *testing.B) {
				l := redis_rate.NewLimiter(client)
				lim := redis_rate.Limit{Rate: 1_000_000, Burst: 1_000_000, Period: time.Second}
				measure(b, 1, func(i int) error {
					res, err := l.Allow(ctx, prefix+keys[i%len(keys)], lim)
					if err != nil || res.Allowed != 1 {
						return fmt.Errorf("Allow = %+v, %v", res, err)
					}
					return nil
				})
			})
		})
	}
}

func allowed(d ratelimit.Decision, err error) error {
	if err != nil || !d.Allowed {
		return fmt.Errorf("Allow = %+v, %v", d, err)
	}
	return nil
}

// measureParallel runs op from exactly g goroutines (RunParallel starts a
// multiple of GOMAXPROCS) until b.N decisions are made
// (op makes per of them) and reports decisions/s, round trips per
// decision (trips: a running count), the server's CPU per decision in µs
// (cpu: clock ticks) and this process's.
func measureParallel(b *testing.B, g, per int, trips func() int64, cpu func() uint64, op func(i int) error) {
	b.ReportAllocs()
	ops := (b.N + per - 1) / per
	var next atomic.Int64
	t0, c0, u0 := trips(), cpu(), selfCPU()
	start := time.Now()
	b.ResetTimer()
	run := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= ops {
				return
			}
			if err := op(i); err != nil {
				b.Error(err)
				return
			}
		}
	}
	done := make(chan struct{})
	for w := 0; w < g; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			run()
		}()
	}
	for w := 0; w < g; w++ {
		<-done
	}
	b.StopTimer()
	n := float64(ops * per)
	b.ReportMetric(n/time.Since(start).Seconds(), "dec/s")
	b.ReportMetric(float64(trips()-t0)/n, "trips/op")
	b.ReportMetric(float64(cpu()-c0)*1e6/clockTicks/n, "srv-µs/op")
	b.ReportMetric(float64(selfCPU()-u0)/1e3/n, "cli-µs/op")
}
