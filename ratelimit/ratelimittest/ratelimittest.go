// Package ratelimittest is the conformance suite every ratelimit.Limiter
// and ratelimit.ConcurrencyLimiter of this module passes: the in-process
// ones and the Redis ones, standalone and Cluster. A limiter of your own
// can run it too:
//
//	func TestMine(t *testing.T) {
//		ratelimittest.Run(t, func(t *testing.T, p ratelimit.Policy, clk clock.Clock) ratelimit.Limiter {
//			return mine.New(p, clk)
//		})
//	}
//
// Run drives simulated time through the factory's clock and checks exact
// admission counts: a burst admits exactly Burst events, a sustained run
// admits Burst plus one per interval, a denial consumes nothing from any
// limit of a policy, RetryAfter is exact to the microsecond, a key is
// back to a full burst once its ResetAfter has passed, Wait with an ended
// ctx spends nothing, and at 300k/s and 700k/s the admitted count is
// within 0.1% of the limit (intervals are not rounded to microseconds).
package ratelimittest

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/ratelimitx"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// Factory returns the Limiter under test for policy p, reading the time
// from clk (simulated: it only moves when the suite moves it). It is
// called once per subtest; the suite's keys are unique per subtest, so a
// factory may share one backend across calls.
type Factory func(t *testing.T, p ratelimit.Policy, clk clock.Clock) ratelimit.Limiter

// Run runs the Limiter conformance suite as subtests of t.
func Run(t *testing.T, newLimiter Factory) {
	s := &suite{newLimiter: newLimiter}
	t.Run("Burst", s.burst)
	t.Run("RetryAfterExact", s.retryAfterExact)
	t.Run("SustainedRate", s.sustainedRate)
	t.Run("AllowN", s.allowN)
	t.Run("BadArguments", s.badArguments)
	t.Run("MultiLimitAtomic", s.multiLimitAtomic)
	t.Run("KeysIndependent", s.keysIndependent)
	t.Run("ResetAfterRestoresBurst", s.resetRestoresBurst)
	t.Run("ConcurrentCallers", s.concurrentCallers)
	t.Run("WaitFailsFast", s.waitFailsFast)
	t.Run("WaitEndedContextSpendsNothing", s.waitEndedContext)
	t.Run("HighRateAccuracy", s.highRateAccuracy)
}

type suite struct{ newLimiter Factory }

func (s *suite) setup(t *testing.T, p ratelimit.Policy) (ratelimit.Limiter, *testclock.Clock, string) {
	t.Helper()
	clk := testclock.New()
	return s.newLimiter(t, p, clk), clk, Key(t)
}

// Key is a key unique to this test and run, for limiters whose state
// outlives the test (a shared Redis).
func Key(t testing.TB) string {
	return t.Name() + "#" + strconv.FormatUint(rand.Uint64(), 36)
}

func allow(t *testing.T, l ratelimit.Limiter, key string, n int) ratelimit.Decision {
	t.Helper()
	d, err := l.AllowN(context.Background(), key, n)
	if err != nil {
		t.Fatalf("AllowN(%q, %d): %v", key, n, err)
	}
	return d
}

// drain admits single events until one is denied and returns how many
// were admitted and the denial.
func drain(t *testing.T, l ratelimit.Limiter, key string, most int) (int, ratelimit.Decision) {
	t.Helper()
	for i := 0; i <= most; i++ {
		if d := allow(t, l, key, 1); !d.Allowed {
			return i, d
		}
	}
	t.Fatalf("more than %d events admitted at one instant", most)
	return 0, ratelimit.Decision{}
}

func (s *suite) burst(t *testing.T) {
	l, clk, key := s.setup(t, ratelimit.Policy{{Name: "api", Rate: 10, Period: time.Second, Burst: 5}})
	for i := 0; i < 5; i++ {
		d := allow(t, l, key, 1)
		if !d.Allowed || d.Remaining != 4-i || d.Limit.Name != "api" || d.RetryAfter != 0 {
			t.Fatalf("event %d of the burst: %+v, want allowed with %d remaining", i+1, d, 4-i)
		}
		if want := time.Duration(i+1) * 100 * time.Millisecond; d.ResetAfter != want {
			t.Fatalf("event %d: ResetAfter %v, want %v", i+1, d.ResetAfter, want)
		}
	}
	for i := 0; i < 3; i++ { // denials consume nothing
		d := allow(t, l, key, 1)
		if d.Allowed || d.Remaining != 0 || d.RetryAfter != 100*time.Millisecond || d.ResetAfter != 500*time.Millisecond {
			t.Fatalf("over the burst: %+v, want denied, 0 remaining, retry after 100ms, reset after 500ms", d)
		}
	}
	clk.Add(100 * time.Millisecond)
	if n, _ := drain(t, l, key, 5); n != 1 {
		t.Fatalf("one interval after the burst: %d admitted, want exactly 1", n)
	}
}

func (s *suite) retryAfterExact(t *testing.T) {
	// 4 per second: an interval of 250ms.
	l, clk, key := s.setup(t, ratelimit.Policy{{Rate: 4, Period: time.Second, Burst: 2}})
	drain(t, l, key, 2)
	d := allow(t, l, key, 1)
	if d.Allowed || d.RetryAfter != 250*time.Millisecond {
		t.Fatalf("after the burst: %+v, want denied with RetryAfter 250ms", d)
	}
	clk.Add(d.RetryAfter - time.Microsecond)
	if d := allow(t, l, key, 1); d.Allowed || d.RetryAfter != time.Microsecond {
		t.Fatalf("1µs before RetryAfter: %+v, want denied with RetryAfter 1µs", d)
	}
	clk.Add(time.Microsecond)
	if d := allow(t, l, key, 1); !d.Allowed {
		t.Fatalf("at RetryAfter: %+v, want allowed", d)
	}
}

func (s *suite) sustainedRate(t *testing.T) {
	const rate, burst = 20, 4 // interval 50ms
	l, clk, key := s.setup(t, ratelimit.Policy{{Rate: rate, Period: time.Second, Burst: burst}})
	start := clk.Now()
	total := 0
	var last time.Duration
	for step := time.Duration(0); step <= 10*time.Second; step += 7 * time.Millisecond {
		clk.Add(step - last)
		last = step
		n, _ := drain(t, l, key, burst)
		total += n
	}
	want := burst + int(clk.Now().Sub(start)/(50*time.Millisecond))
	if total != want {
		t.Fatalf("over %v at %d/s burst %d: %d admitted, want exactly %d", clk.Now().Sub(start), rate, burst, total, want)
	}
	if total > rate*10+burst {
		t.Fatalf("%d admitted in 10s, more than rate*10+burst = %d", total, rate*10+burst)
	}
}

func (s *suite) allowN(t *testing.T) {
	l, clk, key := s.setup(t, ratelimit.Policy{{Rate: 10, Burst: 5}})
	if d := allow(t, l, key, 3); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("AllowN(3) of burst 5: %+v, want allowed, 2 remaining", d)
	}
	d := allow(t, l, key, 3)
	if d.Allowed || d.Remaining != 2 || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("AllowN(3) with 2 left: %+v, want denied, 2 remaining, retry after 100ms", d)
	}
	clk.Add(d.RetryAfter)
	if d := allow(t, l, key, 3); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("AllowN(3) after RetryAfter: %+v, want allowed, 0 remaining", d)
	}
	if d := allow(t, l, key, 1); d.Allowed {
		t.Fatalf("AllowN(1) with nothing left: %+v, want denied", d)
	}
}

func (s *suite) badArguments(t *testing.T) {
	l, _, key := s.setup(t, ratelimit.Policy{{Rate: 10, Burst: 5}, {Rate: 100, Period: time.Minute, Burst: 50}})
	for _, c := range []struct {
		key string
		n   int
	}{{"", 1}, {key, 0}, {key, -1}, {key, 6}} {
		if _, err := l.AllowN(context.Background(), c.key, c.n); !errors.Is(err, ratelimit.ErrInvalid) {
			t.Errorf("AllowN(%q, %d): %v, want an error matching ratelimit.ErrInvalid", c.key, c.n, err)
		}
	}
	if d := allow(t, l, key, 5); !d.Allowed {
		t.Fatalf("the bad calls consumed events: AllowN(5) = %+v", d)
	}
}

func (s *suite) multiLimitAtomic(t *testing.T) {
	l, clk, key := s.setup(t, ratelimit.Policy{
		{Name: "sec", Rate: 10, Period: time.Second, Burst: 5},
		{Name: "min", Rate: 8, Period: time.Minute, Burst: 8},
	})
	n, d := drain(t, l, key, 8)
	if n != 5 || d.Limit.Name != "sec" || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("first instant: %d admitted, denial %+v; want 5, denied by sec, retry after 100ms", n, d)
	}
	for i := 0; i < 10; i++ { // denied by sec: must not count against min
		allow(t, l, key, 1)
	}
	clk.Add(time.Second)
	n, d = drain(t, l, key, 8)
	if n != 3 {
		t.Fatalf("one second later: %d admitted, want 3 (min's 8 minus the 5 admitted; denials must consume nothing)", n)
	}
	if d.Limit.Name != "min" || d.RetryAfter != 6500*time.Millisecond || d.Remaining != 0 {
		t.Fatalf("denial: %+v, want limit min, 0 remaining, retry after 6.5s", d)
	}
	clk.Add(d.RetryAfter)
	if d := allow(t, l, key, 1); !d.Allowed || d.Limit.Name != "min" || d.Remaining != 0 {
		t.Fatalf("after RetryAfter: %+v, want allowed, binding limit min with 0 remaining", d)
	}
}

func (s *suite) keysIndependent(t *testing.T) {
	l, _, key := s.setup(t, ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: 2}})
	for i, k := range []string{key + "a", key + "b", key + "c"} {
		if n, _ := drain(t, l, k, 2); n != 2 {
			t.Fatalf("key %d: %d admitted, want its own burst of 2", i, n)
		}
	}
}

func (s *suite) resetRestoresBurst(t *testing.T) {
	l, clk, key := s.setup(t, ratelimit.Policy{{Rate: 10, Burst: 5}, {Rate: 100, Period: time.Minute, Burst: 20}})
	var last ratelimit.Decision
	for i := 0; i < 5; i++ {
		last = allow(t, l, key, 1)
	}
	if last.ResetAfter != 500*time.Millisecond {
		t.Fatalf("ResetAfter after 5 events: %v, want 500ms", last.ResetAfter)
	}
	clk.Add(time.Minute) // past every limit's reset
	if n, _ := drain(t, l, key, 5); n != 5 {
		t.Fatalf("after the reset: %d admitted, want the full burst of 5", n)
	}
}

func (s *suite) concurrentCallers(t *testing.T) {
	const burst = 50
	l, _, key := s.setup(t, ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: burst}})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				d, err := l.AllowN(context.Background(), key, 1)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := admitted.Load(); got != burst {
		t.Fatalf("32 goroutines x 8 calls at one instant: %d admitted, want exactly the burst %d", got, burst)
	}
}

func (s *suite) waitFailsFast(t *testing.T) {
	l, _, key := s.setup(t, ratelimit.Policy{{Rate: 1, Period: time.Minute, Burst: 1}})
	allow(t, l, key, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ratelimit.Wait(ctx, l, key, 1)
	var le *ratelimit.LimitedError
	if !errors.Is(err, ratelimit.ErrLimited) || !errors.As(err, &le) || le.Decision.RetryAfter != time.Minute {
		t.Fatalf("Wait with 5s left for a 1m wait: %v, want a *LimitedError with RetryAfter 1m, at once", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Wait slept until the deadline instead of failing fast")
	}
}

// waitEndedContext: Wait with a ctx that has already ended returns the ctx's
// error and spends nothing (x/time/rate's Wait: "returns an error if ... the
// Context is canceled"; it checks ctx before reserving).
func (s *suite) waitEndedContext(t *testing.T) {
	l, _, key := s.setup(t, ratelimit.Policy{{Rate: 1, Period: time.Minute, Burst: 2}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 3; i++ {
		if d, err := ratelimit.Wait(ctx, l, key, 1); !errors.Is(err, context.Canceled) || d.Allowed {
			t.Fatalf("Wait with a cancelled ctx: %+v, %v; want context.Canceled and nothing admitted", d, err)
		}
	}
	dctx, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	if _, err := ratelimit.Wait(dctx, l, key, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with an expired deadline: %v, want context.DeadlineExceeded", err)
	}
	if n, _ := drain(t, l, key, 2); n != 2 {
		t.Fatalf("after Waits with ended contexts: %d admitted, want the full burst of 2 (an ended ctx must spend nothing)", n)
	}
}

// highRateAccuracy: at 300k/s and 700k/s (intervals of 3333.3ns and
// 1428.6ns), the events admitted over two simulated seconds are within
// 0.1% of what the limit allows, burst + rate*elapsed. A backend that
// truncates intervals to whole microseconds admits 11% (300k/s) and 43%
// (700k/s) too many in the sustained part. The burst is the rate (a
// second of tolerance, so a backend whose state expires by a real clock
// keeps it between calls) and the clock moves 100ms at a time (a tenth of
// the burst accrues, nothing is lost); each step drains the key with few
// calls: AllowN(1), then AllowN of what Remaining says is left, then
// AllowN(1) must be denied.
func (s *suite) highRateAccuracy(t *testing.T) {
	for _, rate := range []int{300_000, 700_000} {
		t.Run(strconv.Itoa(rate), func(t *testing.T) {
			const step, elapsed = 100 * time.Millisecond, 2 * time.Second
			burst := rate
			l, clk, key := s.setup(t, ratelimit.Policy{{Rate: rate, Period: time.Second, Burst: burst}})
			admitted := 0
			for at := time.Duration(0); ; at += step {
				d := allow(t, l, key, 1)
				if d.Allowed {
					admitted++
					for d.Remaining > 0 {
						n := d.Remaining
						if d = allow(t, l, key, n); !d.Allowed {
							t.Fatalf("at %v: AllowN(%d) with %d remaining: %+v, want allowed", at, n, n, d)
						}
						admitted += n
					}
					if d := allow(t, l, key, 1); d.Allowed {
						t.Fatalf("at %v: an event admitted with 0 remaining: %+v", at, d)
					}
				}
				if at == elapsed {
					break
				}
				clk.Add(step)
			}
			want := float64(burst) + float64(rate)*elapsed.Seconds()
			if off := (float64(admitted) - want) / want; off > 0.001 || off < -0.001 {
				t.Fatalf("%d/s burst %d over %v: %d admitted, want %.0f within 0.1%% (off by %+.3f%%)", rate, burst, elapsed, admitted, want, off*100)
			}
		})
	}
}

// ConcurrencyFactory returns the ConcurrencyLimiter under test with the
// given limit per key.
type ConcurrencyFactory func(t *testing.T, limit int) ratelimit.ConcurrencyLimiter

// RunConcurrency runs the ConcurrencyLimiter conformance suite as subtests
// of t: at most limit holders per key, keys independent, an empty key
// refused with ratelimit.ErrInvalid, and, with every slot of a key held, a
// refusal whose RetryAfter is short, in (0, 100ms], both before any slot
// was released and after holds of microseconds.
func RunConcurrency(t *testing.T, newLimiter ConcurrencyFactory) {
	t.Run("AtMostLimit", func(t *testing.T) {
		c, key := newLimiter(t, 3), Key(t)
		var releases []func()
		for i := 0; i < 3; i++ {
			r, err := c.Acquire(context.Background(), key)
			if err != nil {
				t.Fatalf("slot %d of 3: %v", i+1, err)
			}
			releases = append(releases, r)
		}
		_, err := c.Acquire(context.Background(), key)
		var le *ratelimit.LimitedError
		if !errors.Is(err, ratelimit.ErrLimited) || !errors.As(err, &le) || le.Decision.Allowed || le.Decision.Remaining != 0 {
			t.Fatalf("4th holder of 3: %v, want a *LimitedError with 0 remaining", err)
		}
		releases[0]()
		releases[0]() // twice: must not free a second slot
		r, err := c.Acquire(context.Background(), key)
		if err != nil {
			t.Fatalf("after a release: %v", err)
		}
		defer r()
		if _, err := c.Acquire(context.Background(), key); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("a double release freed two slots: Acquire = %v, want ErrLimited", err)
		}
		for _, r := range releases[1:] {
			r()
		}
	})
	t.Run("KeysIndependent", func(t *testing.T) {
		c, key := newLimiter(t, 1), Key(t)
		ra, err := c.Acquire(context.Background(), key+"a")
		if err != nil {
			t.Fatal(err)
		}
		defer ra()
		rb, err := c.Acquire(context.Background(), key+"b")
		if err != nil {
			t.Fatalf("another key: %v, want its own slot", err)
		}
		rb()
	})
	t.Run("EmptyKey", func(t *testing.T) {
		if _, err := newLimiter(t, 1).Acquire(context.Background(), ""); !errors.Is(err, ratelimit.ErrInvalid) {
			t.Fatalf("empty key: %v, want ErrInvalid", err)
		}
	})
	t.Run("RetryAfterIsShort", func(t *testing.T) {
		// A refusal's RetryAfter is what a client should wait: when a
		// slot is expected to free (at most the 100ms hint here),
		// not when a live holder's lease would expire (tens of seconds).
		c, key := newLimiter(t, 2), Key(t)
		full := func(when string, most time.Duration) {
			t.Helper()
			var releases []func()
			for i := 0; i < 2; i++ {
				r, err := c.Acquire(context.Background(), key)
				if err != nil {
					t.Fatalf("%s: slot %d of 2: %v", when, i+1, err)
				}
				releases = append(releases, r)
			}
			_, err := c.Acquire(context.Background(), key)
			var le *ratelimit.LimitedError
			if !errors.As(err, &le) || le.Decision.RetryAfter <= 0 || le.Decision.RetryAfter > most {
				t.Fatalf("%s, every slot held: %v, want a *LimitedError with RetryAfter in (0, %v]", when, err, most)
			}
			for _, r := range releases {
				r()
			}
		}
		full("before any release", ratelimitx.ConcurrencyRetryHint)
		for i := 0; i < 5; i++ { // holds of microseconds
			r, err := c.Acquire(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			r()
		}
		full("after short holds", ratelimitx.ConcurrencyRetryHint)
	})
	t.Run("Hammer", func(t *testing.T) {
		const limit = 4
		c, key := newLimiter(t, limit), Key(t)
		var inflight, peak, acquired atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					release, err := c.Acquire(context.Background(), key)
					if errors.Is(err, ratelimit.ErrLimited) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					acquired.Add(1)
					n := inflight.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(50 * time.Microsecond)
					inflight.Add(-1)
					release()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if peak.Load() > limit {
			t.Fatalf("%d holders at once, limit %d", peak.Load(), limit)
		}
		if acquired.Load() < limit {
			t.Fatalf("only %d acquisitions succeeded in 400 tries", acquired.Load())
		}
	})
}
