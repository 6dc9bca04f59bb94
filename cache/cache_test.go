package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/clock"
)

func newCache(t testing.TB, o Options) *Cache[string] {
	t.Helper()
	c, err := New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// slowLoader counts calls and takes d.
func slowLoader(calls *atomic.Int32, d time.Duration) Loader[string] {
	return func(ctx context.Context, key string) (string, error) {
		n := calls.Add(1)
		time.Sleep(d)
		return fmt.Sprintf("%s#%d", key, n), nil
	}
}

func TestStampedeRunsLoaderOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Options{})
		var calls atomic.Int32
		load := slowLoader(&calls, 100*time.Millisecond)
		var wg sync.WaitGroup
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if v, err := c.Get(context.Background(), "k", load); err != nil || v != "k#1" {
					t.Errorf("Get = %q, %v", v, err)
				}
			}()
		}
		wg.Wait()
		if calls.Load() != 1 {
			t.Fatalf("loader ran %d times for 100 concurrent misses, want 1", calls.Load())
		}
		if st := c.Stats(); st.Loads != 1 || st.Coalesced != 99 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestCancellationDoesNotCancelTheLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Options{})
		var calls atomic.Int32
		var loadCtxErr atomic.Value
		load := func(ctx context.Context, key string) (string, error) {
			calls.Add(1)
			time.Sleep(100 * time.Millisecond)
			loadCtxErr.Store(fmt.Sprint(ctx.Err()))
			return "v", nil
		}
		leaderCtx, cancelLeader := context.WithCancel(context.Background())
		followerCtx, cancelFollower := context.WithCancel(context.Background())
		errs := make(chan error, 3)
		go func() { _, err := c.Get(leaderCtx, "k", load); errs <- err }()
		go func() { _, err := c.Get(followerCtx, "k", load); errs <- err }()
		res := make(chan string, 1)
		go func() { v, _ := c.Get(context.Background(), "k", load); res <- v }()
		time.Sleep(10 * time.Millisecond)
		cancelLeader()
		cancelFollower()
		for i := 0; i < 2; i++ {
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled caller: %v", err)
			}
		}
		if v := <-res; v != "v" {
			t.Fatalf("remaining caller got %q", v)
		}
		if calls.Load() != 1 || loadCtxErr.Load() != "<nil>" {
			t.Fatalf("%d loads, load ctx err %v: the callers' cancellation reached the load", calls.Load(), loadCtxErr.Load())
		}
	})
}

func TestPanicAndErrorsAreNotCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Options{})
		var calls atomic.Int32
		panicky := func(ctx context.Context, key string) (string, error) {
			calls.Add(1)
			time.Sleep(time.Millisecond)
			panic("bad row")
		}
		var wg sync.WaitGroup
		var panics atomic.Int32
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var pe *PanicError
				if _, err := c.Get(context.Background(), "k", panicky); errors.As(err, &pe) && pe.Value == "bad row" {
					panics.Add(1)
				}
			}()
		}
		wg.Wait()
		if panics.Load() != 10 || calls.Load() != 1 {
			t.Fatalf("%d of 10 waiters got the panic, %d loads", panics.Load(), calls.Load())
		}
		boom := errors.New("db down")
		if _, err := c.Get(context.Background(), "k", func(context.Context, string) (string, error) { return "", boom }); !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if v, err := c.Get(context.Background(), "k", func(context.Context, string) (string, error) { return "ok", nil }); v != "ok" || err != nil {
			t.Fatalf("after errors: %q %v; errors must not be cached", v, err)
		}
	})
}

func TestNegativeCaching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Options{TTL: time.Minute, NegativeTTL: 5 * time.Second})
		var calls atomic.Int32
		missing := func(context.Context, string) (string, error) {
			calls.Add(1)
			return "", fmt.Errorf("user 7: %w", ErrNotFound)
		}
		for i := 0; i < 3; i++ {
			if _, err := c.Get(context.Background(), "u7", missing); !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
		}
		if calls.Load() != 1 {
			t.Fatalf("%d loads within NegativeTTL, want 1", calls.Load())
		}
		time.Sleep(6 * time.Second)
		c.Get(context.Background(), "u7", missing)
		if calls.Load() != 2 {
			t.Fatalf("after NegativeTTL: %d loads, want 2", calls.Load())
		}
	})
}

func TestStaleWhileRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Options{TTL: time.Second, NoJitter: true, NoEarlyRefresh: true})
		var calls atomic.Int32
		load := slowLoader(&calls, 50*time.Millisecond)
		c.Get(context.Background(), "k", load)
		time.Sleep(1500 * time.Millisecond) // stale, within StaleFor (= TTL)
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if v, _ := c.Get(context.Background(), "k", load); v != "k#1" {
					t.Errorf("stale Get = %q, want the old value at once", v)
				}
			}()
		}
		wg.Wait()
		if time.Since(start) != 0 {
			t.Fatalf("stale Gets waited %v", time.Since(start))
		}
		time.Sleep(60 * time.Millisecond)
		if v, _ := c.Get(context.Background(), "k", load); v != "k#2" || calls.Load() != 2 {
			t.Fatalf("after the refresh: %q with %d loads, want k#2 and 2", v, calls.Load())
		}
		// Past StaleFor it is a miss that waits.
		time.Sleep(3 * time.Second)
		start = time.Now()
		c.Get(context.Background(), "k", load)
		if time.Since(start) != 50*time.Millisecond {
			t.Fatalf("expired Get took %v, want the 50ms load", time.Since(start))
		}
	})
}

// TestXFetchHotKey: under steady load on one key (TTL 1s, load 50ms), the
// loader runs about once per TTL, mostly started early by XFetch, and after
// warm-up no caller ever waits for it (a refresh XFetch starts too late to
// finish before expiry is covered by serving the value stale meanwhile).
func TestXFetchHotKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2)) // deterministic XFetch draws
		var rmu sync.Mutex
		o := Options{TTL: time.Second, NoJitter: true}
		SetRand(&o, func() float64 { rmu.Lock(); defer rmu.Unlock(); return rng.Float64() })
		c := newCache(t, o)
		var calls atomic.Int32
		load := slowLoader(&calls, 50*time.Millisecond)
		c.Get(context.Background(), "hot", load) // warm-up
		var maxWait time.Duration
		for i := 0; i < 2000; i++ { // 20s of a call every 10ms
			start := time.Now()
			if _, err := c.Get(context.Background(), "hot", load); err != nil {
				t.Fatal(err)
			}
			maxWait = max(maxWait, time.Since(start))
			time.Sleep(10 * time.Millisecond)
		}
		st := c.Stats()
		loads := calls.Load() - 1
		t.Logf("20s at 100 calls/s, TTL 1s, load 50ms: %d refreshes (%d early, %d on a stale read), max caller wait %v (loader 50ms)",
			loads, st.EarlyRefreshes, st.StaleRefreshes, maxWait)
		if maxWait != 0 {
			t.Fatalf("a caller waited %v for the loader after warm-up", maxWait)
		}
		if loads < 18 || loads > 26 {
			t.Fatalf("%d refreshes in 20s with TTL 1s, want about 20", loads)
		}
		if st.EarlyRefreshes < uint64(loads)/2 {
			t.Fatalf("only %d of %d refreshes were early: XFetch is not working", st.EarlyRefreshes, loads)
		}
	})
}

func TestJitterShortensTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Options{TTL: 10 * time.Second, Jitter: 0.2, NoStale: true, NoEarlyRefresh: true})
		now := time.Now().UnixNano()
		lo, hi := int64(1<<62), int64(0)
		for i := 0; i < 1000; i++ {
			e := c.newEntry("v", c.now())
			ttl := e.fresh - now
			lo, hi = min(lo, ttl), max(hi, ttl)
		}
		if lo < int64(8*time.Second) || hi > int64(10*time.Second) || hi-lo < int64(time.Second) {
			t.Fatalf("jittered TTLs in [%v, %v], want spread within [8s, 10s]", time.Duration(lo), time.Duration(hi))
		}
	})
}

func TestMaxConcurrentLoads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Options{MaxConcurrentLoads: 3})
		var running, peak atomic.Int32
		load := func(ctx context.Context, key string) (string, error) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(10 * time.Millisecond)
			running.Add(-1)
			return key, nil
		}
		var wg sync.WaitGroup
		for i := 0; i < 30; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); c.Get(context.Background(), fmt.Sprint(i), load) }()
		}
		wg.Wait()
		if peak.Load() != 3 {
			t.Fatalf("peak concurrent loads %d, want the cap 3", peak.Load())
		}
	})
}

func TestSetDeleteAndOptions(t *testing.T) {
	c := newCache(t, Options{})
	ctx := context.Background()
	c.Set(ctx, "k", "set")
	if v, _ := c.Get(ctx, "k", func(context.Context, string) (string, error) { return "loaded", nil }); v != "set" {
		t.Fatalf("after Set: %q", v)
	}
	c.Delete(ctx, "k")
	if v, _ := c.Get(ctx, "k", func(context.Context, string) (string, error) { return "loaded", nil }); v != "loaded" {
		t.Fatalf("after Delete: %q", v)
	}
	for _, o := range []Options{{TTL: -1}, {Jitter: 1.5}, {MaxEntries: -1}, {Beta: -1}, {MaxConcurrentLoads: -2}, {NegativeTTL: -1},
		{L1TTL: -1}, {LeaseTTL: time.Microsecond}, {PollInterval: -1}, {VersionTTL: -1}, {StaleFor: -1}, {LoadTimeout: -1},
		{EarlyWindow: 1}, {EarlyWindow: -0.5}} {
		if _, err := New[string](o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Options.") {
			t.Errorf("New(%+v) = %v", o, err)
		}
	}
}

func TestHammer(t *testing.T) {
	c := newCache(t, Options{TTL: 5 * time.Millisecond, MaxEntries: 100})
	var calls atomic.Int32
	load := func(ctx context.Context, key string) (string, error) {
		calls.Add(1)
		if key == "k13" {
			return "", ErrNotFound
		}
		return "v" + key, nil
	}
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				k := fmt.Sprint("k", (g+i)%40)
				v, err := c.Get(context.Background(), k, load)
				if k == "k13" {
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("k13: %v", err)
					}
				} else if err != nil || v != "v"+k {
					t.Errorf("%s: %q %v", k, v, err)
				}
				if i%50 == 0 {
					c.Delete(context.Background(), k)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("hammer: %d loads for %d Gets; stats %+v", calls.Load(), 64*300, c.Stats())
}

// XFetch never refreshes earlier than EarlyWindow x TTL before expiry,
// however large its draw (the lead a busy fleet's hit rate produces).
// earlyCache is a cache with TTL 1s on a clock the test moves (at) whose
// XFetch draws are all 1e-300: a hit allowed to refresh early does.
func earlyCache(t *testing.T) (*Cache[string], *atomic.Int64) {
	at := new(atomic.Int64)
	at.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, at.Load()) }
	o := Options{TTL: time.Second, NoJitter: true, Clock: clock.Func(now)}
	SetRand(&o, func() float64 { return 1e-300 })
	return newCache(t, o), at
}

func TestEarlyRefreshBoundedByEarlyWindow(t *testing.T) {
	c, at := earlyCache(t)
	ctx := context.Background()
	var loads atomic.Int32
	load := func(ctx context.Context, k string) (string, error) {
		loads.Add(1)
		at.Add(int64(10 * time.Millisecond)) // a 10ms load: -ln(1e-300) x 10ms is a 6.9s lead
		return "v", nil
	}
	if _, err := c.Get(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	expiry := at.Load() + int64(time.Second)
	at.Store(expiry - int64(60*time.Millisecond)) // outside the default 5% window
	if _, err := c.Get(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.EarlyRefreshes != 0 || loads.Load() != 1 {
		t.Fatalf("60ms before expiry (window 50ms): %d early refreshes, %d loads; want none", st.EarlyRefreshes, loads.Load())
	}
	at.Store(expiry - int64(40*time.Millisecond)) // inside it
	if _, err := c.Get(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.EarlyRefreshes != 1 {
		t.Fatalf("40ms before expiry: %d early refreshes, want 1", st.EarlyRefreshes)
	}
}

// The default L1TTL is a tenth of TTL: with the invalidation messages
// lost unnoticed, an L1 copy lags another instance's Set by at most that.
func TestDefaultL1TTLIsAFractionOfTTL(t *testing.T) {
	c := newCache(t, Options{TTL: time.Minute})
	if c.o.L1TTL != 6*time.Second {
		t.Fatalf("default L1TTL for TTL 1m: %v, want 6s", c.o.L1TTL)
	}
}

// The L1's maintenance after a write (eviction) runs in the writing
// goroutine: right after a run of Sets the L1 holds at most MaxEntries
// (plus the one a drain another goroutine held back may leave), where a
// drain in a goroutine of its own left the writes it had not applied yet.
func TestL1WritesEvictInTheWriter(t *testing.T) {
	const max = 16
	c := newCache(t, Options{TTL: time.Minute, MaxEntries: max})
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		for i := 0; i < 200; i++ {
			if err := c.Set(ctx, "k"+strconv.Itoa(round*200+i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		if n := c.Stats().Entries; n > max+1 {
			t.Fatalf("round %d: %d entries right after the Sets, MaxEntries %d", round, n, max)
		}
	}
}
