package cache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachetest"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/poll"
)

// With the Store unreachable, an L1 copy whose L1 freshness (L1TTL) ran
// out but whose value is still fresh is kept, not loaded again every
// L1TTL for as long as the outage lasts.
func TestStoreDownKeepsFreshCopyPastL1TTL(t *testing.T) {
	var at atomic.Int64
	at.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, at.Load()) }
	out := &cachetest.Outage{Store: cache.NewMemoryStore(cache.MemoryStoreOptions{Clock: clock.Func(now)})}
	c, err := cache.New[string](cache.Options{Store: out, TTL: time.Hour, L1TTL: time.Minute, NoJitter: true, NoEarlyRefresh: true, Clock: clock.Func(now)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var loads atomic.Int32
	load := func(context.Context, string) (string, error) { loads.Add(1); return "v", nil }
	if _, err := c.Get(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	out.Down.Store(true)
	at.Add(int64(2 * time.Minute)) // past L1TTL, well within TTL
	if v, err := c.Get(ctx, "k", load); err != nil || v != "v" {
		t.Fatalf("Get past L1TTL with the Store down: %q, %v", v, err)
	}
	poll.Until(t, 5*time.Second, "the L1 copy is fresh again", func() bool {
		before := c.Stats().Hits
		_, _ = c.Get(ctx, "k", load)
		return c.Stats().Hits > before
	})
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads: the copy was loaded again while its value was fresh and the Store down", n)
	}
}

// Close delivers the invalidations still pending, if the Store answers.
func TestCloseDeliversPendingInvalidations(t *testing.T) {
	store := cache.NewMemoryStore(cache.MemoryStoreOptions{})
	out := &cachetest.Outage{Store: store}
	b, err := cache.New[string](cache.Options{Store: store, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// The flusher would wait an hour: only Close can deliver here.
	a, err := cache.New[string](cache.Options{Store: out, TTL: time.Hour, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	out.Down.Store(true)
	if err := a.Delete(ctx, "k"); err == nil {
		t.Fatal("Delete with the Store down returned no error")
	}
	if st := a.Stats(); st.PendingInvalidations != 1 {
		t.Fatalf("%d pending, want 1", st.PendingInvalidations)
	}
	out.Down.Store(false)
	before := b.Stats().Invalidations
	a.Close()
	if recs, _ := store.Get(ctx, []string{"k"}); recs[0] != nil {
		t.Fatal("after Close the deleted key is still in the Store")
	}
	if b.Stats().Invalidations != before+1 {
		t.Fatal("Close did not publish the pending invalidation")
	}
}

// Many goroutines Set, Delete and Get on three instances while one
// instance's Store access flaps: nothing races, and once the Store answers
// for good every pending invalidation is delivered and every instance
// serves the last value set.
func TestHammerPendingInvalidations(t *testing.T) {
	store := cache.NewMemoryStore(cache.MemoryStoreOptions{})
	out := &cachetest.Outage{Store: store}
	o := cache.Options{TTL: time.Hour, PollInterval: time.Millisecond, MaxPendingInvalidations: 8}
	var caches []*cache.Cache[string]
	for i := range 3 {
		var s cache.Store = store
		o.Breaker = nil
		if i == 0 {
			s = out
			br, err := breaker.New(breaker.Options{ConsecutiveFailures: 2, OpenTimeout: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			o.Breaker = br
		}
		o.Store = s
		c, err := cache.New[string](o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		caches = append(caches, c)
	}
	ctx := context.Background()
	load := func(_ context.Context, k string) (string, error) { return "L" + k, nil }
	stop := make(chan struct{})
	flapped := make(chan struct{})
	go func() {
		defer close(flapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				out.Down.Store(false)
				return
			default:
			}
			out.Down.Store(i%2 == 0)
			time.Sleep(time.Millisecond)
		}
	}()
	done := make(chan struct{})
	for g := range 16 {
		go func() {
			defer func() { done <- struct{}{} }()
			c := caches[g%3]
			for i := range 300 {
				k := "k" + string(rune('a'+(g*7+i)%20))
				switch i % 4 {
				case 0:
					_ = c.Set(ctx, k, "S"+k)
				case 1:
					_ = c.Delete(ctx, k)
				default:
					if v, err := c.Get(ctx, k, load); err != nil || v != "L"+k && v != "S"+k {
						t.Errorf("Get(%s) = %q, %v", k, v, err)
					}
				}
			}
		}()
	}
	for range 16 {
		<-done
	}
	close(stop)
	<-flapped
	poll.Until(t, 10*time.Second, "nothing pending on instance 0", func() bool {
		st := caches[0].Stats()
		return st.PendingInvalidations == 0
	})
	for i := range 20 {
		k := "k" + string(rune('a'+i))
		c := caches[i%3]
		poll.Until(t, 10*time.Second, "a Set of "+k+" goes through", func() bool { return c.Set(ctx, k, "final"+k) == nil })
		poll.Until(t, 10*time.Second, "every instance serves the final value of "+k, func() bool {
			for _, c := range caches {
				if v, err := c.Get(ctx, k, load); err != nil || v != "final"+k {
					return false
				}
			}
			return true
		})
	}
}

// An instance whose early refresh finds a newer value in the Store (one
// another instance just refreshed) takes it instead of loading: the
// fleet refreshes a hot key once.
func TestEarlyRefreshTakesNewerStoreValue(t *testing.T) {
	var at atomic.Int64
	at.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, at.Load()) }
	store := cache.NewMemoryStore(cache.MemoryStoreOptions{Clock: clock.Func(now)})
	o := cache.Options{Store: store, TTL: time.Second, L1TTL: time.Second, NoJitter: true, Clock: clock.Func(now)}
	cache.SetRand(&o, func() float64 { return 1e-300 })
	a, err := cache.New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := cache.New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	var loads atomic.Int32
	load := func(context.Context, string) (string, error) {
		n := loads.Add(1)
		at.Add(int64(10 * time.Millisecond))
		return string(rune('0' + n)), nil
	}
	for _, c := range []*cache.Cache[string]{a, b} {
		if v, err := c.Get(ctx, "k", load); err != nil || v != "1" {
			t.Fatalf("warm-up: %q, %v", v, err)
		}
	}
	at.Add(int64(980 * time.Millisecond)) // inside the early window of both copies
	_, _ = a.Get(ctx, "k", load)
	poll.Until(t, 5*time.Second, "A's early refresh lands", func() bool {
		v, _ := a.Get(ctx, "k", load)
		return v == "2"
	})
	_, _ = b.Get(ctx, "k", load)
	poll.Until(t, 5*time.Second, "B takes A's refreshed value", func() bool {
		v, _ := b.Get(ctx, "k", load)
		return v == "2"
	})
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads: B's early refresh loaded although the Store had A's newer value", n)
	}
	if st := b.Stats(); st.EarlyRefreshes == 0 {
		t.Fatalf("B started no early refresh: %+v", st)
	}
}
