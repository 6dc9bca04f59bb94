package policy_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/policy"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

var errBoom = errors.New("boom")

// Every policy of the module is a Policy.
var (
	_ policy.Policy = (*breaker.Breaker)(nil)
	_ policy.Policy = (*retry.Retrier)(nil)
	_ policy.Policy = (*timeout.Timeout)(nil)
	_ policy.Policy = (*bulkhead.Bulkhead)(nil)
	_ policy.Policy = (*throttle.Throttler)(nil)
	_ policy.Policy = (*slo.Shedder)(nil)
)

func hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// standard is the standard pipeline: rate limit, total timeout (2.5s),
// retry (up to 10 attempts, no wait), breaker, attempt timeout (1s).
type standard struct {
	p        policy.Policy
	br       *breaker.Breaker
	r        *retry.Retrier
	lim      *ratelimit.Local
	attempts *timeout.Timeout
}

func newStandard(t *testing.T) standard {
	lim := must[*ratelimit.Local](t)(ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{ratelimit.PerSecond(1000, 1000)}}))
	total := must[*timeout.Timeout](t)(timeout.New(timeout.Options{Timeout: 2500 * time.Millisecond, Kind: timeout.Total}))
	r := must[*retry.Retrier](t)(retry.New(retry.Options{MaxAttempts: 10, Backoff: retry.Constant{}, Retryable: policy.Retryable}))
	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{Name: "dep", ConsecutiveFailures: 100}))
	attempt := must[*timeout.Timeout](t)(timeout.New(timeout.Options{Timeout: time.Second, Kind: timeout.Attempt}))
	return standard{policy.Compose(policy.Limit(lim, "dep"), total, r, br, attempt), br, r, lim, attempt}
}

// TestStandardOrder is the conformance test of the documented order: an
// attempt cut by the attempt timeout is a failure the breaker counts and
// the retry retries; the total timeout ends the retries.
func TestStandardOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStandard(t)
		ctx := context.Background()
		calls := 0
		start := time.Now()
		err := s.p.Do(ctx, func(ctx context.Context) error {
			calls++
			if calls < 3 {
				return hang(ctx)
			}
			return nil
		})
		if err != nil || calls != 3 || time.Since(start) != 2*time.Second {
			t.Fatalf("err %v after %d calls and %v; want success on the 3rd call after 2 attempt timeouts of 1s", err, calls, time.Since(start))
		}
		if bs := s.br.Stats(); bs.Failures != 2 || bs.Successes != 1 {
			t.Fatalf("breaker counted %d failures, %d successes; want the 2 attempt timeouts and 1 success", bs.Failures, bs.Successes)
		}

		calls = 0
		start = time.Now()
		err = s.p.Do(ctx, func(ctx context.Context) error { calls++; return hang(ctx) })
		if !errors.Is(err, timeout.ErrTotal) || errors.Is(err, timeout.ErrAttempt) || calls != 3 || time.Since(start) != 2500*time.Millisecond {
			t.Fatalf("err %v after %d calls and %v; want the total timeout at 2.5s, in the 3rd attempt", err, calls, time.Since(start))
		}
		if rs := s.r.Stats(); rs.Calls != 2 || rs.Retries != 4 {
			t.Fatalf("retry Stats %+v: want 2 calls, 4 retries", rs)
		}
		if ts := s.attempts.Stats(); ts.Calls != 6 || ts.Timeouts != 4 {
			t.Fatalf("attempt timeout Stats %+v: want 6 calls, 4 timeouts (the 6th was cut by the total)", ts)
		}
	})
}

// TestOpenBreakerStopsRetries: with policy.Retryable, the retry loop stops
// at once when the breaker inside it opens.
func TestOpenBreakerStopsRetries(t *testing.T) {
	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{ConsecutiveFailures: 2, OpenTimeout: time.Hour}))
	r := must[*retry.Retrier](t)(retry.New(retry.Options{MaxAttempts: 5, Backoff: retry.Constant{}, Retryable: policy.Retryable}))
	calls := 0
	err := policy.Compose(r, br).Do(context.Background(), func(context.Context) error { calls++; return errBoom })
	if !errors.Is(err, breaker.ErrOpen) || calls != 2 {
		t.Fatalf("err %v after %d calls; want ErrOpen after 2", err, calls)
	}
}

// recorder is a Policy that notes when it is entered and left.
type recorder struct {
	name string
	log  *[]string
}

func (r recorder) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	*r.log = append(*r.log, r.name+">")
	err := fn(ctx)
	*r.log = append(*r.log, "<"+r.name)
	return err
}

func TestComposeNestsInOrder(t *testing.T) {
	var log []string
	var nilTimeout *timeout.Timeout
	var nilFunc policy.Func
	p := policy.Compose(recorder{"a", &log}, nil, recorder{"b", &log}, nilTimeout, nilFunc, recorder{"c", &log})
	err := p.Do(context.Background(), func(context.Context) error { log = append(log, "fn"); return errBoom })
	if err != errBoom || strings.Join(log, " ") != "a> b> c> fn <c <b <a" {
		t.Fatalf("err %v, order %v", err, log)
	}
	called := false
	if err := policy.Compose().Do(context.Background(), func(context.Context) error { called = true; return nil }); err != nil || !called {
		t.Fatal("an empty pipeline does not call fn")
	}
	one := recorder{"x", &log}
	if policy.Compose(nil, one) != policy.Policy(one) {
		t.Fatal("a pipeline of one is not that policy")
	}
	v, err := policy.DoValue(context.Background(), p, func(context.Context) (int, error) { return 5, nil })
	if v != 5 || err != nil {
		t.Fatalf("DoValue = %v, %v", v, err)
	}
}

func TestLimiters(t *testing.T) {
	ctx := context.Background()
	lim := must[*ratelimit.Local](t)(ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{ratelimit.PerSecond(1, 1)}}))
	p := policy.Limit(lim, "k")
	if err := p.Do(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	err := p.Do(ctx, func(context.Context) error { t.Error("ran over the limit"); return nil })
	if !errors.Is(err, ratelimit.ErrLimited) || policy.Retryable(err) {
		t.Fatalf("over the limit: %v (retryable %v)", err, policy.Retryable(err))
	}
	if err := policy.Limit(lim, "").Do(ctx, func(context.Context) error { return nil }); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := policy.Wait(lim, "k").Do(wctx, func(context.Context) error { return nil }); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("Wait under a deadline too near: %v", err)
	}

	conc := must[*ratelimit.Concurrency](t)(ratelimit.NewConcurrency(ratelimit.ConcurrencyOptions{Limit: 1}))
	cp := policy.Concurrency(conc, "k")
	err = cp.Do(ctx, func(ctx context.Context) error {
		return cp.Do(ctx, func(context.Context) error { return nil }) // a second holder
	})
	if !errors.Is(err, ratelimit.ErrLimited) || conc.InFlight("k") != 0 {
		t.Fatalf("nested over a limit of 1: %v, in flight %d", err, conc.InFlight("k"))
	}

	ad := must[*ratelimit.Adaptive](t)(ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{Initial: 10, Min: 1, Backoff: 0.5}))
	ap := must[policy.Policy](t)(policy.Adaptive(ad, nil))
	_ = ap.Do(ctx, func(context.Context) error {
		return &timeout.Error{Kind: timeout.Attempt, Err: context.DeadlineExceeded}
	})
	if ad.Limit() != 5 {
		t.Fatalf("an attempt timeout did not cut the limit: %d", ad.Limit())
	}
	_ = ap.Do(ctx, func(context.Context) error { return errBoom })
	if s := ad.Stats(); s.Cuts != 1 || s.InFlight != 0 {
		t.Fatalf("a plain error counted as overload: %+v", s)
	}
	if _, err := policy.Adaptive(nil, nil); !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("Adaptive(nil): %v", err)
	}
	for _, e := range []error{breaker.ErrOpen, bulkhead.ErrShed, throttle.ErrThrottled, slo.ErrShed} {
		if policy.Retryable(e) {
			t.Errorf("Retryable(%v) = true", e)
		}
	}
	if !policy.Retryable(errBoom) || !policy.Retryable(&timeout.Error{Kind: timeout.Attempt}) {
		t.Error("Retryable refuses a dependency's error or an attempt timeout")
	}
}

func loaded(m *sync.Map, key string) int64 {
	v, ok := m.Load(key)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// TestHammer: 64 goroutines through one standard pipeline with a bulkhead
// and a throttler in front; every call ends in one of the expected ways.
func TestHammer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStandard(t)
		bh := must[*bulkhead.Bulkhead](t)(bulkhead.New(bulkhead.Options{MaxConcurrent: 24, MaxWaiting: 24, MaxWait: 500 * time.Millisecond}))
		// The throttler counts the bulkhead's refusals as the backend's.
		th := must[*throttle.Throttler](t)(throttle.New(throttle.Options{Rejected: func(err error) bool { return errors.Is(err, bulkhead.ErrRejected) }}))
		p := policy.Compose(th, bh, s.p)
		var outcomes sync.Map
		var wg sync.WaitGroup
		for g := range 64 {
			wg.Go(func() {
				for i := range 20 {
					n := 0
					err := p.Do(context.Background(), func(ctx context.Context) error {
						n++
						switch (g + i) % 4 {
						case 0:
							return nil
						case 1:
							if n == 1 {
								return hang(ctx) // an attempt timeout, then success
							}
							return nil
						case 2:
							return retry.Permanent(errBoom)
						}
						time.Sleep(10 * time.Millisecond)
						return nil
					})
					key := "ok"
					switch {
					case err == nil:
					case errors.Is(err, errBoom):
						key = "boom"
					case errors.Is(err, bulkhead.ErrRejected):
						key = "bulkhead"
					case errors.Is(err, throttle.ErrThrottled):
						key = "throttled"
					default:
						t.Errorf("unexpected %v", err)
					}
					c, _ := outcomes.LoadOrStore(key, new(atomic.Int64))
					c.(*atomic.Int64).Add(1)
				}
			})
		}
		wg.Wait()
		total := int64(0)
		outcomes.Range(func(k, v any) bool {
			total += v.(*atomic.Int64).Load()
			t.Logf("%v: %d", k, v.(*atomic.Int64).Load())
			return true
		})
		if total != 64*20 || loaded(&outcomes, "ok") == 0 {
			t.Fatalf("%d outcomes, want %d", total, 64*20)
		}
		if bs := bh.Stats(); bs.InFlight != 0 || bs.Waiting != 0 {
			t.Fatalf("bulkhead left %+v", bs)
		}
	})
}

// TestComposeAllocatesNothing: a pipeline adds no allocation of its own
// to policies that make none (its closures are reused across calls).
func TestComposeAllocatesNothing(t *testing.T) {
	r := must[*retry.Retrier](t)(retry.New(retry.Options{MaxAttempts: 3, Retryable: policy.Retryable}))
	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{ConsecutiveFailures: 5}))
	bh := must[*bulkhead.Bulkhead](t)(bulkhead.New(bulkhead.Options{MaxConcurrent: 8}))
	p := policy.Compose(r, br, bh, br)
	ctx := context.Background()
	calls := 0
	fn := func(context.Context) error { calls++; return nil }
	a := testing.AllocsPerRun(1000, func() {
		if err := p.Do(ctx, fn); err != nil {
			t.Fatal(err)
		}
	})
	if calls != 1001 {
		t.Fatalf("fn called %d times, want 1001", calls)
	}
	if raceEnabled {
		t.Logf("%v allocs per call (not checked: under -race sync.Pool drops frames)", a)
	} else if a != 0 {
		t.Fatalf("composed Do: %v allocs per call, want 0", a)
	}
}

// TestComposeFramesAreNotShared: calls in flight at once through one
// pipeline (nested in another), each retried, each run their own fn, and
// a panicking fn leaves the pipeline working.
func TestComposeFramesAreNotShared(t *testing.T) {
	r := must[*retry.Retrier](t)(retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{}}))
	bh := must[*bulkhead.Bulkhead](t)(bulkhead.New(bulkhead.Options{MaxConcurrent: 64}))
	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{ConsecutiveFailures: 1 << 20}))
	inner := policy.Compose(r, bh) // the package's own policies: pooled frames
	p := policy.Compose(inner, br)
	func() {
		defer func() {
			if recover() != errBoom {
				t.Error("the panic did not reach Do's caller")
			}
		}()
		_ = p.Do(context.Background(), func(context.Context) error { panic(errBoom) })
	}()
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				var mine atomic.Int64
				err := p.Do(context.Background(), func(context.Context) error {
					if mine.Add(1) < 2 {
						return errBoom // retried once
					}
					return nil
				})
				if err != nil || mine.Load() != 2 {
					t.Errorf("goroutine %d call %d: err %v, fn ran %d times, want 2", g, i, err, mine.Load())
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A policy of the caller's that runs fn on a goroutine of its own, after
// its Do returned (against the Policy contract, but easy to write), still
// runs each call's own fn: a pipeline holding a policy it does not know
// nests fresh closures per call instead of reusing pooled frames. With
// pooled frames the late goroutines found fn cleared (or another call's).
func TestComposeForeignPolicyGetsItsOwnFn(t *testing.T) {
	release := make(chan struct{})
	var late sync.WaitGroup
	async := policy.Func(func(ctx context.Context, fn func(ctx context.Context) error) error {
		late.Add(1)
		go func() {
			defer late.Done()
			<-release
			_ = fn(ctx)
		}()
		return nil
	})
	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{}))
	p := policy.Compose(async, br)
	var ran [2]atomic.Int64
	for i := range ran {
		if err := p.Do(context.Background(), func(context.Context) error { ran[i].Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	late.Wait()
	for i := range ran {
		if n := ran[i].Load(); n != 1 {
			t.Errorf("call %d's fn ran %d times, want once", i, n)
		}
	}
}
