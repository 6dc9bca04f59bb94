package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

var errBoom = errors.New("boom")

func newR(t testing.TB, o Options) *Retrier {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// failing returns a func that fails n times, then succeeds, counting calls.
func failing(n int, calls *int) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= n {
			return errBoom
		}
		return nil
	}
}

func TestDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Options{}: 3 attempts, full jitter from 100ms: with r = 0.5 the
		// waits are 50ms and 100ms.
		r := newR(t, Options{rand: func() float64 { return 0.5 }})
		start := time.Now()
		calls := 0
		err := r.Do(context.Background(), failing(100, &calls))
		var ee *ExhaustedError
		if !errors.As(err, &ee) || ee.Attempts != 3 || ee.Reason != ReasonMaxAttempts || calls != 3 {
			t.Fatalf("err %v after %d calls; want 3 attempts", err, calls)
		}
		if el := time.Since(start); el != 150*ms {
			t.Fatalf("took %v, want 150ms (50ms + 100ms)", el)
		}
	})
}

func TestMaxAttemptsAndBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{MaxAttempts: 4, Backoff: Exponential{Base: 100 * ms, Cap: 300 * ms, Jitter: NoJitter}})
		for _, c := range []struct {
			fails, wantCalls int
			wantErr          bool
			wantTime         time.Duration
		}{
			{0, 1, false, 0},
			{1, 2, false, 100 * ms},
			{3, 4, false, 600 * ms}, // 100 + 200 + 300 (capped)
			{9, 4, true, 600 * ms},
		} {
			calls := 0
			start := time.Now()
			err := r.Do(context.Background(), failing(c.fails, &calls))
			if (err != nil) != c.wantErr || calls != c.wantCalls || time.Since(start) != c.wantTime {
				t.Errorf("%d failures: err %v, %d calls in %v; want error %v, %d calls in %v",
					c.fails, err, calls, time.Since(start), c.wantErr, c.wantCalls, c.wantTime)
			}
		}
		// MaxAttempts 1 never retries.
		calls := 0
		err := newR(t, Options{MaxAttempts: 1}).Do(context.Background(), failing(1, &calls))
		var ee *ExhaustedError
		if !errors.As(err, &ee) || ee.Attempts != 1 || calls != 1 {
			t.Fatalf("MaxAttempts 1: %v after %d calls", err, calls)
		}
	})
}

func TestExhaustedError(t *testing.T) {
	r := newR(t, Options{MaxAttempts: 2, Backoff: Constant{}})
	cause := fmt.Errorf("read: %w", io.EOF)
	err := r.Do(context.Background(), func(context.Context) error { return cause })
	var ee *ExhaustedError
	switch {
	case !errors.Is(err, ErrExhausted):
		t.Error("not ErrExhausted")
	case !errors.Is(err, io.EOF) || !errors.Is(err, cause):
		t.Error("does not unwrap to the last error")
	case errors.Is(err, ErrBudgetExhausted) || errors.Is(err, context.DeadlineExceeded):
		t.Error("matches a cause it does not have")
	case !errors.As(err, &ee) || ee.Attempts != 2 || ee.Reason != ReasonMaxAttempts || ee.Last != cause:
		t.Errorf("As: %+v", ee)
	case err.Error() != "retry: gave up after 2 attempts (max attempts): read: EOF":
		t.Errorf("Error() = %q", err)
	}
	one := &ExhaustedError{Attempts: 1, Reason: ReasonBudget, Last: errBoom, cause: ErrBudgetExhausted}
	if one.Error() != "retry: gave up after 1 attempt (retry budget exhausted): boom" || !errors.Is(one, ErrBudgetExhausted) {
		t.Errorf("budget give-up: %q", one)
	}
	// Wrapped further, it is still found.
	if w := fmt.Errorf("get user: %w", err); !errors.Is(w, ErrExhausted) || !errors.As(w, &ee) {
		t.Error("lost through wrapping")
	}
}

func TestPermanentAndRetryable(t *testing.T) {
	r := newR(t, Options{MaxAttempts: 5, Backoff: Constant{}})
	calls := 0
	perm := Permanent(errBoom)
	err := r.Do(context.Background(), func(context.Context) error { calls++; return perm })
	if err != perm || !errors.Is(err, errBoom) || !IsPermanent(err) || calls != 1 || err.Error() != "boom" {
		t.Fatalf("permanent: %v after %d calls", err, calls)
	}
	if Permanent(nil) != nil || IsPermanent(errBoom) || IsPermanent(nil) {
		t.Fatal("Permanent(nil) / IsPermanent")
	}
	// Wrapped, still permanent; and it stops outer loops too.
	calls = 0
	outer := newR(t, Options{MaxAttempts: 5, Backoff: Constant{}})
	err = outer.Do(context.Background(), func(ctx context.Context) error {
		return r.Do(ctx, func(context.Context) error { calls++; return fmt.Errorf("q: %w", perm) })
	})
	if !IsPermanent(err) || calls != 1 {
		t.Fatalf("nested permanent: %v after %d calls", err, calls)
	}
	// Retryable decides; rejected errors come back as they are.
	notFound := errors.New("not found")
	r2 := newR(t, Options{MaxAttempts: 5, Backoff: Constant{}, Retryable: func(err error) bool { return !errors.Is(err, notFound) }})
	calls = 0
	if err := r2.Do(context.Background(), func(context.Context) error { calls++; return notFound }); err != notFound || calls != 1 {
		t.Fatalf("not retryable: %v after %d calls", err, calls)
	}
	calls = 0
	if err := r2.Do(context.Background(), failing(2, &calls)); err != nil || calls != 3 {
		t.Fatalf("retryable: %v after %d calls", err, calls)
	}
}

func TestContext(t *testing.T) {
	r := newR(t, Options{MaxAttempts: 10, Backoff: Constant{D: time.Second}})
	bubble := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
	}
	{

		bubble("fail fast before the deadline", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 1500*ms)
			defer cancel()
			start := time.Now()
			calls := 0
			err := r.Do(ctx, failing(100, &calls))
			var ee *ExhaustedError
			if !errors.As(err, &ee) || ee.Reason != ReasonDeadline || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errBoom) {
				t.Fatalf("err = %v", err)
			}
			// Attempt 1 at 0, wait 1s, attempt 2 at 1s; the next one would
			// come at 2s, after the 1.5s deadline: return at 1s, not 1.5s.
			if calls != 2 || time.Since(start) != time.Second {
				t.Fatalf("%d calls, returned after %v; want 2 and 1s", calls, time.Since(start))
			}
		})

		bubble("first wait past the deadline: no wait at all", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*ms)
			defer cancel()
			start := time.Now()
			err := r.Do(ctx, func(context.Context) error { return errBoom })
			if !errors.Is(err, ErrExhausted) || !time.Now().Equal(start) {
				t.Fatalf("%v after %v; want a give-up at once", err, time.Since(start))
			}
		})

		bubble("cancel during a wait", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*ms, cancel)
			start := time.Now()
			err := r.Do(ctx, func(context.Context) error { return errBoom })
			var ee *ExhaustedError
			if !errors.As(err, &ee) || ee.Reason != ReasonContext || !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) || time.Since(start) != 300*ms {
				t.Fatalf("%v after %v; want ReasonContext at 300ms", err, time.Since(start))
			}
		})

		bubble("the caller's cancellation is returned as is", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			calls := 0
			err := r.Do(ctx, func(ctx context.Context) error { calls++; cancel(); return ctx.Err() })
			if err != context.Canceled || calls != 1 {
				t.Fatalf("%v after %d calls", err, calls)
			}
		})

		bubble("another error after the ctx ended", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			calls := 0
			err := r.Do(ctx, func(ctx context.Context) error { calls++; cancel(); return errBoom })
			var ee *ExhaustedError
			if !errors.As(err, &ee) || ee.Reason != ReasonContext || !errors.Is(err, context.Canceled) || calls != 1 {
				t.Fatalf("%v after %d calls", err, calls)
			}
		})

		bubble("a dependency's own timeout is retried", func(t *testing.T) {
			calls := 0
			err := newR(t, Options{Backoff: Constant{}}).Do(context.Background(), func(context.Context) error {
				calls++
				return context.DeadlineExceeded // its ctx, not ours
			})
			if !errors.Is(err, ErrExhausted) || calls != 3 {
				t.Fatalf("%v after %d calls", err, calls)
			}
		})
	}
}

func TestMaxElapsed(t *testing.T) {
	// An injected clock that each attempt moves 1s forward; no waits.
	clk := testclock.New()
	r := newR(t, Options{MaxAttempts: 100, MaxElapsed: 2500 * ms, Backoff: Constant{}, Clock: clk})
	calls := 0
	err := r.Do(context.Background(), func(context.Context) error { calls++; clk.Add(time.Second); return errBoom })
	var ee *ExhaustedError
	// Attempts at 0s, 1s, 2s; the next would start at 3s > 2.5s.
	if !errors.As(err, &ee) || ee.Reason != ReasonMaxElapsed || ee.Attempts != 3 || calls != 3 {
		t.Fatalf("%v after %d calls", err, calls)
	}
	// The wait counts too (synctest: time.Now is the bubble's clock).
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{MaxAttempts: 100, MaxElapsed: 2500 * ms, Backoff: Constant{D: time.Second}})
		start := time.Now()
		err := r.Do(context.Background(), func(context.Context) error { return errBoom })
		if !errors.As(err, &ee) || ee.Reason != ReasonMaxElapsed || ee.Attempts != 3 || time.Since(start) != 2*time.Second {
			t.Fatalf("%v after %v", err, time.Since(start))
		}
	})
}

func TestAfterError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{Backoff: Constant{D: 10 * ms}})
		calls := 0
		start := time.Now()
		err := r.Do(context.Background(), func(context.Context) error {
			calls++
			if calls == 1 {
				return &AfterError{Err: errBoom, After: 2 * time.Second}
			}
			return nil
		})
		if err != nil || time.Since(start) != 2*time.Second {
			t.Fatalf("%v after %v; want success after the 2s Retry-After", err, time.Since(start))
		}
		// A shorter Retry-After than the backoff: the backoff wins.
		calls, start = 0, time.Now()
		r.Do(context.Background(), func(context.Context) error {
			calls++
			if calls == 1 {
				return &AfterError{Err: errBoom, After: ms}
			}
			return nil
		})
		if time.Since(start) != 10*ms {
			t.Fatalf("waited %v, want the 10ms backoff", time.Since(start))
		}
		// A Retry-After past the deadline gives up at once.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = time.Now()
		err = r.Do(ctx, func(context.Context) error { return &AfterError{Err: errBoom, After: 5 * time.Second} })
		var ee *ExhaustedError
		if !errors.As(err, &ee) || ee.Reason != ReasonDeadline || time.Since(start) != 0 || !errors.Is(err, errBoom) {
			t.Fatalf("%v after %v", err, time.Since(start))
		}
		if (&AfterError{After: time.Second}).Error() != "retry: retry after 1s" {
			t.Fatal("AfterError without Err")
		}
	})
}

func TestOnRetryStatsAndLogger(t *testing.T) {
	var events []Event
	var logs bytes.Buffer
	r := newR(t, Options{
		MaxAttempts: 3,
		Backoff:     Exponential{Base: ms, Jitter: NoJitter},
		OnRetry:     func(_ context.Context, ev Event) { events = append(events, ev) },
		Logger:      slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		r.Do(context.Background(), failing(100, &calls)) // 3 attempts, gives up
		calls = 0
		r.Do(context.Background(), failing(1, &calls)) // 2 attempts
		r.Do(context.Background(), func(context.Context) error { return nil })
	})
	want := []Event{{1, errBoom, ms}, {2, errBoom, 2 * ms}, {1, errBoom, ms}}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	if st := r.Stats(); st != (Stats{Calls: 3, Attempts: 6, Retries: 3, Exhausted: 1}) {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), "retry: gave up") || !strings.Contains(logs.String(), "attempts=3") {
		t.Fatalf("log: %q", logs.String())
	}
}

func TestDoValueAndDefaults(t *testing.T) {
	r := newR(t, Options{Backoff: Constant{}})
	calls := 0
	v, err := DoValue(context.Background(), r, func(context.Context) (int, error) {
		calls++
		if calls < 2 {
			return -1, errBoom // a failed attempt's value is not returned
		}
		return 42, nil
	})
	if v != 42 || err != nil {
		t.Fatalf("DoValue = %v, %v", v, err)
	}
	v, err = DoValue(context.Background(), r, func(context.Context) (int, error) { return 7, Permanent(errBoom) })
	if v != 0 || !errors.Is(err, errBoom) {
		t.Fatalf("DoValue failing = %v, %v; want the zero value", v, err)
	}
	// The package-level Do and a nil *Retrier use the defaults.
	if err := Do(context.Background(), func(context.Context) error { return Permanent(errBoom) }); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	var nilR *Retrier
	if s, err := DoValue(context.Background(), nilR, func(context.Context) (string, error) { return "ok", nil }); s != "ok" || err != nil {
		t.Fatal(s, err)
	}
	if nilR.Stats().Calls < 2 {
		t.Fatal("nil Retrier stats")
	}
}

func TestOptionErrors(t *testing.T) {
	for _, c := range []struct {
		o     Options
		field string
	}{
		{Options{MaxAttempts: -1}, "Options.MaxAttempts must be >= 1 (0: 3), got -1"},
		{Options{MaxElapsed: -time.Second}, "Options.MaxElapsed must be >= 0"},
		{Options{MaxRetryAfter: -time.Second}, "Options.MaxRetryAfter must be >= 0 (0: 30s), got -1s"},
		{Options{Backoff: Constant{D: -1}}, "Options.Backoff: Constant.D"},
	} {
		if _, err := New(c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("New(%+v) = %v; want ErrInvalid naming %q", c.o, err, c.field)
		}
	}
	// The caller's Options are copied, not kept.
	o := Options{MaxAttempts: 2, Backoff: Constant{}}
	r := newR(t, o)
	o.MaxAttempts = 50
	calls := 0
	r.Do(context.Background(), failing(100, &calls))
	if calls != 2 {
		t.Fatalf("%d calls; the Retrier kept the caller's struct", calls)
	}
}

func TestDoNoRetryAllocatesNothing(t *testing.T) {
	r := newR(t, Options{MaxElapsed: time.Minute})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if a := testing.AllocsPerRun(1000, func() { r.Do(ctx, fn) }); a != 0 {
		t.Fatalf("Do (success, no budget): %v allocs", a)
	}
	vfn := func(context.Context) (int, error) { return 1, nil }
	if a := testing.AllocsPerRun(1000, func() { DoValue(ctx, r, vfn) }); a != 0 {
		t.Fatalf("DoValue (success, no budget): %v allocs", a)
	}
}

// TestHammer: many goroutines share Retriers and one Budget; the counters
// must add up exactly (run with -race).
func TestHammer(t *testing.T) {
	b, err := NewBudget(BudgetOptions{Ratio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	rs := []*Retrier{
		newR(t, Options{MaxAttempts: 3, Backoff: Constant{}, Budget: b}),
		newR(t, Options{MaxAttempts: 4, Backoff: Exponential{Base: time.Microsecond}, Budget: b}),
	}
	const goroutines, calls = 32, 300
	var fnCalls atomic.Uint64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rs[g%2]
			for i := range calls {
				n := 0
				err := r.Do(context.Background(), func(context.Context) error {
					fnCalls.Add(1)
					n++
					if (g+i)%3 == 0 && n < 3 {
						return errBoom
					}
					return nil
				})
				if err != nil && !errors.Is(err, ErrBudgetExhausted) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var sum Stats
	for _, r := range rs {
		st := r.Stats()
		sum.Calls += st.Calls
		sum.Attempts += st.Attempts
		sum.Retries += st.Retries
		sum.BudgetRefusals += st.BudgetRefusals
	}
	bs := b.Stats()
	if sum.Calls != goroutines*calls || sum.Attempts != fnCalls.Load() || sum.Retries != bs.Withdrawals ||
		sum.BudgetRefusals != bs.Refusals || bs.Deposits != goroutines*calls {
		t.Fatalf("retriers %+v, budget %+v, fn called %d times", sum, bs, fnCalls.Load())
	}
}

// TestMaxElapsedDoesNotOverflow (issue 15 item 5): the MaxElapsed check
// used to compute elapsed+wait, which wraps negative for a wait near
// math.MaxInt64, so Do started a 292-year sleep instead of giving up. Do
// must give up at once, for a huge Backoff wait and for a huge
// AfterError alike. cenkalti/backoff documents the same rule ("stops
// retrying when the elapsed time plus the next interval exceeds
// MaxElapsedTime"), and a wait that cannot fit must count as exceeding it.
//
// The bubble's clock would jump over a 292-year timer, so the old code does
// not hang here: a cancel after one (fake) minute bounds it, and it fails
// with ReasonContext (or ReasonMaxAttempts) instead of ReasonMaxElapsed.
func TestMaxElapsedDoesNotOverflow(t *testing.T) {
	const huge = time.Duration(math.MaxInt64)
	for _, c := range []struct {
		name    string
		backoff Backoff
		err     error
	}{
		{"Constant MaxInt64", Constant{D: huge}, errBoom},
		{"BackoffFunc MaxInt64-1", BackoffFunc(func(int, time.Duration, float64) time.Duration { return huge - 1 }), errBoom},
		{"Exponential Base MaxInt64", Exponential{Base: huge, Cap: huge, Jitter: NoJitter}, errBoom},
		{"AfterError MaxInt64", Constant{}, &AfterError{Err: errBoom, After: huge}},
		{"AfterError MaxInt64-500µs", Constant{D: ms}, &AfterError{Err: errBoom, After: huge - 500*time.Microsecond}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// No Retry-After cap (item 6): the MaxElapsed check decides.
				r := newR(t, Options{MaxAttempts: 5, MaxElapsed: time.Second, MaxRetryAfter: huge, Backoff: c.backoff})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				bound := time.AfterFunc(time.Minute, cancel) // a failing run ends, and says why
				defer bound.Stop()
				start := time.Now()
				calls := 0
				err := r.Do(ctx, func(context.Context) error {
					calls++
					time.Sleep(ms) // the attempt takes 1ms: elapsed > 0
					return c.err
				})
				var ee *ExhaustedError
				if !errors.As(err, &ee) || ee.Reason != ReasonMaxElapsed || calls != 1 || !errors.Is(err, errBoom) {
					t.Fatalf("%v after %d calls in %v; want ReasonMaxElapsed after 1 call", err, calls, time.Since(start))
				}
				if el := time.Since(start); el != ms {
					t.Fatalf("returned after %v, want 1ms (the attempt, no wait)", el)
				}
			})
		})
	}
}

// TestMaxRetryAfter (issue 15 item 6): Do used to honour any
// AfterError, so a server's "Retry-After: 3600" without a ctx
// deadline slept an hour; only Transport capped it. Options.MaxRetryAfter
// (default 30s, Transport's old default) is now the one cap, and the rule
// is Transport's: a longer Retry-After ends the retries at once with that
// attempt's error (ReasonRetryAfter), rather than retry before the server
// said it would answer. RFC 9110 10.2.3: Retry-After "indicates how long
// the user agent ought to wait before making a follow-up request".
func TestMaxRetryAfter(t *testing.T) {
	// fn fails once asking for after, then succeeds.
	askOnce := func(after time.Duration, calls *int) func(context.Context) error {
		return func(context.Context) error {
			*calls++
			if *calls == 1 {
				return &AfterError{Err: errBoom, After: after}
			}
			return nil
		}
	}
	bubble := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
	}
	bubble("default cap: an hour is not waited", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background()) // no deadline
		defer cancel()
		bound := time.AfterFunc(time.Minute, cancel) // a failing run ends, and says why
		defer bound.Stop()
		start := time.Now()
		calls := 0
		err := newR(t, Options{}).Do(ctx, askOnce(time.Hour, &calls))
		var ee *ExhaustedError
		var ra *AfterError
		if !errors.As(err, &ee) || ee.Reason != ReasonRetryAfter || ee.Attempts != 1 || calls != 1 ||
			!errors.As(err, &ra) || ra.After != time.Hour || !errors.Is(err, errBoom) || !errors.Is(err, ErrExhausted) {
			t.Fatalf("%v after %d calls in %v; want ReasonRetryAfter after 1 call, at once", err, calls, time.Since(start))
		}
		if el := time.Since(start); el != 0 {
			t.Fatalf("returned after %v, want at once", el)
		}
		if !strings.Contains(err.Error(), "(Retry-After over MaxRetryAfter)") {
			t.Fatalf("Error() = %q", err)
		}
	})
	bubble("the package-level Do has the same cap", func(t *testing.T) {
		calls := 0
		if err := Do(context.Background(), askOnce(time.Hour, &calls)); !errors.Is(err, ErrExhausted) || calls != 1 {
			t.Fatalf("%v after %d calls", err, calls)
		}
	})
	for _, c := range []struct {
		name      string
		max, ask  time.Duration
		wantWait  time.Duration
		wantCalls int
	}{
		{"default cap: 30s is waited", 0, 30 * time.Second, 30 * time.Second, 2},
		{"default cap: 30s+1ns is not", 0, 30*time.Second + 1, 0, 1},
		{"raised cap: an hour is waited", 2 * time.Hour, time.Hour, time.Hour, 2},
		{"lowered cap", time.Second, 2 * time.Second, 0, 1},
	} {
		bubble(c.name, func(t *testing.T) {
			start := time.Now()
			calls := 0
			err := newR(t, Options{MaxRetryAfter: c.max, Backoff: Constant{}}).Do(context.Background(), askOnce(c.ask, &calls))
			if calls != c.wantCalls || time.Since(start) != c.wantWait || (err == nil) != (c.wantCalls == 2) {
				t.Fatalf("%v after %d calls in %v; want %d calls in %v", err, calls, time.Since(start), c.wantCalls, c.wantWait)
			}
		})
	}
}

// TestGiveUpCarriesCause (issue 15 item 7): when ctx ends, the give-up
// error matches ctx.Err() as before and also context.Cause(ctx), so a
// caller cancelling with a cause (context.WithCancelCause,
// WithTimeoutCause) finds it with errors.Is. cenkalti/backoff v5's Retry
// returns context.Cause(ctx) when the ctx ends; Do keeps the attempt's
// error and ctx.Err() in the chain too.
func TestGiveUpCarriesCause(t *testing.T) {
	errShutdown := errors.New("shutting down")
	errSlow := errors.New("the caller's 300ms budget")
	r := newR(t, Options{MaxAttempts: 10, Backoff: Constant{D: time.Second}})
	check := func(t *testing.T, err, ctxErr, cause error, start time.Time, wantTook time.Duration) {
		t.Helper()
		var ee *ExhaustedError
		if !errors.As(err, &ee) || ee.Reason != ReasonContext || !errors.Is(err, ErrExhausted) || !errors.Is(err, errBoom) {
			t.Fatalf("%v; want an ExhaustedError with ReasonContext", err)
		}
		if !errors.Is(err, ctxErr) || !errors.Is(err, cause) {
			t.Fatalf("%v: errors.Is(err, %v) = %v, errors.Is(err, cause %v) = %v; want both", err, ctxErr, errors.Is(err, ctxErr), cause, errors.Is(err, cause))
		}
		if want := "(ctx done: " + cause.Error() + "): boom"; !strings.Contains(err.Error(), want) {
			t.Fatalf("Error() = %q, want it to contain %q", err, want)
		}
		if took := time.Since(start); took != wantTook {
			t.Fatalf("returned after %v, want %v", took, wantTook)
		}
	}
	t.Run("cancelled with a cause during the wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(300*ms, func() { cancel(errShutdown) })
			start := time.Now()
			err := r.Do(ctx, func(context.Context) error { return errBoom })
			check(t, err, context.Canceled, errShutdown, start, 300*ms)
		})
	})
	t.Run("cancelled with a cause during the attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			start := time.Now()
			err := r.Do(ctx, func(context.Context) error { cancel(errShutdown); return errBoom })
			check(t, err, context.Canceled, errShutdown, start, 0)
		})
	})
	t.Run("deadline with a cause", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeoutCause(context.Background(), 300*ms, errSlow)
			defer cancel()
			start := time.Now()
			err := r.Do(ctx, func(ctx context.Context) error { <-ctx.Done(); return errBoom })
			check(t, err, context.DeadlineExceeded, errSlow, start, 300*ms)
		})
	})
	t.Run("a cause on the parent ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			parent, cancel := context.WithCancelCause(context.Background())
			ctx, cancelChild := context.WithCancel(parent)
			defer cancelChild()
			time.AfterFunc(300*ms, func() { cancel(errShutdown) })
			start := time.Now()
			err := r.Do(ctx, func(context.Context) error { return errBoom })
			check(t, err, context.Canceled, errShutdown, start, 300*ms)
		})
	})
	t.Run("no cause: as before", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*ms, cancel)
			err := r.Do(ctx, func(context.Context) error { return errBoom })
			var ee *ExhaustedError
			if !errors.As(err, &ee) || !errors.Is(err, context.Canceled) ||
				err.Error() != "retry: gave up after 1 attempt (ctx done): boom" || len(ee.Unwrap()) != 2 {
				t.Fatalf("%q (unwraps to %v)", err, ee.Unwrap())
			}
		})
	})
}
