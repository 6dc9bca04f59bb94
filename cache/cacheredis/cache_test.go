package cacheredis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachetest"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// peak tracks the most loader calls running at once.
type peak struct{ cur, max atomic.Int64 }

func (p *peak) enter() {
	n := p.cur.Add(1)
	for m := p.max.Load(); n > m && !p.max.CompareAndSwap(m, n); m = p.max.Load() {
	}
}
func (p *peak) leave() { p.cur.Add(-1) }

// Redis is stopped mid-run: every Get keeps succeeding (L1, then the
// loader), loader calls stay under MaxConcurrentLoads, the circuit keeps
// requests off the dead Redis, and after the restart the L2 and the
// invalidation messages work again.
func TestCacheRedisStoppedMidRun(t *testing.T) {
	r := testinfra.Redis(t)
	const maxLoads = 3
	var caches []*cache.Cache[string]
	var peaks []*peak
	for i := 0; i < 2; i++ {
		br, err := breaker.New(breaker.Options{ConsecutiveFailures: 2, OpenTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		caches = append(caches, cachetest.Instances(t, 1, newStore(t, Options{Client: r.Client, Timeout: 50 * time.Millisecond}),
			cache.Options{TTL: 100 * time.Millisecond, NoStale: true, MaxConcurrentLoads: maxLoads, Breaker: br})...)
		peaks = append(peaks, &peak{})
	}
	loaders := make([]cache.Loader[string], 2)
	var loads atomic.Int64
	for i := range loaders {
		p := peaks[i]
		loaders[i] = func(ctx context.Context, key string) (string, error) {
			p.enter()
			defer p.leave()
			loads.Add(1)
			time.Sleep(2 * time.Millisecond)
			return "v:" + key, nil
		}
	}
	var failures atomic.Int64
	var firstErr atomic.Value
	run := func(d time.Duration) {
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					i := g % 2
					key := fmt.Sprintf("k%d", rand.IntN(200))
					v, err := caches[i].Get(context.Background(), key, loaders[i])
					if err != nil || v != "v:"+key {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%q %v", v, err))
					}
				}
			}()
		}
		wg.Wait()
	}
	run(200 * time.Millisecond)
	before := caches[0].Stats()
	r.Stop()
	run(400 * time.Millisecond)
	down := caches[0].Stats()
	r.Start()
	if failures.Load() > 0 {
		t.Fatalf("%d Gets failed (first: %v)", failures.Load(), firstErr.Load())
	}
	for i, p := range peaks {
		if p.max.Load() > maxLoads {
			t.Fatalf("instance %d ran %d loads at once, MaxConcurrentLoads is %d", i, p.max.Load(), maxLoads)
		}
	}
	if down.L2Errors == before.L2Errors || down.L2Skipped == before.L2Skipped {
		t.Fatalf("with Redis down: stats %+v; want Store errors, then the circuit skipping the Store", down)
	}
	t.Logf("Redis down for 400ms: %d L2 errors, %d Store calls skipped by the circuit, %d loads in all",
		down.L2Errors-before.L2Errors, down.L2Skipped-before.L2Skipped, loads.Load())
	// After the restart: the L2 is used again, and a Set on one instance
	// reaches the other's L1 (the subscription came back).
	ctx := context.Background()
	eventually(t, "a value set on instance 0 is read from the Store by instance 1", func() bool {
		if err := caches[0].Set(ctx, "after", "restart"); err != nil {
			return false
		}
		hits := caches[1].Stats().L2Hits
		v, err := caches[1].Get(ctx, "after", loaders[1])
		return err == nil && v == "restart" && caches[1].Stats().L2Hits > hits
	})
	if _, err := caches[1].Get(ctx, "sub", loaders[1]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an invalidation from instance 0 reaches instance 1", func() bool {
		if err := caches[0].Set(ctx, "sub", fmt.Sprint(rand.Int())); err != nil {
			return false
		}
		return caches[1].Stats().Invalidations > down.Invalidations
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 15*time.Second, what, cond)
}

// A hot key under steady load on two instances is refreshed in the
// background before it expires (XFetch), about once per TTL for the
// fleet, and after warm-up no caller waits for the loader.
func TestHotKeyEarlyRefresh(t *testing.T) {
	r := testinfra.Redis(t)
	const ttl, loadTime = 300 * time.Millisecond, 5 * time.Millisecond
	caches := []*cache.Cache[string]{}
	for i := 0; i < 2; i++ {
		caches = append(caches, cachetest.Instances(t, 1, newStore(t, Options{Client: r.Client}), cache.Options{TTL: ttl, NoJitter: true})...)
	}
	var loads atomic.Int64
	load := func(ctx context.Context, key string) (string, error) {
		n := loads.Add(1)
		time.Sleep(loadTime)
		return fmt.Sprint(n), nil
	}
	ctx := context.Background()
	for _, c := range caches {
		if _, err := c.Get(ctx, "hot", load); err != nil {
			t.Fatal(err)
		}
	}
	warm := []cache.Stats{caches[0].Stats(), caches[1].Stats()}
	start := time.Now()
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 2*time.Second {
				t0 := time.Now()
				if _, err := caches[g%2].Get(ctx, "hot", load); err != nil {
					t.Error(err)
					return
				}
				if d := int64(time.Since(t0)); d > slowest.Load() {
					slowest.Store(d)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cycles := int64(elapsed / ttl)
	var misses, early uint64
	for i, c := range caches {
		st := c.Stats()
		misses += st.Misses - warm[i].Misses
		early += st.EarlyRefreshes - warm[i].EarlyRefreshes
	}
	t.Logf("%v of load on 2 instances, TTL %v: %d loads (%d TTL periods), %d early refreshes started, slowest Get %v (loader %v)",
		elapsed.Round(time.Millisecond), ttl, loads.Load()-1, cycles, early, time.Duration(slowest.Load()), loadTime)
	if misses != 0 {
		t.Fatalf("%d Gets waited for a load after warm-up, want 0", misses)
	}
	if got := loads.Load() - 1; got < cycles-1 || got > cycles+2 {
		t.Fatalf("%d loads in %d TTL periods, want about one per period for the whole fleet", got, cycles)
	}
}
