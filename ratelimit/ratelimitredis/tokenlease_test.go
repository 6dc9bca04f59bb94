package ratelimitredis

import (
	"context"
	"errors"
	"flag"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimittest"
)

var leaseRun = flag.Duration("lease-run", 2*time.Second, "how long TestLeaseOverAdmissionCluster loads its key (the issue's goal is stated over 10s)")

// One process alone, the clock still: a burst admits exactly Burst events
// in about Burst/Lease round trips (the last lease smaller: only what
// fits), then the denial is repeated from the process's memory until a
// lease's worth of events is back (Lease intervals), and then exactly
// that many are admitted.
func TestLeaseBurstExactAlone(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			clk := testclock.New()
			l := newLimiter(t, Options{Client: c.c, Clock: clk, Prefix: c.prefix + "lease", Lease: 8, Limits: ratelimit.Policy{{Name: "api", Rate: 10, Burst: 100}}})
			key := ratelimittest.Key(t)
			ctx := context.Background()
			for i := 0; i < 100; i++ {
				d, err := l.Allow(ctx, key)
				if err != nil || !d.Allowed || d.Remaining != 99-i || d.Limit.Name != "api" || d.ResetAfter != time.Duration(i+1)*100*time.Millisecond {
					t.Fatalf("event %d of the burst: %+v %v, want allowed with %d remaining, reset after %v", i, d, err, 99-i, time.Duration(i+1)*100*time.Millisecond)
				}
			}
			// The denial is held until a lease's worth (8 intervals) is back.
			for i := 0; i < 5; i++ {
				d, err := l.Allow(ctx, key)
				if err != nil || d.Allowed || d.RetryAfter != 800*time.Millisecond || d.Remaining != 0 {
					t.Fatalf("over the burst: %+v %v, want denied, retry after 800ms (8 intervals: a lease)", d, err)
				}
			}
			st := l.Stats()
			if st.Leases != 14 || st.Leased != 100 || st.LeaseSpent != 100 || st.Allowed != 100 || st.Denied != 5 || st.RoundTrips != 14 {
				t.Fatalf("stats %+v: want 13 leases of 8 or fewer (100 events) and one denial, the 4 next denials from memory", st)
			}
			clk.Add(700 * time.Millisecond)
			if d, err := l.Allow(ctx, key); err != nil || d.Allowed || d.RetryAfter != 100*time.Millisecond {
				t.Fatalf("7 intervals later: %+v %v, want still denied, retry after 100ms", d, err)
			}
			clk.Add(100 * time.Millisecond)
			if n, _ := drainN(t, l, key, 20); n != 8 {
				t.Fatalf("8 intervals later: %d admitted, want exactly 8 (one lease)", n)
			}
			if st := l.Stats(); st.RoundTrips != 16 {
				t.Fatalf("stats %+v: want one lease and one denial more", st)
			}
		})
	}
}

// drainN admits single events of key until one is denied.
func drainN(t *testing.T, l *Limiter, key string, most int) (int, ratelimit.Decision) {
	t.Helper()
	for i := 0; i <= most; i++ {
		d, err := l.Allow(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed {
			return i, d
		}
	}
	t.Fatalf("more than %d admitted", most)
	return 0, ratelimit.Decision{}
}

// The over-admission bound, with the injected clock: three processes
// each hold a lease of a key's events taken at time 0 (limit: 10/s, burst
// 10; Lease 4: 4 + 4 + 2 fit), spend one each, and one tolerance later
// (1s: Redis holds a full burst again) spend what they hold on top of a
// full burst from Redis. Over [1s, 1s] the fleet admits burst + 7, within
// the documented bound burst + rate x 0 + Processes x (Lease - 1) = 19,
// where an exact limiter admits 10.
func TestLeaseOverAdmissionBound(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	const procs, lease, burst = 3, 4, 10
	var ls []*Limiter
	for i := 0; i < procs; i++ {
		ls = append(ls, newLimiter(t, Options{Client: r.Client, Clock: clk, Lease: lease, LeaseTTL: 5 * time.Second, Limits: ratelimit.Policy{{Rate: 10, Burst: burst}}}))
	}
	key := ratelimittest.Key(t)
	ctx := context.Background()
	for _, l := range ls {
		if d, err := l.Allow(ctx, key); err != nil || !d.Allowed {
			t.Fatal(d, err)
		}
	}
	clk.Add(time.Second)
	admitted := 0
	for progress := true; progress; {
		progress = false
		for _, l := range ls {
			d, err := l.Allow(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed {
				admitted++
				progress = true
			}
		}
	}
	if bound := burst + procs*(lease-1); admitted != burst+7 || admitted > bound {
		t.Fatalf("admitted %d at one instant, want burst + the 7 events held (bound %d)", admitted, bound)
	}
}

// Four processes (each its own client) with 16 goroutines each load one
// key of a real Redis Cluster in lease mode. Over a window that starts
// once the key is saturated (the processes then hold leases), the events
// admitted stay within burst + rate x window + Processes x (Lease - 1),
// which for this configuration is under 1% of the limit over the run.
// -lease-run sets the window (2s; the goal is stated over 10s).
func TestLeaseOverAdmissionCluster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	const procs, goroutines, lease, rate, burst = 4, 16, 16, 5_000, 50
	p := ratelimit.Policy{{Rate: rate, Burst: burst}}
	var ls []*Limiter
	for i := 0; i < procs; i++ {
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Client.Options().Addrs, ContextTimeoutEnabled: true})
		t.Cleanup(func() { cc.Close() })
		ls = append(ls, newLimiter(t, Options{Client: cc, Prefix: c.Prefix + "lease", Lease: lease, Limits: p, Timeout: 5 * time.Second}))
	}
	if bound, limit := float64(procs*(lease-1)), burst+rate*leaseRun.Seconds(); bound > 0.01*limit {
		t.Fatalf("configuration: the bound %v is over 1%% of the limit %v", bound, limit)
	}
	key := ratelimittest.Key(t)
	ctx := context.Background()
	redisNow := func() time.Time {
		// Every master's clock is this machine's: any node answers.
		now, err := c.Client.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return now
	}
	const (
		warming = iota
		window
		done
	)
	var phase atomic.Int32
	var admitted, calls atomic.Int64
	var wg sync.WaitGroup
	for _, l := range ls {
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ph := phase.Load()
					if ph == done {
						return
					}
					d, err := l.Allow(ctx, key)
					if err != nil {
						t.Error(err)
						return
					}
					if ph == window {
						calls.Add(1)
						if d.Allowed {
							admitted.Add(1)
						}
					}
				}
			}()
		}
	}
	// Warm up until the key is saturated: denials have been seen.
	deadline := time.Now().Add(30 * time.Second)
	for ls[0].Stats().Denied+ls[1].Stats().Denied == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // waits for real traffic to saturate the key, not for a goroutine
	}
	start := redisNow()
	phase.Store(window)
	time.Sleep(*leaseRun) // the window's length
	phase.Store(done)
	wg.Wait()
	end := redisNow()
	elapsed := end.Sub(start)
	exact := burst + int64(elapsed.Seconds()*rate) + 1
	bound := exact + procs*(lease-1)
	var st Stats
	for _, l := range ls {
		s := l.Stats()
		st.RoundTrips += s.RoundTrips
		st.LeaseSpent += s.LeaseSpent
		st.Leased += s.Leased
		st.Errors += s.Errors
		st.FailOpen += s.FailOpen
		st.LeaseExpired += s.LeaseExpired
		st.Leases += s.Leases
	}
	over := float64(admitted.Load()-exact) / float64(exact)
	t.Logf("%d calls over %v (Redis clock) from %d goroutines: %d admitted, exact limit %d, bound %d (over the exact limit: %+.3f%%); %d round trips (%d leases), %.1f decisions per round trip, %d leased events expired unspent",
		calls.Load(), elapsed, procs*goroutines, admitted.Load(), exact, bound, 100*over, st.RoundTrips, st.Leases, float64(calls.Load())/float64(max(1, st.RoundTrips)), st.LeaseExpired)
	if admitted.Load() > bound {
		t.Fatalf("admitted %d, more than the bound %d", admitted.Load(), bound)
	}
	if over > 0.01 {
		t.Fatalf("over-admission %.3f%% of the limit, want <= 1%%", 100*over)
	}
	if admitted.Load() < exact/2 || calls.Load() <= admitted.Load() {
		t.Fatalf("admitted %d of %d calls: the test did not load the limit", admitted.Load(), calls.Load())
	}
	if st.Errors+st.FailOpen != 0 {
		t.Fatalf("decisions that did not come from Redis: %+v", st)
	}
}

// Redis stopped in lease mode: events in hand are still spent (no round
// trip), then decisions degrade (here: fail closed) with no error, one
// failure counted per lease attempted. Paused, many callers of one key
// waiting for one lease all get the degraded decision within about one
// Timeout (they share the taker's failure). Back up, leases come again.
func TestLeaseOutage(t *testing.T) {
	r := testinfra.Redis(t)
	l := newLimiter(t, Options{Client: r.Client, Breaker: fastBreaker(t), Timeout: DefaultTimeout, Failure: FailClosed, Lease: 5, Limits: ratelimit.Policy{{Rate: 1000}}})
	ctx := context.Background()
	if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
		t.Fatal(d, err)
	}
	r.Stop()
	for i := 0; i < 4; i++ {
		if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
			t.Fatalf("event %d in hand with Redis down: %+v %v, want admitted from the lease", i, d, err)
		}
	}
	for i := 0; i < 3; i++ {
		if d, err := l.Allow(ctx, "k"); err != nil || d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("lease spent, Redis down: %+v %v, want the fail-closed denial", d, err)
		}
	}
	st := l.Stats()
	if st.LeaseSpent != 5 || st.FailClosed != 3 || st.Errors+st.Skipped != 3 {
		t.Fatalf("stats %+v", st)
	}
	r.Start()
	waitFromRedis(t, l, func(st Stats) uint64 { return st.Leases })

	// Paused: 20 callers of one key.
	br, err := breaker.New(breaker.Options{ConsecutiveFailures: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 200 * time.Millisecond
	pl := newLimiter(t, Options{Client: r.Client, Breaker: br, Timeout: timeout, Lease: 5, Limits: ratelimit.Policy{{Rate: 1000}}})
	r.Pause()
	defer r.Resume()
	var wg sync.WaitGroup
	var answers atomic.Int64
	start := time.Now()
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := pl.Allow(ctx, "hot")
			if err != nil || !d.Allowed {
				t.Errorf("paused: %+v %v, want the fail-open admission", d, err)
				return
			}
			answers.Add(1)
		}()
	}
	wg.Wait()
	if el := time.Since(start); answers.Load() != 20 || el > timeout+3*time.Second {
		t.Fatalf("%d answers in %v: want 20, in about one Timeout (%v)", answers.Load(), el, timeout)
	}
	if st := pl.Stats(); st.FailOpen != 20 || st.Errors == 0 || st.Errors > 20 {
		t.Fatalf("paused stats %+v: want 20 fail-open decisions", st)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := pl.Allow(short, "other"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller's ctx ends first: %v, want context.DeadlineExceeded", err)
	}
}

// Many goroutines over a few keys in lease mode, the clock still: each key
// admits exactly its burst (a process alone never over-admits), and every
// call gets one answer.
func TestLeaseHammer(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	const burst, keys, goroutines, calls = 50, 4, 32, 40
	l := newLimiter(t, Options{Client: r.Client, Clock: clk, Lease: 7, Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: burst}}})
	var admitted [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				k := (g + i) % keys
				d, err := l.Allow(context.Background(), "h"+strconv.Itoa(k))
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					admitted[k].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for k := range admitted {
		if got := admitted[k].Load(); got != burst {
			t.Errorf("key %d: %d admitted, want exactly %d", k, got, burst)
		}
	}
	if st := l.Stats(); st.Allowed+st.Denied != goroutines*calls || st.LeaseSpent != keys*burst || st.Leased != keys*burst {
		t.Fatalf("stats %+v", st)
	}
}

func TestLeaseBadOptions(t *testing.T) {
	r := testinfra.Redis(t)
	p := ratelimit.Policy{{Rate: 10}}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Client: r.Client, Limits: p, Lease: -1}, "Options.Lease must be between 0 (off) and 1000000, got -1"},
		{Options{Client: r.Client, Limits: p, Lease: 2_000_000}, "Options.Lease must be between 0 (off) and 1000000"},
		{Options{Client: r.Client, Limits: p, Lease: 5, LeaseTTL: -time.Second}, "Options.LeaseTTL must be > 0"},
		{Options{Client: r.Client, Limits: p, Lease: 5, Coalesce: true}, "Options.Lease and Options.Coalesce cannot both be set"},
	} {
		if _, err := New(c.o); !errors.Is(err, ratelimit.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want ErrInvalid saying %q", c.o, err, c.want)
		}
	}
}
