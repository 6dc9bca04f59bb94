package retry

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
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

func TestJitterDistributions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	const n = 100_000
	base, cap := 100*time.Millisecond, 10*time.Second
	for _, c := range []struct {
		j      Jitter
		lo, hi func(t time.Duration) time.Duration
		mean   func(t time.Duration) float64
	}{
		{FullJitter, func(time.Duration) time.Duration { return 0 }, func(t time.Duration) time.Duration { return t }, func(t time.Duration) float64 { return float64(t) / 2 }},
		{EqualJitter, func(t time.Duration) time.Duration { return t / 2 }, func(t time.Duration) time.Duration { return t }, func(t time.Duration) float64 { return float64(t) * 0.75 }},
		{NoJitter, func(t time.Duration) time.Duration { return t }, func(t time.Duration) time.Duration { return t }, func(t time.Duration) float64 { return float64(t) }},
	} {
		e := Exponential{Base: base, Cap: cap, Jitter: c.j}
		for attempt := 1; attempt <= 10; attempt++ {
			tmax := min(cap, base<<(attempt-1))
			var sum float64
			var buckets [4]int
			for i := 0; i < n; i++ {
				w := e.Next(attempt, 0, rng.Float64())
				if w < c.lo(tmax) || w > c.hi(tmax) {
					t.Fatalf("jitter %d attempt %d: wait %v outside [%v, %v]", c.j, attempt, w, c.lo(tmax), c.hi(tmax))
				}
				sum += float64(w)
				if c.j == FullJitter {
					buckets[min(3, int(4*float64(w)/float64(tmax)))]++
				}
			}
			if mean := sum / n; math.Abs(mean-c.mean(tmax)) > 0.01*float64(tmax) {
				t.Fatalf("jitter %d attempt %d: mean %v, want %v", c.j, attempt, time.Duration(mean), time.Duration(c.mean(tmax)))
			}
			if c.j == FullJitter { // uniform: each quarter of [0, t] gets ~25%
				for q, b := range buckets {
					if math.Abs(float64(b)/n-0.25) > 0.01 {
						t.Fatalf("full jitter attempt %d: quarter %d holds %.3f of samples", attempt, q, float64(b)/n)
					}
				}
			}
		}
	}
	// Decorrelated: within [base, min(cap, 3*prev)].
	d := Exponential{Base: base, Cap: cap, Jitter: DecorrelatedJitter}
	prev := time.Duration(0)
	for i := 0; i < n; i++ {
		w := d.Next(i%20+1, prev, rng.Float64())
		hi := min(cap, 3*max(prev, base))
		if w < base || w > hi {
			t.Fatalf("decorrelated: %v outside [%v, %v] (prev %v)", w, base, hi, prev)
		}
		prev = w
		if i%20 == 19 {
			prev = 0
		}
	}
	// Overflow: a huge attempt number stays at the cap.
	if w := (Exponential{Base: base, Cap: cap, Jitter: NoJitter}).Next(200, 0, 0.5); w != cap {
		t.Fatalf("attempt 200: %v, want the cap", w)
	}
}

func TestDoAttemptsAndErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{MaxAttempts: 4, Backoff: Exponential{Base: 100 * time.Millisecond, Cap: time.Second, Jitter: NoJitter}})
		calls := 0
		start := time.Now()
		err := r.Do(context.Background(), func(context.Context) error { calls++; return errBoom })
		var ee *ExhaustedError
		if !errors.Is(err, ErrExhausted) || !errors.Is(err, errBoom) || !errors.As(err, &ee) || ee.Attempts != 4 || ee.Reason != ReasonAttempts {
			t.Fatalf("err = %v", err)
		}
		if calls != 4 || time.Since(start) != 700*time.Millisecond { // 100+200+400
			t.Fatalf("%d calls in %v, want 4 in 700ms", calls, time.Since(start))
		}
		// Success after failures.
		calls = 0
		if err := r.Do(context.Background(), func(context.Context) error {
			calls++
			if calls < 3 {
				return errBoom
			}
			return nil
		}); err != nil || calls != 3 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
		// Permanent stops at once and comes back unwrapped.
		calls = 0
		err = r.Do(context.Background(), func(context.Context) error { calls++; return Permanent(errBoom) })
		if err != errBoom || calls != 1 || !IsPermanent(Permanent(errBoom)) || Permanent(nil) != nil {
			t.Fatalf("permanent: %v after %d calls", err, calls)
		}
		// Retryable decides.
		r2 := newR(t, Options{Retryable: func(err error) bool { return !errors.Is(err, io.EOF) }, Backoff: Constant{time.Millisecond}})
		calls = 0
		if err := r2.Do(context.Background(), func(context.Context) error { calls++; return io.EOF }); err != io.EOF || calls != 1 {
			t.Fatalf("not retryable: %v after %d", err, calls)
		}
	})
}

func TestFailFastBeforeDeadlineAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{MaxAttempts: 10, Backoff: Constant{time.Second}})
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		start := time.Now()
		calls := 0
		err := r.Do(ctx, func(context.Context) error { calls++; return errBoom })
		var ee *ExhaustedError
		if !errors.As(err, &ee) || ee.Reason != ReasonDeadline || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errBoom) {
			t.Fatalf("err = %v", err)
		}
		// 1 attempt, wait 1s, attempt 2 at 1s; the next wait would end at
		// 2s > 1.5s deadline: return at once at 1s, not sleep until 1.5s.
		if calls != 2 || time.Since(start) != time.Second {
			t.Fatalf("%d calls, returned after %v; want 2 and 1s (no sleeping past the deadline)", calls, time.Since(start))
		}
		// Cancellation during a wait returns at once.
		cctx, ccancel := context.WithCancel(context.Background())
		go func() { time.Sleep(300 * time.Millisecond); ccancel() }()
		start = time.Now()
		err = r.Do(cctx, func(context.Context) error { return errBoom })
		if !errors.Is(err, context.Canceled) || time.Since(start) != 300*time.Millisecond {
			t.Fatalf("cancel: %v after %v", err, time.Since(start))
		}
		// The caller's own cancellation is not retried.
		calls = 0
		cctx2, c2 := context.WithCancel(context.Background())
		err = r.Do(cctx2, func(ctx context.Context) error { calls++; c2(); return ctx.Err() })
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Fatalf("own cancellation retried: %v, %d calls", err, calls)
		}
		// MaxElapsed.
		r3 := newR(t, Options{MaxAttempts: 100, MaxElapsed: 2500 * time.Millisecond, Backoff: Constant{time.Second}})
		err = r3.Do(context.Background(), func(context.Context) error { return errBoom })
		if !errors.As(err, &ee) || ee.Reason != ReasonElapsed || ee.Attempts != 3 {
			t.Fatalf("MaxElapsed: %v", err)
		}
	})
}

func TestBudgetArithmetic(t *testing.T) {
	now := time.Unix(1000, 0)
	b, err := NewBudget(BudgetOptions{Ratio: 0.5, MinPerSecond: 2, MaxTokens: 3, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// The floor starts full: 2 retries with no deposits.
	if !b.withdraw() || !b.withdraw() || b.withdraw() {
		t.Fatal("floor of 2 not honoured")
	}
	for i := 0; i < 4; i++ {
		b.deposit() // 2 tokens
	}
	if !b.withdraw() || !b.withdraw() || b.withdraw() {
		t.Fatal("4 deposits of 0.5 should give exactly 2 retries")
	}
	for i := 0; i < 100; i++ {
		b.deposit()
	}
	if st := b.Stats(); st.Tokens != 3 {
		t.Fatalf("tokens %v, want the cap 3", st.Tokens)
	}
	b.withdraw()
	b.withdraw()
	b.withdraw()
	now = now.Add(500 * time.Millisecond) // floor refills at 2/s: 1 token
	if !b.withdraw() || b.withdraw() {
		t.Fatal("half a second should refill exactly one floor token")
	}
	if st := b.Stats(); st.Withdrawals != 8 || st.Refusals != 3 || st.Deposits != 104 {
		t.Fatalf("stats %+v", st)
	}
	for _, o := range []BudgetOptions{{Ratio: -1}, {MinPerSecond: -1}, {MaxTokens: 0.5}} {
		if _, err := NewBudget(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewBudget(%+v) = %v", o, err)
		}
	}
}

// TestAmplification: a dependency that always fails, called through 3
// nested layers that each retry 3 times. Without a budget the bottom sees
// 27 attempts per top-level call; with a budget per layer (one per client,
// as Finagle does) it sees at most 1.2 per call, because only top-level
// calls earn retry tokens and nested loops live on the floor alone.
func TestAmplification(t *testing.T) {
	const calls = 1000
	run := func(withBudget bool) float64 {
		now := time.Unix(0, 0) // frozen: zero backoff, no floor refill
		var bottom atomic.Int64
		dependency := func(context.Context) error { bottom.Add(1); return errBoom }
		layer := func(next func(context.Context) error) func(context.Context) error {
			o := Options{MaxAttempts: 3, Backoff: Constant{0}}
			if withBudget {
				o.Budget, _ = NewBudget(BudgetOptions{Now: func() time.Time { return now }})
			}
			r := newR(t, o)
			return func(ctx context.Context) error { return r.Do(ctx, next) }
		}
		top := layer(layer(layer(dependency)))
		for i := 0; i < calls; i++ {
			top(context.Background())
		}
		return float64(bottom.Load()) / calls
	}
	without, with := run(false), run(true)
	t.Logf("attempts at the bottom per top-level call: %.2fx without budget, %.3fx with budget", without, with)
	if without != 27 {
		t.Fatalf("without budget: %.2fx, want 27x", without)
	}
	if with > 1.2 {
		t.Fatalf("with budget: %.3fx, want <= 1.2x", with)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"Tue, 24 Nov 2026 12:01:30 GMT", 90 * time.Second, true},
		{"Tue, 24 Nov 2026 11:00:00 GMT", 0, true},
		{"", 0, false}, {"-5", 0, false}, {"soon", 0, false}, {"1.5", 0, false},
	} {
		got, ok := ParseRetryAfter(c.v, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}

func TestTransport(t *testing.T) {
	var hits atomic.Int32
	var bodies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		switch {
		case r.URL.Path == "/flaky" && n%2 == 1:
			w.WriteHeader(503)
		case r.URL.Path == "/limited" && n == 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
		case r.URL.Path == "/down":
			w.WriteHeader(502)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	r := newR(t, Options{MaxAttempts: 3, Backoff: Constant{time.Millisecond}})
	client := &http.Client{Transport: &Transport{Retrier: r}}

	resp, err := client.Get(srv.URL + "/flaky")
	if err != nil || resp.StatusCode != 200 || hits.Load() != 2 {
		t.Fatalf("503 then 200: %v %v after %d hits", resp, err, hits.Load())
	}
	resp.Body.Close()

	hits.Store(0)
	start := time.Now()
	resp, err = client.Get(srv.URL + "/limited")
	if err != nil || resp.StatusCode != 200 || time.Since(start) < time.Second {
		t.Fatalf("429 with Retry-After 1: %v %v after %v", resp, err, time.Since(start))
	}
	resp.Body.Close()

	hits.Store(0)
	resp, err = client.Post(srv.URL+"/flaky", "text/plain", strings.NewReader("pay"))
	if err != nil || resp.StatusCode != 503 || hits.Load() != 1 {
		t.Fatalf("POST retried: %v after %d hits", resp.StatusCode, hits.Load())
	}
	resp.Body.Close()

	hits.Store(0)
	mu.Lock()
	bodies = nil
	mu.Unlock()
	req, _ := http.NewRequest("POST", srv.URL+"/flaky", strings.NewReader("pay"))
	req.Header.Set("Idempotency-Key", "k1")
	resp, err = client.Do(req)
	if err != nil || resp.StatusCode != 200 || hits.Load() != 2 || strings.Join(bodies, ",") != "pay,pay" {
		t.Fatalf("POST with Idempotency-Key: %v %v, bodies %q", resp, err, bodies)
	}
	resp.Body.Close()

	hits.Store(0)
	resp, err = client.Get(srv.URL + "/down")
	if err != nil || resp.StatusCode != 502 || hits.Load() != 3 {
		t.Fatalf("always 502: %v %v after %d hits; want the last 502 after 3", resp, err, hits.Load())
	}
	resp.Body.Close()

	// Connection refused is retried, then given up.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	if _, err := client.Get(url); !errors.Is(err, ErrExhausted) {
		t.Fatalf("connection refused: %v", err)
	}
}

func TestHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		var cancelled atomic.Int32
		start := time.Now()
		v, err := Hedge(context.Background(), 50*time.Millisecond, 2, nil, func(ctx context.Context) (string, error) {
			n := attempts.Add(1)
			d := 500 * time.Millisecond // the first attempt hits a slow replica
			if n > 1 {
				d = 20 * time.Millisecond
			}
			select {
			case <-time.After(d):
				return "answer", nil
			case <-ctx.Done():
				cancelled.Add(1)
				return "", ctx.Err()
			}
		})
		synctest.Wait()
		if err != nil || v != "answer" || time.Since(start) != 70*time.Millisecond {
			t.Fatalf("hedge: %q %v after %v; want the hedge's answer at 70ms", v, err, time.Since(start))
		}
		if attempts.Load() != 2 || cancelled.Load() != 1 {
			t.Fatalf("%d attempts, %d cancelled; want 2 and the slow one cancelled", attempts.Load(), cancelled.Load())
		}
		// All attempts fail: the last error returns.
		_, err = Hedge(context.Background(), 10*time.Millisecond, 2, nil, func(ctx context.Context) (int, error) { return 0, errBoom })
		if !errors.Is(err, errBoom) {
			t.Fatal(err)
		}
		// An empty budget fires no hedge.
		b, _ := NewBudget(BudgetOptions{MinPerSecond: 0.0001, Ratio: 0.0001})
		b.withdraw()
		attempts.Store(0)
		Hedge(context.Background(), 10*time.Millisecond, 3, b, func(ctx context.Context) (int, error) {
			attempts.Add(1)
			time.Sleep(100 * time.Millisecond)
			return 1, nil
		})
		if attempts.Load() != 1 {
			t.Fatalf("%d attempts with an empty budget, want 1", attempts.Load())
		}
	})
}

func TestHammer(t *testing.T) {
	b, _ := NewBudget(BudgetOptions{})
	r := newR(t, Options{MaxAttempts: 3, Backoff: Constant{0}, Budget: b})
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				n := 0
				r.Do(context.Background(), func(context.Context) error {
					n++
					if (g+i)%3 == 0 && n < 3 {
						return errBoom
					}
					return nil
				})
			}
		}()
	}
	wg.Wait()
	st := r.Stats()
	bs := b.Stats()
	if st.Calls != 64*200 || st.Retries != bs.Withdrawals {
		t.Fatalf("retrier %+v, budget %+v", st, bs)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{MaxAttempts: -1}, {MaxElapsed: -1},
		{Backoff: Exponential{Base: 0, Cap: time.Second}}, {Backoff: Exponential{Base: time.Second, Cap: time.Millisecond}},
		{Backoff: Constant{-1}}, {Backoff: Exponential{Base: 1, Cap: 2, Jitter: 9}},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Options.") {
			t.Errorf("New(%+v) = %v", o, err)
		}
	}
}

func TestDoNoRetryAllocatesNothing(t *testing.T) {
	r := newR(t, Options{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if a := testing.AllocsPerRun(1000, func() { r.Do(ctx, fn) }); a != 0 {
		t.Fatalf("Do (success, no budget): %v allocs", a)
	}
}
