package cacheredis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachetest"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// The tracking tests keep L1 copies for an hour (TTL an hour, L1TTL left
// to its tracking default, TTL): only Redis's invalidations, or the
// flushes when their feed is lost, can make an instance drop one.

// tracked returns n cache instances with Options.Tracking on client,
// each with its own Store (and so its own tracking connection).
func tracked(t *testing.T, n int, client redis.UniversalClient, prefix string) []*cache.Cache[string] {
	t.Helper()
	out := make([]*cache.Cache[string], n)
	for i := range out {
		out[i] = cachetest.Instances(t, 1, newStore(t, Options{Client: client, Prefix: prefix, Tracking: true}), cache.Options{TTL: time.Hour})[0]
	}
	return out
}

// plainClient is a go-redis client that has nothing to do with scalekit:
// "another program" writing the cache's keys directly.
func plainClient(t *testing.T, r *testinfra.RedisFixture) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// envelopes returns the Store records of values (cache envelopes fresh
// for an hour), made by c under keys the test does not read.
func envelopes(t *testing.T, c *cache.Cache[string], plain *redis.Client, prefix string, values ...string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	for _, v := range values {
		if err := c.Set(ctx, "seed:"+v, v); err != nil {
			t.Fatal(err)
		}
		b, err := plain.Get(ctx, "{"+prefix+":seed:"+v+"}").Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out[v] = b
	}
	return out
}

// hold makes c read key (want) into its L1 and checks that a second read
// is an L1 hit.
func hold(t *testing.T, c *cache.Cache[string], key, want string, load cache.Loader[string]) {
	t.Helper()
	ctx := context.Background()
	eventually(t, "the instance holds "+key+"="+want+" in its L1", func() bool {
		if v, err := c.Get(ctx, key, load); err != nil || v != want {
			return false
		}
		hits := c.Stats().Hits
		v, err := c.Get(ctx, key, load)
		return err == nil && v == want && c.Stats().Hits > hits
	})
}

func constLoader(v string) cache.Loader[string] {
	return func(context.Context, string) (string, error) { return v, nil }
}

// Three instances hold a key in their L1 (for an hour); a plain go-redis
// client, not scalekit, overwrites it, deletes it, and lets a short
// Redis TTL expire it: each time all three drop their copy and serve
// what Redis has.
func TestTrackingInvalidatesEveryInstance(t *testing.T) {
	r := testinfra.Redis(t)
	plain := plainClient(t, r)
	caches := tracked(t, 3, r.Client, "tr")
	env := envelopes(t, caches[0], plain, "tr", "old", "new", "short")
	ctx := context.Background()
	load := constLoader("loaded")
	if err := plain.Set(ctx, "{tr:k}", env["old"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Three writes under the prefix so far (the seeds and k): once every
	// instance heard of them, nothing is in flight to drop a copy.
	for _, c := range caches {
		eventually(t, "the seed writes reach the instance", func() bool { return c.Stats().Invalidations >= 4 })
		hold(t, c, "k", "old", load)
	}
	for _, step := range []struct {
		what  string
		write func() error
		want  string
	}{
		{"overwritten", func() error { return plain.Set(ctx, "{tr:k}", env["new"], 0).Err() }, "new"},
		{"deleted", func() error { return plain.Del(ctx, "{tr:k}").Err() }, "loaded"},
		{"expired", func() error { return plain.Set(ctx, "{tr:k}", env["short"], 2*time.Second).Err() }, "loaded"},
	} {
		if err := step.write(); err != nil {
			t.Fatal(err)
		}
		if step.what == "expired" {
			// Hold the short-lived value first: only its expiry in Redis
			// can drop it then.
			for _, c := range caches {
				hold(t, c, "k", "short", load)
			}
		}
		for i, c := range caches {
			eventually(t, fmt.Sprintf("instance %d serves the %s key's new value", i, step.what), func() bool {
				v, err := c.Get(ctx, "k", load)
				return err == nil && v == step.want
			})
		}
		if step.what == "deleted" {
			// The load filled Redis again: hold that copy for the next step.
			for _, c := range caches {
				hold(t, c, "k", "loaded", load)
			}
		}
	}
}

// Redis's invalidation of a key written by a plain client reaches three
// subscribed Stores (three instances' tracking connections): the delay
// from just before the write to each arrival is logged, and bounded
// generously (1s) so that the test cannot flake on a loaded machine.
func TestTrackingDelay(t *testing.T) {
	r := testinfra.Redis(t)
	plain := plainClient(t, r)
	const n, rounds = 3, 300
	arrivals := make([]chan time.Time, n)
	for i := range arrivals {
		arrivals[i] = make(chan time.Time, rounds)
		s := newStore(t, Options{Client: r.Client, Prefix: "td", Tracking: true})
		stop, err := s.SubscribeTracking(func(msg string) {
			if msg == "|k|k" {
				arrivals[i] <- time.Now()
			}
		}, func() { t.Error("the tracking connection was lost") }, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	ctx := context.Background()
	var delays []time.Duration // the slowest of the three, per write
	for i := range rounds {
		start := time.Now()
		if err := plain.Set(ctx, "{td:k}", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		var slowest time.Duration
		for j, ch := range arrivals {
			select {
			case at := <-ch:
				slowest = max(slowest, at.Sub(start))
			case <-time.After(time.Second):
				t.Fatalf("write %d: instance %d heard nothing within 1s", i, j)
			}
		}
		delays = append(delays, slowest)
	}
	slices.Sort(delays)
	q := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))] }
	t.Logf("%d writes by a plain client, invalidation reaching all %d instances: p50 %v, p90 %v, p99 %v, max %v",
		rounds, n, q(0.5), q(0.9), q(0.99), delays[len(delays)-1])
}

// cuttable is a client whose dialer the test can cut, for an instance
// whose tracking connection cannot come back until the test allows it.
func cuttable(t *testing.T, r *testinfra.RedisFixture) (*redis.Client, *atomic.Bool) {
	var cut atomic.Bool
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if cut.Load() {
				return nil, errors.New("test: the network is cut")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	t.Cleanup(func() { c.Close() })
	return c, &cut
}

// The tracking connection is killed (CLIENT KILL) and cannot reconnect
// for a while: the instance drops the copy it held, so a write made
// meanwhile is served; once tracking is back, a later write by a plain
// client reaches the instance again.
func TestTrackingConnectionKilled(t *testing.T) {
	r := testinfra.Redis(t)
	plain := plainClient(t, r)
	client, cut := cuttable(t, r)
	b := tracked(t, 1, client, "tk")[0]
	env := envelopes(t, b, plain, "tk", "old", "new", "newer", "newest")
	ctx := context.Background()
	load := constLoader("loaded")
	if err := plain.Set(ctx, "{tk:k}", env["old"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the seed writes reach the instance", func() bool { return b.Stats().Invalidations >= 5 })
	hold(t, b, "k", "old", load)
	cut.Store(true)
	if err := plain.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if err := plain.Set(ctx, "{tk:k}", env["new"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the write made while tracking is down is served", func() bool {
		v, err := b.Get(ctx, "k", load)
		return err == nil && v == "new"
	})
	if st := b.Stats(); st.FeedLosses != 1 || st.Resubscribes != 0 {
		t.Fatalf("tracking came back through a cut network: %+v", st)
	}
	cut.Store(false)
	eventually(t, "tracking is back", func() bool { return b.Stats().Resubscribes >= 1 })
	// After the return the L1 was dropped: read k again, then only the
	// re-established tracking can tell the instance of the next write.
	if err := plain.Set(ctx, "{tk:k}", env["newer"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	hold(t, b, "k", "newer", load)
	if err := plain.Set(ctx, "{tk:k}", env["newest"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a write after tracking came back reaches the instance", func() bool {
		v, err := b.Get(ctx, "k", load)
		return err == nil && v == "newest"
	})
}

// Redis is paused past two pings (the tracking connection counts as lost)
// and later restarted (empty): each time the instance drops its L1 and
// tracking comes back, so plain writes afterwards still reach it.
func TestTrackingRedisPausedAndRestarted(t *testing.T) {
	r := testinfra.Redis(t)
	plain := plainClient(t, r)
	b := tracked(t, 1, r.Client, "tp")[0]
	ctx := context.Background()
	load := constLoader("loaded")
	rounds := 0
	check := func(what string) {
		t.Helper()
		rounds++
		env := envelopes(t, b, plain, "tp", "v"+strconv.Itoa(rounds))
		if err := plain.Set(ctx, "{tp:k}", env["v"+strconv.Itoa(rounds)], 0).Err(); err != nil {
			t.Fatal(err)
		}
		hold(t, b, "k", "v"+strconv.Itoa(rounds), load)
		if err := plain.Del(ctx, "{tp:k}").Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, what+": a plain write reaches the instance", func() bool {
			v, err := b.Get(ctx, "k", load)
			return err == nil && v == "loaded"
		})
	}
	check("at first")
	r.Pause()
	eventually(t, "the paused tracking connection counts as lost", func() bool { return b.Stats().FeedLosses >= 1 })
	r.Resume()
	eventually(t, "tracking is back after the pause", func() bool { return b.Stats().Resubscribes >= 1 })
	check("after the pause")
	r.Stop()
	r.Start()
	eventually(t, "tracking is back after the restart", func() bool { return b.Stats().Resubscribes >= 2 })
	check("after the restart")
}

// Many goroutines on three tracking instances read, Set and Delete a few
// keys while a plain client overwrites and deletes them; once the writers
// stop and a last Delete lands on every key, every instance serves
// the last value (a copy kept past an invalidation would be served for
// an hour). Run with -race.
func TestTrackingHammer(t *testing.T) {
	r := testinfra.Redis(t)
	plain := plainClient(t, r)
	caches := tracked(t, 3, r.Client, "th")
	const keys = 6
	var db sync.Map // key -> value: the source of truth
	load := func(_ context.Context, k string) (string, error) {
		v, ok := db.Load(k)
		if !ok {
			return "", cache.ErrNotFound
		}
		return v.(string), nil
	}
	ctx := context.Background()
	until := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	var gets atomic.Int64
	for ci, c := range caches {
		for g := range 8 {
			wg.Go(func() {
				for n := 0; time.Now().Before(until); n++ {
					k := "k" + strconv.Itoa(rand.IntN(keys))
					switch {
					case g == 0 && n%20 == 0:
						v := fmt.Sprintf("set-%d-%d", ci, n)
						db.Store(k, v)
						_ = c.Set(ctx, k, v)
					case g == 1 && n%30 == 0:
						db.Delete(k)
						_ = c.Delete(ctx, k)
					default:
						if _, err := c.Get(ctx, k, load); err != nil && !errors.Is(err, cache.ErrNotFound) {
							t.Errorf("Get %s: %v", k, err)
							return
						}
						gets.Add(1)
					}
				}
			})
		}
	}
	wg.Go(func() {
		for time.Now().Before(until) {
			k := "{th:k" + strconv.Itoa(rand.IntN(keys)) + "}"
			if rand.IntN(2) == 0 {
				_ = plain.Del(ctx, k).Err()
			} else {
				_ = plain.Set(ctx, k, "not an envelope", 0).Err()
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	for i := range keys {
		// Delete voids the key's fill lease, so a load still running
		// (it read the old value) cannot write it back.
		k := "k" + strconv.Itoa(i)
		db.Store(k, "final")
		if err := caches[0].Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	for ci, c := range caches {
		for i := range keys {
			k := "k" + strconv.Itoa(i)
			eventually(t, fmt.Sprintf("instance %d serves the last value of %s", ci, k), func() bool {
				v, err := c.Get(ctx, k, load)
				return err == nil && v == "final"
			})
		}
	}
	t.Logf("%d gets; instance 0: %+v", gets.Load(), caches[0].Stats())
}

// The whole cache protocol (fill leases, fencing, stale and early
// refreshes, GetMany) on tracking Stores.
func TestInstancesTracking(t *testing.T) {
	r := testinfra.Redis(t)
	cachetest.RunCache(t, func(t *testing.T) cache.Store {
		return newStore(t, Options{Client: r.Client, Tracking: true})
	})
}

func TestTrackingRefusesCluster(t *testing.T) {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	defer c.Close()
	_, err := New(Options{Client: c, Tracking: true})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Options.Tracking needs a *redis.Client") {
		t.Fatalf("New with Tracking on a cluster client: %v", err)
	}
}

// An instance created while Redis is down serves without tracking
// (copies kept for the default L1TTL) and, once Redis is up and its
// subscription holds, drops those copies and is tracked like any other.
func TestTrackingStartsWithRedisDown(t *testing.T) {
	r := testinfra.Redis(t)
	plain := plainClient(t, r)
	r.Stop()
	b := tracked(t, 1, r.Client, "ts")[0]
	r.Start()
	eventually(t, "tracking holds once Redis is up", func() bool { return b.Stats().Resubscribes >= 1 })
	env := envelopes(t, b, plain, "ts", "old", "new")
	ctx := context.Background()
	load := constLoader("loaded")
	if err := plain.Set(ctx, "{ts:k}", env["old"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the seed writes reach the instance", func() bool { return b.Stats().Invalidations >= 3 })
	hold(t, b, "k", "old", load)
	if err := plain.Set(ctx, "{ts:k}", env["new"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a plain write reaches the instance", func() bool {
		v, err := b.Get(ctx, "k", load)
		return err == nil && v == "new"
	})
}

// FLUSHALL by a plain client: Redis's invalidation names no key, so the
// instance treats it as a lost feed (drops its whole L1) and tracks
// again afterwards.
func TestTrackingFlushAll(t *testing.T) {
	r := testinfra.Redis(t)
	plain := plainClient(t, r)
	b := tracked(t, 1, r.Client, "tf")[0]
	env := envelopes(t, b, plain, "tf", "old")
	ctx := context.Background()
	load := constLoader("loaded")
	if err := plain.Set(ctx, "{tf:k}", env["old"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the seed writes reach the instance", func() bool { return b.Stats().Invalidations >= 2 })
	hold(t, b, "k", "old", load)
	if err := plain.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the instance forgets what FLUSHALL removed", func() bool {
		v, err := b.Get(ctx, "k", load)
		return err == nil && v == "loaded"
	})
	eventually(t, "tracking is back after FLUSHALL", func() bool { return b.Stats().Resubscribes >= 1 })
	if st := b.Stats(); st.FeedLosses < 1 {
		t.Fatalf("FLUSHALL did not count as a lost feed: %+v", st)
	}
}
