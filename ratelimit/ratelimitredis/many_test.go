package ratelimitredis

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
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/redisx"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/internal/turns"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimittest"
)

// clients is a standalone Redis and a Cluster, with the prefix each
// test's keys need.
func clients(t *testing.T) map[string]struct {
	c      redis.UniversalClient
	prefix string
} {
	r := testinfra.Redis(t)
	c := testinfra.RedisCluster(t)
	return map[string]struct {
		c      redis.UniversalClient
		prefix string
	}{"standalone": {r.Client, "rl"}, "cluster": {c.Client, c.Prefix + "rl"}}
}

// The conformance suite with coalescing on: one round trip out at a time,
// so the suite's concurrent callers queue and leave in batches.
func TestConformanceCoalesce(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ratelimittest.Run(t, func(t *testing.T, p ratelimit.Policy, clk clock.Clock) ratelimit.Limiter {
				return newLimiter(t, Options{Client: c.c, Limits: p, Clock: clk, Prefix: c.prefix, Coalesce: true, MaxInFlight: 1})
			})
		})
	}
}

// manyLimiter decides every AllowN with AllowMany, so the suite checks
// the batch script's decisions one by one.
type manyLimiter struct{ *Limiter }

func (m manyLimiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	ds, err := m.AllowMany(ctx, []string{key}, n)
	if err != nil {
		return ratelimit.Decision{}, err
	}
	return ds[0], nil
}

func TestConformanceAllowMany(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ratelimittest.Run(t, func(t *testing.T, p ratelimit.Policy, clk clock.Clock) ratelimit.Limiter {
				return manyLimiter{newLimiter(t, Options{Client: c.c, Limits: p, Clock: clk, Prefix: c.prefix})}
			})
		})
	}
}

// AllowMany makes exactly the Decisions ratelimit.Local makes for the same
// keys in the same order, a key named several times in one call included,
// with one and with several limits, on one Redis and across a Cluster's
// slots and nodes.
func TestAllowManyAgreesWithLocal(t *testing.T) {
	policies := []ratelimit.Policy{
		{{Rate: 3, Period: 10 * time.Second, Burst: 5}},
		{{Name: "fast", Rate: 7, Period: 10 * time.Second, Burst: 3}, {Name: "slow", Rate: 999_999, Period: 100 * 24 * time.Hour, Burst: 20}},
	}
	ctx := context.Background()
	for name, c := range clients(t) {
		rng := rand.New(rand.NewPCG(3, 4))
		for pi, p := range policies {
			clk := testclock.New()
			clk.Add(time.Duration(rng.Int64N(1000)))
			local, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: p, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			rl := newLimiter(t, Options{Client: c.c, Limits: p, Clock: clk, Prefix: c.prefix + "agree"})
			base := ratelimittest.Key(t)
			for i := 0; i < 60; i++ {
				clk.Add(time.Duration(rng.Int64N(int64(local.Policy()[0].Interval()))))
				keys := make([]string, 1+rng.IntN(300)) // past maxScriptKeys: several scripts in one pipeline
				for k := range keys {
					keys[k] = base + strconv.Itoa(rng.IntN(40))
				}
				n := 1 + rng.IntN(local.Policy().MaxBurst())
				got, err := rl.AllowMany(ctx, keys, n)
				if err != nil {
					t.Fatal(err)
				}
				for k, key := range keys {
					want, err := local.AllowN(ctx, key, n)
					if err != nil {
						t.Fatal(err)
					}
					if got[k] != want {
						t.Fatalf("%s, policy %d, call %d, key %d (%s) of %d, n %d: Redis %+v, Local %+v", name, pi, i, k, key, len(keys), n, got[k], want)
					}
				}
			}
			if st := rl.Stats(); st.Batches != 60 || st.RoundTrips != 60 || st.Errors != 0 {
				t.Fatalf("%s: stats %+v, want 60 round trips, each a batch", name, st)
			}
		}
	}
}

func TestAllowManyBadArguments(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 10, Burst: 3}}})
	ctx := context.Background()
	for _, c := range []struct {
		keys []string
		n    int
		want string
	}{
		{[]string{"a", ""}, 1, "keys[1]: ratelimit: invalid argument: key must not be empty"},
		{[]string{"a"}, 0, "n must be >= 1"},
		{[]string{"a"}, 4, "the smallest Burst is 3"},
	} {
		if _, err := l.AllowMany(ctx, c.keys, c.n); !errors.Is(err, ratelimit.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AllowMany(%q, %d): %v, want ErrInvalid saying %q", c.keys, c.n, err, c.want)
		}
	}
	if ds, err := l.AllowMany(ctx, nil, 1); err != nil || len(ds) != 0 {
		t.Errorf("no keys: %v %v, want nothing", ds, err)
	}
	if st := l.Stats(); st.RoundTrips != 0 {
		t.Errorf("bad arguments reached Redis: %+v", st)
	}
	for _, o := range []struct {
		o    Options
		want string
	}{
		{Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 1}}, MaxBatch: -1}, "Options.MaxBatch must be between 1 and 10000, got -1"},
		{Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 1}}, MaxInFlight: -2}, "Options.MaxInFlight must be >= 1, got -2"},
	} {
		if _, err := New(o.o); !errors.Is(err, ratelimit.ErrInvalid) || !strings.Contains(err.Error(), o.want) {
			t.Errorf("New: %v, want ErrInvalid saying %q", err, o.want)
		}
	}
}

// redisx.Slot is the slot the Cluster itself computes.
func TestSlotAgreesWithCluster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	for _, k := range []string{"{ratelimit:user-1}:gcra", "{rl:a}b", "plain", "{}x", "x{y}z{w}", "{ratelimit:ü}:limit"} {
		want, err := c.Client.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := redisx.Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

// Many goroutines on a few keys through the coalescer, the clock still:
// each key admits exactly its burst, every call gets one answer, and the
// calls left in batches (fewer round trips than calls).
func TestCoalesceHammer(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			const burst, keys, goroutines, calls = 40, 8, 64, 30
			clk := testclock.New()
			l := newLimiter(t, Options{Client: c.c, Clock: clk, Prefix: c.prefix + "hammer", Coalesce: true, MaxInFlight: 1, MaxBatch: 16,
				Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: burst}}})
			base := ratelimittest.Key(t)
			var admitted [keys]atomic.Int64
			var answers atomic.Int64
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < calls; i++ {
						k := (g + i) % keys
						d, err := l.Allow(context.Background(), base+strconv.Itoa(k))
						if err != nil {
							t.Error(err)
							return
						}
						answers.Add(1)
						if d.Allowed {
							admitted[k].Add(1)
						}
					}
				}()
			}
			wg.Wait()
			for k := range admitted {
				if got := admitted[k].Load(); got != burst {
					t.Errorf("key %d: %d admitted, want exactly the burst %d", k, got, burst)
				}
			}
			st := l.Stats()
			total := uint64(goroutines * calls)
			if answers.Load() != int64(total) || st.Allowed+st.Denied != total || st.Allowed != burst*keys {
				t.Fatalf("%d answers, stats %+v; want %d decisions from Redis, %d allowed", answers.Load(), st, total, burst*keys)
			}
			if st.RoundTrips >= total || st.Batches == 0 || st.Batched <= st.Batches {
				t.Fatalf("stats %+v: want batches of more than one call, fewer round trips than %d calls", st, total)
			}
			t.Logf("%d calls in %d round trips (%d batches, mean %.1f)", total, st.RoundTrips, st.Batches, float64(st.Batched)/float64(st.Batches))
		})
	}
}

// Coalesced callers reuse their waiters (and channels): each call must
// read its own answer, never one meant for a waiter's earlier or later
// user. Every goroutine asks for its own key with a varying n, the clock
// still, so each Decision's Remaining names the call it answers; callers
// whose ctx has already ended (on keys of their own) leave waiters that
// must never be reused, whichever of the queue, a batch or their answer
// holds them.
func TestCoalesceReuse(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			const burst, goroutines, calls = 100_000, 48, 60
			clk := testclock.New()
			l := newLimiter(t, Options{Client: c.c, Clock: clk, Prefix: c.prefix + "reuse", Coalesce: true, MaxInFlight: 1, MaxBatch: 8,
				Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: burst}}})
			base := ratelimittest.Key(t)
			gone, cancel := context.WithCancel(context.Background())
			cancel()
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				wg.Go(func() {
					key, used := base+strconv.Itoa(g), 0
					for i := 0; i < calls; i++ {
						if (g+i)%5 == 0 { // a caller that leaves: its waiter is not reused
							if _, err := l.Allow(gone, key+"-gone"); err != nil && !errors.Is(err, context.Canceled) {
								t.Error(err)
								return
							}
						}
						n := 1 + (g*7+i)%9
						d, err := l.AllowN(context.Background(), key, n)
						if err != nil {
							t.Error(err)
							return
						}
						used += n
						if !d.Allowed || d.Remaining != burst-used {
							t.Errorf("goroutine %d call %d (n=%d): %+v, want allowed with %d remaining: another call's answer", g, i, n, d, burst-used)
							return
						}
					}
				})
			}
			wg.Wait()
			if st := l.Stats(); st.Batched <= st.Batches {
				t.Fatalf("stats %+v: want batches of more than one call", st)
			}
		})
	}
}

// queueCall calls Allow(key) on a goroutine of its own and returns once
// the call waits in t (whose turns are all out), with the channel its
// Decision will come on.
func queueCall(t *testing.T, l *Limiter, tq *turns.Turns[*waiter], key string) chan ratelimit.Decision {
	t.Helper()
	ch := make(chan ratelimit.Decision, 1)
	go func() {
		d, err := l.Allow(context.Background(), key)
		if err != nil {
			t.Error(err)
		}
		ch <- d
	}()
	poll.Until(t, 10*time.Second, key+" to queue", func() bool { _, waiting := tq.Out(); return waiting == 1 })
	return ch
}

// The coalescer's loop yields after answering a batch and before taking
// the next, with its turn still out: a call made during the yield (a
// caller it woke, calling again) queues and leaves in the loop's next
// batch instead of finding the turn free and going alone.
func TestCoalesceYieldJoins(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Prefix: "yield", Coalesce: true, MaxInFlight: 1, Limits: ratelimit.Policy{{Rate: 1000}}})
	answer := func(key string) chan ratelimit.Decision { return queueCall(t, l, l.co.turns, key) }
	// The one turn is out (taken here): a calls and queues.
	if _, alone := l.co.turns.Go(func() *waiter { return nil }); !alone {
		t.Fatal("the turn was not free")
	}
	a := answer("a")
	var b chan ratelimit.Decision
	yields := 0
	l.co.yield = func() {
		if yields++; yields == 1 {
			b = answer("b") // a was answered; b calls while the turn is still out
		}
	}
	l.co.loop(l.co.turns, l.co.turns.Next()) // this goroutine's turn ends: a's batch, then b's
	if turns, waiting := l.co.turns.Out(); turns != 0 || waiting != 0 || yields != 2 {
		t.Fatalf("%d turns out, %d waiting after %d yields; want the loop done after 2", turns, waiting, yields)
	}
	if da, db := <-a, <-b; !da.Allowed || !db.Allowed {
		t.Fatalf("decisions %+v %+v, want both allowed", da, db)
	}
	if st := l.Stats(); st.RoundTrips != 2 || st.Batches != 2 || st.Batched != 2 {
		t.Fatalf("stats %+v: want 2 batches of one call each and no round trip alone", st)
	}
}

// MaxInFlight's default is 2 on a single Redis and 1 per master on a
// Cluster; a value set is kept.
func TestCoalesceMaxInFlightDefault(t *testing.T) {
	cs := clients(t)
	for _, tc := range []struct {
		client  string
		set     int
		wantOut int
	}{{"standalone", 0, 2}, {"cluster", 0, 1}, {"cluster", 2, 2}, {"standalone", 1, 1}} {
		t.Run(fmt.Sprintf("%s/%d", tc.client, tc.set), func(t *testing.T) {
			c := cs[tc.client]
			l := newLimiter(t, Options{Client: c.c, Prefix: c.prefix, Coalesce: true, MaxInFlight: tc.set, Limits: ratelimit.Policy{{Rate: 10}}})
			// Take turns until a call would queue: that many may be out
			// (on a Cluster, of the key's master).
			tk := l.co.turnsFor(context.Background(), &item{key: "k"})
			out := 0
			for ; out <= 3; out++ {
				if _, alone := tk.Go(func() *waiter { return &waiter{} }); !alone {
					break
				}
			}
			if out != tc.wantOut {
				t.Fatalf("%d turns out before a call queues, want %d", out, tc.wantOut)
			}
		})
	}
}

// On a Cluster each master has turns of its own: while one master's turn
// is out, a call for a key of another master goes at once, alone, and a
// call for the busy master queues and leaves in that master's next batch.
func TestCoalesceClusterTurnsPerMaster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	l := newLimiter(t, Options{Client: c.Client, Prefix: c.Prefix + "permaster", Coalesce: true, Limits: ratelimit.Policy{{Rate: 1000}}})
	ctx := context.Background()
	// Two keys whose limiter keys live on different masters.
	master := func(k string) *redis.Client {
		m, err := c.Client.MasterForKey(ctx, l.b.key(k, l.suffix))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ka, kb := "a", ""
	for i := 0; kb == ""; i++ {
		if k := "b" + strconv.Itoa(i); master(k) != master(ka) {
			kb = k
		}
	}
	ta := l.co.turnsFor(ctx, &item{key: ka})
	if tb := l.co.turnsFor(ctx, &item{key: kb}); tb == ta {
		t.Fatal("keys of two masters share turns")
	}
	if _, alone := ta.Go(func() *waiter { return nil }); !alone { // a's master: its one turn is out
		t.Fatal("a's master's turn was not free")
	}
	short, cancel := context.WithTimeout(ctx, testinfra.CallTimeout)
	defer cancel()
	if d, err := l.Allow(short, kb); err != nil || !d.Allowed {
		t.Fatalf("b, on another master, while a's turn is out: %+v, %v; want it decided at once", d, err)
	}
	done := queueCall(t, l, ta, ka)
	l.co.loop(ta, ta.Next())
	if d := <-done; !d.Allowed {
		t.Fatalf("a: %+v, want allowed", d)
	}
	if st := l.Stats(); st.RoundTrips != 2 || st.Batches != 1 || st.Batched != 1 {
		t.Fatalf("stats %+v: want b alone and a in a batch of its master", st)
	}
}

// Redis paused under coalesced load: every caller gets exactly one
// answer, the degraded decision, within Timeout of when it queued (plus
// its own round trip's Timeout for the callers that went first), none
// lost, none twice; a caller whose ctx ends first gets its ctx error.
// Resumed, decisions come from Redis again.
func TestCoalescePaused(t *testing.T) {
	r := testinfra.Redis(t)
	br, err := breaker.New(breaker.Options{ConsecutiveFailures: 1_000_000}) // keep every batch going to Redis
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 200 * time.Millisecond
	l := newLimiter(t, Options{Client: r.Client, Breaker: br, Timeout: timeout, Failure: FailClosed, Coalesce: true, MaxInFlight: 2, MaxBatch: 8,
		Limits: ratelimit.Policy{{Rate: 1000}}})
	ctx := context.Background()
	if _, err := l.Allow(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	resumed := false
	defer func() {
		if !resumed {
			r.Resume()
		}
	}()
	const goroutines = 40
	var wg sync.WaitGroup
	var answers, denied atomic.Int64
	var slowest atomic.Int64
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			d, err := l.Allow(ctx, "k"+strconv.Itoa(g))
			if el := time.Since(start); int64(el) > slowest.Load() {
				slowest.Store(int64(el)) // racy max: good enough for a bound
			}
			if err != nil {
				t.Errorf("paused Redis: %v, want the fail-closed decision and no error", err)
				return
			}
			answers.Add(1)
			if !d.Allowed && d.RetryAfter == time.Second {
				denied.Add(1)
			}
		}()
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Allow(short, "short"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller's ctx ends first: %v, want context.DeadlineExceeded", err)
	}
	wg.Wait()
	if answers.Load() != goroutines || denied.Load() != goroutines {
		t.Fatalf("%d answers, %d fail-closed denials, want %d of each", answers.Load(), denied.Load(), goroutines)
	}
	// The first callers wait one Timeout; those queued behind them wait
	// until their own queue time plus Timeout, so nobody waits much more
	// than two (a loaded machine gets a generous margin).
	if el := time.Duration(slowest.Load()); el > 2*timeout+2*time.Second {
		t.Fatalf("slowest caller waited %v, want about Timeout (%v)", el, timeout)
	}
	st := l.Stats()
	if st.FailClosed != goroutines || st.Errors == 0 || st.Errors > goroutines {
		t.Fatalf("stats %+v: want %d fail-closed decisions, an error per failed round trip", st, goroutines)
	}
	r.Resume()
	resumed = true
	d, err := l.Allow(ctx, "after")
	if err != nil || !d.Allowed {
		t.Fatalf("after resume: %+v %v", d, err)
	}
	if got := l.Stats().Allowed; got < 2 {
		t.Fatalf("after resume: %d decisions from Redis, want the new one counted", got)
	}
}

// AllowMany with Redis stopped: every key gets the failure mode's
// decision, no error, one failed round trip counted; with the circuit
// open the keys are counted as skipped. After a restart, Redis decides
// again.
func TestAllowManyOutage(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Breaker: fastBreaker(t), Timeout: DefaultTimeout, Failure: FailClosed, Limits: ratelimit.Policy{{Rate: 10}}})
	ctx := context.Background()
	r.Stop()
	keys := []string{"a", "b", "a", "c"}
	for call := 0; call < 3; call++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		ds, err := l.AllowMany(cctx, keys, 1)
		cancel()
		if err != nil || len(ds) != len(keys) {
			t.Fatalf("call %d with Redis down: %v %v", call, ds, err)
		}
		for i, d := range ds {
			if d.Allowed || d.RetryAfter != time.Second {
				t.Fatalf("call %d, key %d: %+v, want the fail-closed denial", call, i, d)
			}
		}
		if el := time.Since(start); el > DefaultTimeout+2*time.Second {
			t.Fatalf("call %d took %v, want about Timeout at most", call, el)
		}
	}
	st := l.Stats()
	if st.FailClosed != 12 || st.Errors != 2 || st.Skipped != 4 || st.Batches != 2 || st.Batched != 8 || st.RoundTrips != 2 {
		t.Fatalf("stats %+v: want 12 fail-closed decisions, 2 failed round trips (the circuit opens after 2), then 4 skipped", st)
	}
	r.Start()
	waitFromRedis(t, l, func(st Stats) uint64 { return st.Allowed })
	ds, err := l.AllowMany(ctx, keys, 1)
	if err != nil || !ds[0].Allowed || ds[2].Remaining != ds[0].Remaining-1 {
		t.Fatalf("after restart: %+v %v, want decisions from Redis", ds, err)
	}
}

// After SCRIPT FLUSH on every master, AllowMany loads its scripts again
// (a Cluster pipeline answers NOSCRIPT per call) and no decision fails.
func TestAllowManyScriptFlush(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			l := newLimiter(t, Options{Client: c.c, Prefix: c.prefix + "flush", Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: 3}}})
			ctx := context.Background()
			keys := make([]string, 50)
			base := ratelimittest.Key(t)
			for i := range keys {
				keys[i] = base + strconv.Itoa(i%25) // each twice
			}
			flush := func() {
				var err error
				if cc, ok := c.c.(*redis.ClusterClient); ok {
					err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.ScriptFlush(ctx).Err() })
				} else {
					err = c.c.ScriptFlush(ctx).Err()
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			for round, want := range []int{2, 0} { // remaining after each key's two events: 3-2, then denied (0)
				flush()
				ds, err := l.AllowMany(ctx, keys, 1)
				if err != nil {
					t.Fatal(err)
				}
				for i := 25; i < 50; i++ {
					if round == 0 && (!ds[i].Allowed || ds[i].Remaining != 1 || ds[i-25].Remaining != want) {
						t.Fatalf("round %d, key %d: %+v then %+v", round, i-25, ds[i-25], ds[i])
					}
					if round == 1 && (!ds[i-25].Allowed || ds[i].Allowed) {
						t.Fatalf("round %d, key %d: %+v then %+v, want the third event allowed, the fourth denied", round, i-25, ds[i-25], ds[i])
					}
				}
			}
			if st := l.Stats(); st.Errors != 0 || st.FailOpen != 0 {
				t.Fatalf("the flush showed as a failure: %+v", st)
			}
		})
	}
}

// One Cluster master paused: AllowMany returns within about Timeout, the
// keys on the other masters get Redis's decisions, those on the paused one
// the failure mode's (here: fail closed), and the batch counts one error.
func TestAllowManyClusterNodePaused(t *testing.T) {
	c := testinfra.RedisCluster(t)
	br, err := breaker.New(breaker.Options{ConsecutiveFailures: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond
	l := newLimiter(t, Options{Client: c.Client, Prefix: c.Prefix + "paused", Breaker: br, Timeout: timeout, Failure: FailClosed, Limits: ratelimit.Policy{{Rate: 10}}})
	ctx := context.Background()
	node := c.Server.Nodes[0]
	base := ratelimittest.Key(t)
	var keys []string
	onPaused := map[int]bool{}
	for i := 0; i < 30; i++ {
		k := base + strconv.Itoa(i)
		m, err := c.Client.MasterForKey(ctx, "{"+c.Prefix+"paused:"+k+"}:gcra")
		if err != nil {
			t.Fatal(err)
		}
		onPaused[i] = m.Options().Addr == node.Addr()
		keys = append(keys, k)
	}
	if _, err := l.AllowMany(ctx, keys, 1); err != nil { // warm: connections to every master
		t.Fatal(err)
	}
	if err := node.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ds, err := l.AllowMany(ctx, keys, 1)
	elapsed := time.Since(start)
	if rerr := node.Resume(); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	paused := 0
	for i, d := range ds {
		switch {
		case onPaused[i]:
			paused++
			if d.Allowed || d.RetryAfter != time.Second {
				t.Errorf("key %d on the paused master: %+v, want the fail-closed denial", i, d)
			}
		case !d.Allowed || d.Remaining != 8:
			t.Errorf("key %d on a live master: %+v, want Redis's decision (second event of 10)", i, d)
		}
	}
	if paused == 0 || paused == len(keys) {
		t.Fatalf("%d of %d keys on the paused master: want some on each side", paused, len(keys))
	}
	if elapsed > timeout+3*time.Second {
		t.Fatalf("AllowMany took %v with a master paused, want about Timeout (%v)", elapsed, timeout)
	}
	if st := l.Stats(); st.Errors != 1 || st.FailClosed != uint64(paused) || st.Allowed != uint64(len(keys)+len(keys)-paused) {
		t.Fatalf("stats %+v: want one failed round trip, %d fail-closed decisions", st, paused)
	}
}
