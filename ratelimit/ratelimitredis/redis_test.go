package ratelimitredis

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
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
	"github.com/scalekit-go/scalekit/internal/ratelimitx"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimittest"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// newLimiter is New for tests, with testinfra.CallTimeout unless set.
func newLimiter(t testing.TB, o Options) *Limiter {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = testinfra.CallTimeout
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestConformanceStandalone(t *testing.T) {
	r := testinfra.Redis(t)
	ratelimittest.Run(t, func(t *testing.T, p ratelimit.Policy, clk clock.Clock) ratelimit.Limiter {
		return newLimiter(t, Options{Client: r.Client, Limits: p, Clock: clk})
	})
}

func TestConformanceCluster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	ratelimittest.Run(t, func(t *testing.T, p ratelimit.Policy, clk clock.Clock) ratelimit.Limiter {
		return newLimiter(t, Options{Client: c.Client, Limits: p, Clock: clk, Prefix: c.Prefix + "rl"})
	})
}

func TestConcurrencyConformance(t *testing.T) {
	r := testinfra.Redis(t)
	c := testinfra.RedisCluster(t)
	for name, client := range map[string]redis.UniversalClient{"standalone": r.Client, "cluster": c.Client} {
		t.Run(name, func(t *testing.T) {
			ratelimittest.RunConcurrency(t, func(t *testing.T, limit int) ratelimit.ConcurrencyLimiter {
				cl, err := NewConcurrency(ConcurrencyOptions{Client: client, Limit: limit, Prefix: c.Prefix + "cc", Timeout: 2 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cl.Close() })
				return cl
			})
		})
	}
}

// A cluster spreads limiter keys over the masters, and each decision stays
// in one slot: many keys, every master used, no CROSSSLOT.
func TestClusterKeysSpreadOverMasters(t *testing.T) {
	c := testinfra.RedisCluster(t)
	l := newLimiter(t, Options{Client: c.Client, Prefix: c.Prefix + "spread", Limits: ratelimit.Policy{{Name: "s", Rate: 5}, {Name: "h", Rate: 100, Period: time.Hour}}})
	ctx := context.Background()
	for i := 0; i < 60; i++ {
		if d, err := l.Allow(ctx, "user-"+string(rune('a'+i%26))+string(rune('a'+i/26))); err != nil || !d.Allowed {
			t.Fatalf("key %d: %+v %v", i, d, err)
		}
	}
	var masters atomic.Int64
	err := c.Client.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, "{"+c.Prefix+"spread:*").Result()
		if len(keys) > 0 {
			masters.Add(1)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if masters.Load() != 3 {
		t.Fatalf("limiter keys on %d masters, want all 3", masters.Load())
	}
	if st := l.Stats(); st.Allowed != 60 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestKeyLayoutAndTTL(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	l := newLimiter(t, Options{Client: r.Client, Clock: clk, Limits: ratelimit.Policy{
		{Name: "sec", Rate: 10, Burst: 5},            // tau 500ms
		{Name: "min", Rate: 60, Period: time.Minute}, // tau 60s
	}})
	ctx := context.Background()
	if _, err := l.Allow(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	fields, err := r.Client.HGetAll(ctx, "{ratelimit:k}:limit").Result()
	if err != nil || len(fields) != 2 || fields["sec"] == "" || fields["min"] == "" {
		t.Fatalf("hash {ratelimit:k}:limit = %v, %v; want fields sec and min", fields, err)
	}
	want := clk.Now().UnixMicro() + 100_000
	if fields["sec"] != itoa(want) {
		t.Fatalf("sec TAT %s, want %d (now + one interval, in µs)", fields["sec"], want)
	}
	// With a Clock (a test's, which Redis's TTLs may outrun) the key
	// lives a minute longer; on Redis's own clock it expires once its
	// last limit is full again.
	ttl, err := r.Client.PTTL(ctx, "{ratelimit:k}:limit").Result()
	if err != nil || ttl <= time.Minute || ttl > time.Minute+time.Second {
		t.Fatalf("PTTL %v %v with a Clock: want > 1m and <= 1m1s (full again within 1s, and a minute of slack)", ttl, err)
	}
	own := newLimiter(t, Options{Client: r.Client, Prefix: "own", Limits: ratelimit.Policy{
		{Name: "sec", Rate: 10, Burst: 5}, {Name: "min", Rate: 60, Period: time.Minute}}})
	if _, err := own.Allow(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	ttl, err = r.Client.PTTL(ctx, "{own:k}:limit").Result()
	if err != nil || ttl <= 0 || ttl > time.Second {
		t.Fatalf("PTTL %v %v: want > 0 and <= 1s (the key expires once its last limit is full again)", ttl, err)
	}
}

// A limiter on a test's clock keeps its keys a minute past what its
// limits need, in every script: Redis expires keys by its own clock, and
// a conformance run whose fake clock advanced 7ms a step while a loaded
// machine took more than a key's 200ms TTL between steps saw the key
// gone and admitted a fresh burst (SustainedRate, now and then under
// -race).
func TestClockKeysOutliveRealTime(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	ctx := context.Background()
	one := ratelimit.Policy{{Rate: 20, Burst: 4}}
	two := ratelimit.Policy{{Name: "a", Rate: 20, Burst: 4}, {Name: "b", Rate: 100, Period: time.Minute}}
	for _, c := range []struct {
		name  string
		o     Options
		allow func(l *Limiter) error
		key   string
	}{
		{"one limit", Options{Limits: one, Prefix: "c1"}, func(l *Limiter) error { _, err := l.Allow(ctx, "k"); return err }, "{c1:k}:gcra"},
		{"two limits", Options{Limits: two, Prefix: "c2"}, func(l *Limiter) error { _, err := l.Allow(ctx, "k"); return err }, "{c2:k}:limit"},
		{"AllowMany", Options{Limits: one, Prefix: "c3"}, func(l *Limiter) error {
			_, err := l.AllowMany(ctx, []string{"k", "j"}, 1)
			return err
		}, "{c3:k}:gcra"},
		{"AllowMany, two limits", Options{Limits: two, Prefix: "c4"}, func(l *Limiter) error {
			_, err := l.AllowMany(ctx, []string{"k"}, 1)
			return err
		}, "{c4:k}:limit"},
		{"Lease", Options{Limits: one, Prefix: "c5", Lease: 2}, func(l *Limiter) error { _, err := l.Allow(ctx, "k"); return err }, "{c5:k}:gcra"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.Client, c.o.Clock = r.Client, clk
			l := newLimiter(t, c.o)
			if err := c.allow(l); err != nil {
				t.Fatal(err)
			}
			keys, _ := r.Client.Keys(ctx, "*"+c.o.Prefix+":k*").Result()
			ttl, err := r.Client.PTTL(ctx, c.key).Result()
			if err != nil || ttl <= time.Minute {
				t.Fatalf("PTTL %s = %v, %v (keys %v): want over a minute", c.key, ttl, err, keys)
			}
		})
	}
}

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// The script is loaded again by itself after SCRIPT FLUSH (EVALSHA answers
// NOSCRIPT, the limiter falls back to EVAL), and the key's state survives.
func TestScriptFlushRecovered(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: 3}}})
	ctx := context.Background()
	if d, err := l.Allow(ctx, "k"); err != nil || d.Remaining != 2 {
		t.Fatalf("first: %+v %v", d, err)
	}
	if err := r.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after SCRIPT FLUSH: %+v %v, want allowed with 1 remaining", d, err)
	}
	if st := l.Stats(); st.Errors != 0 || st.FailOpen != 0 {
		t.Fatalf("the flush showed as a failure: %+v", st)
	}
}

// With Clock nil the limiter reads Redis TIME: decisions need no client
// clock, and the timings come out of the server's.
func TestRedisTime(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: 1}}})
	ctx := context.Background()
	d, err := l.Allow(ctx, "k")
	if err != nil || !d.Allowed || d.ResetAfter != time.Hour {
		t.Fatalf("first: %+v %v, want allowed, reset after exactly 1h", d, err)
	}
	d, err = l.Allow(ctx, "k")
	if err != nil || d.Allowed || d.RetryAfter <= 59*time.Minute || d.RetryAfter > time.Hour {
		t.Fatalf("second: %+v %v, want denied with RetryAfter just under 1h", d, err)
	}
}

// 4 processes' worth of clients (each its own pool) with 64 goroutines
// each, on one key: the admitted count never passes what the limit allows
// over the time they ran, measured on Redis's own clock.
func TestAccuracy64x4(t *testing.T) {
	r := testinfra.Redis(t)
	const rate, burst = 500, 50
	p := ratelimit.Policy{{Rate: rate, Burst: burst}}
	ctx := context.Background()
	var limiters []*Limiter
	for i := 0; i < 4; i++ {
		c := redis.NewClient(&redis.Options{Addr: r.Addr(), PoolSize: 64, ContextTimeoutEnabled: true})
		t.Cleanup(func() { c.Close() })
		limiters = append(limiters, newLimiter(t, Options{Client: c, Limits: p, Timeout: 5 * time.Second}))
	}
	start, err := r.Client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(600 * time.Millisecond)
	var admitted, calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for _, l := range limiters {
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					d, err := l.Allow(ctx, "hot")
					if err != nil {
						errs <- err
						return
					}
					calls.Add(1)
					if d.Allowed {
						admitted.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	end, err := r.Client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	elapsed := end.Sub(start)
	most := burst + int64(elapsed.Seconds()*rate) + 1
	t.Logf("%d calls from 256 goroutines over %v (Redis clock): %d admitted, at most %d allowed", calls.Load(), elapsed, admitted.Load(), most)
	if admitted.Load() > most {
		t.Fatalf("admitted %d, more than burst + rate*elapsed = %d", admitted.Load(), most)
	}
	if admitted.Load() < burst || calls.Load() <= admitted.Load() {
		t.Fatalf("admitted %d of %d calls: the test did not load the limit", admitted.Load(), calls.Load())
	}
	for _, l := range limiters {
		if st := l.Stats(); st.Errors != 0 || st.FailOpen != 0 {
			t.Fatalf("a decision did not come from Redis: %+v", st)
		}
	}
}

func fastBreaker(t testing.TB) *breaker.Breaker {
	br, err := breaker.New(breaker.Options{ConsecutiveFailures: 2, OpenTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return br
}

// Redis stops mid-run: fail-open admits, the circuit opens so later
// decisions skip Redis, and after a restart decisions come from Redis
// again.
func TestOutageFailOpen(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Breaker: fastBreaker(t), Timeout: DefaultTimeout, Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: 2}}})
	ctx := context.Background()
	if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
		t.Fatal(d, err)
	}
	r.Stop()
	for i := 0; i < 20; i++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		d, err := l.Allow(cctx, "k")
		if err != nil || !d.Allowed || d.Limit.Burst != 2 {
			t.Fatalf("call %d with Redis down: %+v %v, want admitted (fail open) with no error", i, d, err)
		}
		if cctx.Err() != nil {
			t.Fatalf("call %d ran to its ctx deadline", i)
		}
		cancel()
	}
	st := l.Stats()
	if st.FailOpen != 20 || st.Errors < 2 || st.Skipped == 0 || st.Circuit != breaker.Open {
		t.Fatalf("stats with Redis down: %+v; want 20 fail-open decisions, the circuit open and skipping Redis", st)
	}
	r.Start() // empty: the key starts over
	waitFromRedis(t, l, func(st Stats) uint64 { return st.Allowed })
	if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after recovery: %+v %v, want the first event of a fresh key (the restarted Redis is empty)", d, err)
	}
}

// waitFromRedis calls until a decision comes from Redis again (the
// circuit probes every 50ms).
func waitFromRedis(t *testing.T, l *Limiter, counter func(Stats) uint64) {
	t.Helper()
	before := counter(l.Stats())
	poll.Until(t, 10*time.Second, "a decision from Redis after the restart", func() bool {
		if _, err := l.Allow(context.Background(), "probe"); err != nil {
			t.Fatal(err)
		}
		return counter(l.Stats()) > before
	})
}

func TestOutageFailClosed(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Breaker: fastBreaker(t), Timeout: DefaultTimeout, Failure: FailClosed, Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: 2}}})
	ctx := context.Background()
	r.Stop()
	for i := 0; i < 5; i++ {
		d, err := l.Allow(ctx, "k")
		if err != nil || d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("call %d with Redis down: %+v %v, want denied (fail closed), retry after 1s, no error", i, d, err)
		}
	}
	if st := l.Stats(); st.FailClosed != 5 || st.FailOpen != 0 {
		t.Fatalf("stats %+v", st)
	}
	r.Start()
	waitFromRedis(t, l, func(st Stats) uint64 { return st.Allowed })
}

// A paused Redis (connections open, no answers) costs each decision at
// most Timeout, and a caller whose ctx ends first gets its ctx error.
func TestPausedRedis(t *testing.T) {
	r := testinfra.Redis(t)
	br, err := breaker.New(breaker.Options{ConsecutiveFailures: 1000}) // keep every call going to Redis
	if err != nil {
		t.Fatal(err)
	}
	l := newLimiter(t, Options{Client: r.Client, Breaker: br, Timeout: 50 * time.Millisecond, Limits: ratelimit.Policy{{Rate: 10}}})
	ctx := context.Background()
	if _, err := l.Allow(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	defer r.Resume()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d, err := l.Allow(cctx, "k")
	if err != nil || !d.Allowed || cctx.Err() != nil {
		t.Fatalf("paused Redis: %+v %v (ctx: %v); want a fail-open admission after Timeout, well before the ctx deadline", d, err, cctx.Err())
	}
	short, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if _, err := l.Allow(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller's ctx ends first: %v, want context.DeadlineExceeded", err)
	}
	if st := l.Stats(); st.Errors != 1 || st.FailOpen != 1 {
		t.Fatalf("stats %+v: want 1 error (the Timeout), the caller's own deadline not counted", st)
	}
}

func TestFallbackWhileDown(t *testing.T) {
	r := testinfra.Redis(t)
	p := ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: 2}}
	local, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: p})
	if err != nil {
		t.Fatal(err)
	}
	l := newLimiter(t, Options{Client: r.Client, Breaker: fastBreaker(t), Timeout: DefaultTimeout, Limits: p, Fallback: local})
	r.Stop()
	var admitted int
	for i := 0; i < 5; i++ {
		d, err := l.Allow(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			admitted++
		}
	}
	if st := l.Stats(); admitted != 2 || st.Fallbacks != 5 || st.FailOpen != 0 {
		t.Fatalf("admitted %d with stats %+v; want the local fallback's burst of 2", admitted, st)
	}
}

func TestBadOptions(t *testing.T) {
	r := testinfra.Redis(t)
	p := ratelimit.Policy{{Rate: 10}}
	plain := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { plain.Close() })
	short := redis.NewClient(&redis.Options{Addr: r.Addr(), ReadTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { short.Close() })
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Limits: p}, "Options.Client is required"},
		{Options{Client: r.Client}, "Limits must hold at least one Limit"},
		{Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 2_000_000}}}, "Limits[0]: Rate 2000000 per 1s is more than one event per microsecond"},
		{Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 10, Burst: -1}}}, "Limits[0].Burst must be >= 1"},
		{Options{Client: r.Client, Limits: p, Timeout: -time.Second}, "Options.Timeout must be > 0"},
		{Options{Client: r.Client, Limits: p, Failure: 7}, "Options.Failure must be FailOpen or FailClosed"},
		{Options{Client: plain, Limits: p}, "set ContextTimeoutEnabled: true"},
	} {
		_, err := New(c.o)
		if !errors.Is(err, ratelimit.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v; want ErrInvalid saying %q", c.o, err, c.want)
		}
	}
	if _, err := New(Options{Client: short, Limits: p}); err != nil {
		t.Errorf("a client whose ReadTimeout is under Timeout: %v, want accepted", err)
	}
	for _, c := range []struct {
		o    ConcurrencyOptions
		want string
	}{
		{ConcurrencyOptions{Limit: 1}, "ConcurrencyOptions.Client is required"},
		{ConcurrencyOptions{Client: r.Client}, "ConcurrencyOptions.Limit must be >= 1"},
		{ConcurrencyOptions{Client: r.Client, Limit: 1, Lease: time.Millisecond}, "ConcurrencyOptions.Lease must be >= 30ms"},
	} {
		_, err := NewConcurrency(c.o)
		if !errors.Is(err, ratelimit.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewConcurrency(%+v): %v; want ErrInvalid saying %q", c.o, err, c.want)
		}
	}
}

func newConcurrency(t testing.TB, o ConcurrencyOptions) *Concurrency {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = testinfra.CallTimeout
	}
	c, err := NewConcurrency(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A holder that dies (here: stops renewing without releasing) keeps its
// slot until its lease runs out, then the slot is free for others.
func TestLeaseExpiresWhenHolderDies(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	dead := newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 1, Lease: time.Minute, Clock: clk})
	alive := newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 1, Lease: time.Minute, Clock: clk})
	ctx := context.Background()
	if _, err := dead.Acquire(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	dead.Close() // the holder's process is gone: nobody renews or releases
	clk.Add(30 * time.Second)
	_, err := alive.Acquire(ctx, "job")
	var le *ratelimit.LimitedError
	if !errors.As(err, &le) || le.Decision.RetryAfter != 30*time.Second {
		t.Fatalf("while the dead holder's lease runs: %v, want ErrLimited with RetryAfter 30s (when the lease expires)", err)
	}
	clk.Add(30 * time.Second)
	release, err := alive.Acquire(ctx, "job")
	if err != nil {
		t.Fatalf("after the lease ran out: %v, want the slot", err)
	}
	release()
}

// A live holder renews its lease every Lease/3, so a long job keeps its
// slot past Lease.
func TestLeaseRenewedWhileHeld(t *testing.T) {
	r := testinfra.Redis(t)
	a := newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 1, Lease: 60 * time.Millisecond})
	b := newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 1, Lease: 60 * time.Millisecond})
	ctx := context.Background()
	release, err := a.Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(300 * time.Millisecond) // five leases long
	for time.Now().Before(end) {
		if _, err := b.Acquire(ctx, "job"); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("another process got the slot of a live holder: %v (stats %+v)", err, a.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	release()
	if st := a.Stats(); st.Renewals < 3 || st.Lost != 0 || st.Held != 0 {
		t.Fatalf("holder stats %+v; want >= 3 renewals, none lost, nothing held after release", st)
	}
	r2, err := b.Acquire(ctx, "job")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	r2()
}

func TestConcurrencyOutage(t *testing.T) {
	r := testinfra.Redis(t)
	open := newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 1, Breaker: fastBreaker(t), Timeout: DefaultTimeout})
	closed := newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 1, Breaker: fastBreaker(t), Timeout: DefaultTimeout, Failure: FailClosed})
	ctx := context.Background()
	r.Stop()
	for i := 0; i < 3; i++ {
		release, err := open.Acquire(ctx, "k")
		if err != nil {
			t.Fatalf("fail open, Redis down: %v", err)
		}
		release()
		if _, err := closed.Acquire(ctx, "k"); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("fail closed, Redis down: %v, want ErrLimited", err)
		}
	}
	if st := open.Stats(); st.FailOpen != 3 {
		t.Fatalf("fail-open stats %+v", st)
	}
	if st := closed.Stats(); st.FailClosed != 3 {
		t.Fatalf("fail-closed stats %+v", st)
	}
	r.Start()
	poll.Until(t, 10*time.Second, "a slot from Redis after the restart", func() bool {
		release, err := closed.Acquire(ctx, "k")
		if err != nil {
			return false
		}
		release()
		return closed.Stats().Acquired == 1
	})
}

// The middleware over the Redis limiter announces its policy and answers
// 429 with Retry-After once the key is over.
func TestMiddlewareOverRedis(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Limits: ratelimit.Policy{{Name: "api", Rate: 1, Period: time.Minute, Burst: 1}}})
	mw, err := ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: l})
	if err != nil {
		t.Fatal(err)
	}
	h := mw.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	codes := []int{}
	var last http.Header
	for i := 0; i < 2; i++ {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "192.0.2.7:1234"
		h.ServeHTTP(w, req)
		codes = append(codes, w.Code)
		last = w.Header()
	}
	if codes[0] != 200 || codes[1] != 429 {
		t.Fatalf("codes %v, want [200 429]", codes)
	}
	if got := last.Get("RateLimit-Policy"); got != `"api";q=1;w=60` {
		t.Fatalf("RateLimit-Policy %q", got)
	}
	if got := last.Get("Retry-After"); got != "60" {
		t.Fatalf("Retry-After %q, want 60", got)
	}
}

// The Redis limiter makes exactly the Decisions ratelimit.Local makes,
// nanosecond for nanosecond: the same random calls over simulated time,
// with intervals that are not whole microseconds (3 per 10s: 3333333333ns;
// 7 per 10s: 1428571428ns) and several limits at once, give equal
// Decisions. The intervals are seconds long because Redis expires a key by
// its own clock: a key whose TTL (at least one interval) is shorter than
// the test's real run could vanish mid-test.
func TestAgreesWithLocal(t *testing.T) {
	r := testinfra.Redis(t)
	policies := []ratelimit.Policy{
		{{Rate: 3, Period: 10 * time.Second, Burst: 5}},
		{{Rate: 7, Period: 10 * time.Second, Burst: 7}},
		{{Name: "fast", Rate: 7, Period: 10 * time.Second, Burst: 3}, {Name: "slow", Rate: 999_999, Period: 100 * 24 * time.Hour, Burst: 20}},
		{{Name: "a", Rate: 3, Period: 10 * time.Second, Burst: 2}, {Name: "b", Rate: 300_001, Period: 1_000_000 * time.Second, Burst: 9}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	for pi, p := range policies {
		clk := testclock.New()
		clk.Add(time.Duration(rng.Int64N(1000))) // a time off the µs grid
		local, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: p, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		rl := newLimiter(t, Options{Client: r.Client, Limits: p, Clock: clk, Prefix: "agree"})
		key := ratelimittest.Key(t)
		most := local.Policy().MaxBurst()
		for i := 0; i < 300; i++ {
			clk.Add(time.Duration(rng.Int64N(int64(local.Policy()[0].Interval()) * 2)))
			n := 1 + rng.IntN(most)
			want, err := local.AllowN(ctx, key, n)
			if err != nil {
				t.Fatal(err)
			}
			got, err := rl.AllowN(ctx, key, n)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("policy %d, call %d, AllowN(%d): Redis %+v, Local %+v", pi, i, n, got, want)
			}
		}
	}
}

// State written by the previous version (whole µs) reads exactly as
// before, in both layouts; state written now keeps ns as a decimal
// fraction of µs, which the previous version read as a number (off by
// under 1µs).
func TestStateFormat(t *testing.T) {
	r := testinfra.Redis(t)
	ctx := context.Background()
	clk := testclock.New()
	nowUS := clk.Now().UnixMicro()
	// Previous version's state: TAT = now + 400ms, in µs.
	old := itoa(nowUS + 400_000)
	if err := r.Client.Set(ctx, "{fmt:one}:gcra", old, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.HSet(ctx, "{fmt:two}:limit", "sec", old, "min", itoa(nowUS)).Err(); err != nil {
		t.Fatal(err)
	}
	one := newLimiter(t, Options{Client: r.Client, Prefix: "fmt", Clock: clk, Limits: ratelimit.Policy{{Name: "sec", Rate: 10, Burst: 5}}})
	two := newLimiter(t, Options{Client: r.Client, Prefix: "fmt", Clock: clk, Limits: ratelimit.Policy{{Name: "sec", Rate: 10, Burst: 5}, {Name: "min", Rate: 60, Period: time.Minute}}})
	for name, l := range map[string]*Limiter{"one": one, "two": two} {
		d, err := l.Allow(ctx, name)
		if err != nil || !d.Allowed || d.Remaining != 0 || d.ResetAfter != 500*time.Millisecond {
			t.Fatalf("%s: old state 400ms ahead: %+v %v, want allowed, 0 remaining, reset after 500ms", name, d, err)
		}
		if d, err := l.Allow(ctx, name); err != nil || d.Allowed || d.RetryAfter != 100*time.Millisecond {
			t.Fatalf("%s: next: %+v %v, want denied, retry after 100ms", name, d, err)
		}
	}
	// 3 per 10s: one interval is 3333333333ns, stored as µs with a fraction.
	frac := newLimiter(t, Options{Client: r.Client, Prefix: "fmt", Clock: clk, Limits: ratelimit.Policy{{Rate: 3, Period: 10 * time.Second}}})
	if _, err := frac.AllowN(ctx, "frac", 2); err != nil {
		t.Fatal(err)
	}
	v, err := r.Client.Get(ctx, "{fmt:frac}:gcra").Result()
	if want := itoa(nowUS+6_666_666) + ".666"; err != nil || v != want {
		t.Fatalf("stored TAT %q %v, want %q (now + 2 x 3333333333ns)", v, err, want)
	}
	if f, err := strconv.ParseFloat(v, 64); err != nil || f < float64(nowUS+6_666_666) || f > float64(nowUS+6_666_667) {
		t.Fatalf("the previous version reads %q as %v, %v: want a number of µs within 1µs", v, f, err)
	}
}

// holdFor acquires a slot of key, holds it for d of clk's time and
// releases it.
func holdFor(t *testing.T, c ratelimit.ConcurrencyLimiter, clk *testclock.Clock, key string, d time.Duration) {
	t.Helper()
	release, err := c.Acquire(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(d)
	release()
}

// refusal fills the free slots of key (the caller releases them with the
// returned func) and returns the next Acquire's RetryAfter.
func refusal(t *testing.T, c ratelimit.ConcurrencyLimiter, key string, free int) (time.Duration, func()) {
	t.Helper()
	var releases []func()
	for i := 0; i < free; i++ {
		r, err := c.Acquire(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	_, err := c.Acquire(context.Background(), key)
	var le *ratelimit.LimitedError
	if !errors.As(err, &le) {
		t.Fatalf("every slot held: %v, want a *LimitedError", err)
	}
	return le.Decision.RetryAfter, func() {
		for _, r := range releases {
			r()
		}
	}
}

// The Redis Concurrency and ratelimit.Concurrency report the same
// RetryAfter for the same holds: the mean hold (40ms then 80ms: a moving
// average of 45ms) over the 2 holders, 22.5ms, and not the 1m until a
// live holder's lease would expire.
func TestConcurrencyRetryAfterAgreesWithLocal(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	rc := newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 2, Lease: time.Minute, Clock: clk, Prefix: "retry"})
	for name, c := range map[string]ratelimit.ConcurrencyLimiter{"redis": rc, "local": newLocalConcurrency(t, clk)} {
		key := ratelimittest.Key(t)
		if got, release := refusal(t, c, key, 2); got != ratelimitx.ConcurrencyRetryHint {
			t.Fatalf("%s: before any hold was timed: RetryAfter %v, want the hint %v", name, got, ratelimitx.ConcurrencyRetryHint)
		} else {
			release()
		}
	}
	for name, c := range map[string]ratelimit.ConcurrencyLimiter{"redis": rc, "local": newLocalConcurrency(t, clk)} {
		key := ratelimittest.Key(t)
		holdFor(t, c, clk, key, 40*time.Millisecond)
		holdFor(t, c, clk, key, 80*time.Millisecond)
		got, release := refusal(t, c, key, 2)
		release()
		if want := 45 * time.Millisecond / 2; got != want {
			t.Fatalf("%s: RetryAfter %v, want %v (mean hold 45ms over 2 holders)", name, got, want)
		}
	}
}

func newLocalConcurrency(t *testing.T, clk *testclock.Clock) *ratelimit.Concurrency {
	lc, err := ratelimit.NewConcurrency(ratelimit.ConcurrencyOptions{Limit: 2, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

// A lease that missed its renewals belongs to a holder that is likely
// dead: it frees at its expiry, which bounds the estimate from the live
// holders; with no live holder left, the expiry is the answer.
func TestConcurrencyRetryAfterDeadHolders(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	o := ConcurrencyOptions{Client: r.Client, Limit: 2, Lease: time.Minute, Clock: clk, Prefix: "dead"}
	alive, dead := newConcurrency(t, o), newConcurrency(t, o)
	key := ratelimittest.Key(t)
	holdFor(t, alive, clk, key, 3*time.Second) // a mean hold of 3s
	if _, err := dead.Acquire(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	dead.Close() // its holder is gone: the lease is no longer renewed
	clk.Add(40 * time.Second)
	// A live holder (expected done in 3s) and a dead one expiring in 20s.
	got, release := refusal(t, alive, key, 1)
	if got != 3*time.Second {
		t.Fatalf("dead lease expiring in 20s, live holder expected in 3s: RetryAfter %v, want 3s", got)
	}
	release() // a hold of 0: the mean is now (7*3s + 0)/8 = 2.625s
	clk.Add(18 * time.Second)
	got, release = refusal(t, alive, key, 1)
	if got != 2*time.Second {
		t.Fatalf("dead lease expiring in 2s, live holder expected in 2.625s: RetryAfter %v, want 2s", got)
	}
	release()
}

// With Options.Clock set, the Concurrency limiter's keys outlive the
// leases by real time too: a leases key that Redis expired while a
// test's clock stood still would free slots still held by that clock.
// Regression: a 30ms lease's key lived 30ms of Redis time.
func TestConcurrencyClockKeysOutliveRealTime(t *testing.T) {
	r := testinfra.Redis(t)
	ctx := context.Background()
	c := newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 1, Lease: 30 * time.Millisecond, Prefix: "cc", Clock: testclock.New()})
	release, err := c.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := r.Client.PTTL(ctx, "{cc:k}:inflight").Result(); err != nil || ttl <= time.Minute {
		t.Fatalf("leases key PTTL = %v, %v: want over a minute", ttl, err)
	}
	release()
	if ttl, err := r.Client.PTTL(ctx, "{cc:k}:hold").Result(); err != nil || ttl <= time.Minute {
		t.Fatalf("mean hold key PTTL = %v, %v: want over a minute", ttl, err)
	}
	// Without a Clock, Redis's own: the TTLs are the lease's.
	c = newConcurrency(t, ConcurrencyOptions{Client: r.Client, Limit: 1, Lease: time.Second, Prefix: "cr"})
	release, err = c.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if ttl, err := r.Client.PTTL(ctx, "{cr:k}:inflight").Result(); err != nil || ttl > time.Second || ttl <= 0 {
		t.Fatalf("leases key PTTL on Redis's clock = %v, %v: want at most the lease (1s)", ttl, err)
	}
}
