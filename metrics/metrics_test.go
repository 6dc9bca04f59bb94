package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/slo"
)

// TestMain shares the Redis of the ratelimitredis tests and fails the run
// if a goroutine is left behind.
func TestMain(m *testing.M) { testinfra.Main(m) }

var errBoom = errors.New("boom")

func ok(context.Context) error   { return nil }
func fail(context.Context) error { return errBoom }

func newCollector(t testing.TB, o metrics.Options) *metrics.Collector {
	t.Helper()
	c, err := metrics.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// exposition gathers c through a pedantic registry (which refuses metrics
// c did not describe) and returns the text exposition of the families
// whose names start with prefix, without their HELP lines (the lint test
// checks every family has one).
func exposition(t testing.TB, c prometheus.Collector, prefix string) string {
	t.Helper()
	s, err := gatherText(c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gatherText is exposition for goroutines other than the test's.
func gatherText(c prometheus.Collector, prefix string) (string, error) {
	return gatherTextFunc(c, func(name string) bool { return strings.HasPrefix(name, prefix) })
}

// gatherTextFunc is gatherText for the families keep accepts.
func gatherTextFunc(c prometheus.Collector, keep func(name string) bool) (string, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return "", err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, mf := range mfs {
		if !keep(mf.GetName()) {
			continue
		}
		mf.Help = nil
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// dedent trims want and the indentation of its lines.
func dedent(want string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(want), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	return strings.Join(lines, "\n") + "\n"
}

// expect compares exposition(c, prefix) with want, whose lines may be
// indented.
func expect(t testing.TB, c prometheus.Collector, prefix, want string) {
	t.Helper()
	want = dedent(want)
	if got := exposition(t, c, prefix); got != want {
		t.Errorf("%s metrics:\n--- got\n%s--- want\n%s", prefix, got, want)
	}
}

// TestBreaker trips a real breaker and compares the whole exposition, HELP
// lines included, with testutil.CollectAndCompare.
func TestBreaker(t *testing.T) {
	clk := testclock.New() // 2026-01-01 00:00 UTC, Unix 1767225600
	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{Name: "payments", ConsecutiveFailures: 2, Clock: clk}))
	ctx := context.Background()
	br.Do(ctx, ok)
	br.Do(ctx, fail)
	br.Do(ctx, fail) // trips: open for the default 5s
	if err := br.Do(ctx, ok); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("after 2 failures: %v, want ErrOpen", err)
	}
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddBreaker(br))

	const want = `
# HELP scalekit_breaker_calls_total Calls through the circuit breaker by result: success, failure and ignored are recorded outcomes, rejected were refused (open, or half-open with every probe taken).
# TYPE scalekit_breaker_calls_total counter
scalekit_breaker_calls_total{instance_name="api-1",name="payments",result="failure"} 2
scalekit_breaker_calls_total{instance_name="api-1",name="payments",result="ignored"} 0
scalekit_breaker_calls_total{instance_name="api-1",name="payments",result="rejected"} 1
scalekit_breaker_calls_total{instance_name="api-1",name="payments",result="success"} 1
# HELP scalekit_breaker_consecutive_failures Current run of consecutive failures (closed state).
# TYPE scalekit_breaker_consecutive_failures gauge
scalekit_breaker_consecutive_failures{instance_name="api-1",name="payments"} 0
# HELP scalekit_breaker_open_until_timestamp_seconds When an open breaker starts probing, in Unix seconds; 0 unless open.
# TYPE scalekit_breaker_open_until_timestamp_seconds gauge
scalekit_breaker_open_until_timestamp_seconds{instance_name="api-1",name="payments"} 1.767225605e+09
# HELP scalekit_breaker_probe_timeouts_total Half-open probes that ran past HalfOpenMaxWait (hung, or an Allow never finished) and counted as failed probes.
# TYPE scalekit_breaker_probe_timeouts_total counter
scalekit_breaker_probe_timeouts_total{instance_name="api-1",name="payments"} 0
# HELP scalekit_breaker_slow_calls_total Calls slower than the breaker's SlowCallThreshold (a subset of the recorded calls).
# TYPE scalekit_breaker_slow_calls_total counter
scalekit_breaker_slow_calls_total{instance_name="api-1",name="payments"} 0
# HELP scalekit_breaker_state Circuit breaker state: 1 for the current state (closed, open, half-open, or one set by hand: forced-open, forced-closed, metrics-only), 0 for the others.
# TYPE scalekit_breaker_state gauge
scalekit_breaker_state{instance_name="api-1",name="payments",state="closed"} 0
scalekit_breaker_state{instance_name="api-1",name="payments",state="forced-closed"} 0
scalekit_breaker_state{instance_name="api-1",name="payments",state="forced-open"} 0
scalekit_breaker_state{instance_name="api-1",name="payments",state="half-open"} 0
scalekit_breaker_state{instance_name="api-1",name="payments",state="metrics-only"} 0
scalekit_breaker_state{instance_name="api-1",name="payments",state="open"} 1
# HELP scalekit_breaker_transitions_total Circuit breaker state changes.
# TYPE scalekit_breaker_transitions_total counter
scalekit_breaker_transitions_total{instance_name="api-1",name="payments"} 1
# HELP scalekit_breaker_window_calls Calls in the breaker's current rate window (0 without a rate threshold).
# TYPE scalekit_breaker_window_calls gauge
scalekit_breaker_window_calls{instance_name="api-1",name="payments"} 0
# HELP scalekit_breaker_window_failures Failed calls in the breaker's current rate window (0 without a rate threshold).
# TYPE scalekit_breaker_window_failures gauge
scalekit_breaker_window_failures{instance_name="api-1",name="payments"} 0
# HELP scalekit_breaker_window_slow_calls Slow calls in the breaker's current rate window (0 without a rate threshold).
# TYPE scalekit_breaker_window_slow_calls gauge
scalekit_breaker_window_slow_calls{instance_name="api-1",name="payments"} 0
# HELP scalekit_breaker_would_trips_total Trips a breaker in metrics-only mode would have made (it rejects nothing).
# TYPE scalekit_breaker_would_trips_total counter
scalekit_breaker_would_trips_total{instance_name="api-1",name="payments"} 0
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// The probe after OpenTimeout closes it: the state set follows.
	clk.Add(5 * time.Second)
	br.Do(ctx, ok)
	expect(t, m, "scalekit_breaker_state", `
		# TYPE scalekit_breaker_state gauge
		scalekit_breaker_state{instance_name="api-1",name="payments",state="closed"} 1
		scalekit_breaker_state{instance_name="api-1",name="payments",state="forced-closed"} 0
		scalekit_breaker_state{instance_name="api-1",name="payments",state="forced-open"} 0
		scalekit_breaker_state{instance_name="api-1",name="payments",state="half-open"} 0
		scalekit_breaker_state{instance_name="api-1",name="payments",state="metrics-only"} 0
		scalekit_breaker_state{instance_name="api-1",name="payments",state="open"} 0
	`)
	expect(t, m, "scalekit_breaker_open_until", `
		# TYPE scalekit_breaker_open_until_timestamp_seconds gauge
		scalekit_breaker_open_until_timestamp_seconds{instance_name="api-1",name="payments"} 0
	`)
}

func TestBreakerRateWindow(t *testing.T) {
	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{Name: "search", ConsecutiveFailures: 10, FailureRateThreshold: 0.5, WindowSize: 10, MinimumCalls: 10,
		SlowCallThreshold: time.Second, SlowCallRateThreshold: 1}))
	ctx := context.Background()
	for range 3 {
		br.Do(ctx, ok)
	}
	br.Do(ctx, fail)
	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddBreaker(br))
	expect(t, m, "scalekit_breaker_consecutive", `
		# TYPE scalekit_breaker_consecutive_failures gauge
		scalekit_breaker_consecutive_failures{name="search"} 1
	`)
	expect(t, m, "scalekit_breaker_window", `
		# TYPE scalekit_breaker_window_calls gauge
		scalekit_breaker_window_calls{name="search"} 4
		# TYPE scalekit_breaker_window_failures gauge
		scalekit_breaker_window_failures{name="search"} 1
		# TYPE scalekit_breaker_window_slow_calls gauge
		scalekit_breaker_window_slow_calls{name="search"} 0
	`)
}

func TestBreakerGroup(t *testing.T) {
	g := must[*breaker.Group](t)(breaker.NewGroup(breaker.GroupOptions{Template: breaker.Options{ConsecutiveFailures: 1}}))
	ctx := context.Background()
	g.Do(ctx, "eu.api.example", fail)
	g.Do(ctx, "eu.api.example", ok) // rejected
	g.Do(ctx, "us.api.example", ok)
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddBreakerGroup(g))
	expect(t, m, "scalekit_breaker_state", `
		# TYPE scalekit_breaker_state gauge
		scalekit_breaker_state{instance_name="api-1",name="eu.api.example",state="closed"} 0
		scalekit_breaker_state{instance_name="api-1",name="eu.api.example",state="forced-closed"} 0
		scalekit_breaker_state{instance_name="api-1",name="eu.api.example",state="forced-open"} 0
		scalekit_breaker_state{instance_name="api-1",name="eu.api.example",state="half-open"} 0
		scalekit_breaker_state{instance_name="api-1",name="eu.api.example",state="metrics-only"} 0
		scalekit_breaker_state{instance_name="api-1",name="eu.api.example",state="open"} 1
		scalekit_breaker_state{instance_name="api-1",name="us.api.example",state="closed"} 1
		scalekit_breaker_state{instance_name="api-1",name="us.api.example",state="forced-closed"} 0
		scalekit_breaker_state{instance_name="api-1",name="us.api.example",state="forced-open"} 0
		scalekit_breaker_state{instance_name="api-1",name="us.api.example",state="half-open"} 0
		scalekit_breaker_state{instance_name="api-1",name="us.api.example",state="metrics-only"} 0
		scalekit_breaker_state{instance_name="api-1",name="us.api.example",state="open"} 0
	`)
	expect(t, m, "scalekit_breaker_calls", `
		# TYPE scalekit_breaker_calls_total counter
		scalekit_breaker_calls_total{instance_name="api-1",name="eu.api.example",result="failure"} 1
		scalekit_breaker_calls_total{instance_name="api-1",name="eu.api.example",result="ignored"} 0
		scalekit_breaker_calls_total{instance_name="api-1",name="eu.api.example",result="rejected"} 1
		scalekit_breaker_calls_total{instance_name="api-1",name="eu.api.example",result="success"} 0
		scalekit_breaker_calls_total{instance_name="api-1",name="us.api.example",result="failure"} 0
		scalekit_breaker_calls_total{instance_name="api-1",name="us.api.example",result="ignored"} 0
		scalekit_breaker_calls_total{instance_name="api-1",name="us.api.example",result="rejected"} 0
		scalekit_breaker_calls_total{instance_name="api-1",name="us.api.example",result="success"} 1
	`)
	// A breaker the group creates later shows up at the next scrape.
	g.Do(ctx, "ap.api.example", ok)
	if n := testutil.CollectAndCount(m, "scalekit_breaker_transitions_total"); n != 3 {
		t.Fatalf("%d transitions series, want one per breaker of the group (3)", n)
	}
}

func TestRetry(t *testing.T) {
	budget := must[*retry.Budget](t)(retry.NewBudget(retry.BudgetOptions{Ratio: 0.5, NoMinRetries: true}))
	r := must[*retry.Retrier](t)(retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{}, Budget: budget}))
	ctx := context.Background()
	noErr(t, r.Do(ctx, ok)) // deposits 0.5
	// Deposits 0.5 (1 token): the first retry takes it, the second is
	// refused, and Do gives up with ReasonBudget after 2 attempts.
	if err := r.Do(ctx, fail); !errors.Is(err, retry.ErrBudgetExhausted) {
		t.Fatalf("Do = %v, want a budget give-up", err)
	}
	// A request that is itself a retry: inner makes one attempt and
	// leaves the retrying to the layer above.
	inner := must[*retry.Retrier](t)(retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{}}))
	if err := inner.Do(retry.WithRetried(ctx), fail); err == nil {
		t.Fatal("Do of a failing call under WithRetried = nil")
	}
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddRetrier("payments", r))
	noErr(t, m.AddRetrier("inner", inner))
	noErr(t, m.AddRetryBudget("payments-provider", budget))
	expect(t, m, "scalekit_retry_", `
		# TYPE scalekit_retry_attempts_total counter
		scalekit_retry_attempts_total{instance_name="api-1",name="inner"} 1
		scalekit_retry_attempts_total{instance_name="api-1",name="payments"} 3
		# TYPE scalekit_retry_budget_deposits_total counter
		scalekit_retry_budget_deposits_total{instance_name="api-1",name="payments-provider"} 2
		# TYPE scalekit_retry_budget_refusals_total counter
		scalekit_retry_budget_refusals_total{instance_name="api-1",name="payments-provider"} 1
		# TYPE scalekit_retry_budget_tokens gauge
		scalekit_retry_budget_tokens{instance_name="api-1",name="payments-provider"} 0
		# TYPE scalekit_retry_budget_withdrawals_total counter
		scalekit_retry_budget_withdrawals_total{instance_name="api-1",name="payments-provider"} 1
		# TYPE scalekit_retry_calls_total counter
		scalekit_retry_calls_total{instance_name="api-1",name="inner"} 1
		scalekit_retry_calls_total{instance_name="api-1",name="payments"} 2
		# TYPE scalekit_retry_exhausted_by_budget_total counter
		scalekit_retry_exhausted_by_budget_total{instance_name="api-1",name="inner"} 0
		scalekit_retry_exhausted_by_budget_total{instance_name="api-1",name="payments"} 1
		# TYPE scalekit_retry_exhausted_total counter
		scalekit_retry_exhausted_total{instance_name="api-1",name="inner"} 0
		scalekit_retry_exhausted_total{instance_name="api-1",name="payments"} 1
		# TYPE scalekit_retry_not_retried_total counter
		scalekit_retry_not_retried_total{instance_name="api-1",name="inner"} 1
		scalekit_retry_not_retried_total{instance_name="api-1",name="payments"} 0
		# TYPE scalekit_retry_retries_total counter
		scalekit_retry_retries_total{instance_name="api-1",name="inner"} 0
		scalekit_retry_retries_total{instance_name="api-1",name="payments"} 1
	`)
}

func TestRateLimit(t *testing.T) {
	clk := testclock.New()
	ctx := context.Background()
	local := must[*ratelimit.Local](t)(ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{ratelimit.PerSecond(1, 2)}, Clock: clk}))
	for range 3 {
		local.Allow(ctx, "alice") // burst 2: the third is denied
	}
	local.Allow(ctx, "bob")

	conc := must[*ratelimit.Concurrency](t)(ratelimit.NewConcurrency(ratelimit.ConcurrencyOptions{Limit: 1}))
	release := must[func()](t)(conc.Acquire(ctx, "report"))
	if _, err := conc.Acquire(ctx, "report"); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("second holder: %v, want ErrLimited", err)
	}
	release()

	ad := must[*ratelimit.Adaptive](t)(ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{Initial: 2, Min: 1, Backoff: 0.5, Clock: clk}))
	done1 := must[func(bool)](t)(ad.Acquire())
	done2 := must[func(bool)](t)(ad.Acquire())
	if _, err := ad.Acquire(); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("third call over a limit of 2: %v, want shed", err)
	}
	done1(true) // overloaded: the limit is cut to 1
	// done2 is still in flight.

	mwLimiter := must[*ratelimit.Local](t)(ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{ratelimit.PerSecond(1, 1)}, Clock: clk}))
	mw := must[*ratelimit.HTTP](t)(ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: mwLimiter, Key: ratelimit.Header("X-Api-Key")}))
	h := mw.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, key := range []string{"k1", "k1", ""} { // allowed, denied (429), bad key (400)
		r := httptest.NewRequest("GET", "/", nil)
		if key != "" {
			r.Header.Set("X-Api-Key", key)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}

	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddLimiter("api", local))
	noErr(t, m.AddConcurrency("reports", conc))
	noErr(t, m.AddAdaptive("shed", ad))
	noErr(t, m.AddRateLimitMiddleware("api", mw))
	expect(t, m, "scalekit_ratelimit_", `
		# TYPE scalekit_ratelimit_adaptive_calls_total counter
		scalekit_ratelimit_adaptive_calls_total{instance_name="api-1",name="shed",result="admitted"} 2
		scalekit_ratelimit_adaptive_calls_total{instance_name="api-1",name="shed",result="shed"} 1
		# TYPE scalekit_ratelimit_adaptive_cuts_total counter
		scalekit_ratelimit_adaptive_cuts_total{instance_name="api-1",name="shed"} 1
		# TYPE scalekit_ratelimit_adaptive_in_flight gauge
		scalekit_ratelimit_adaptive_in_flight{instance_name="api-1",name="shed"} 1
		# TYPE scalekit_ratelimit_adaptive_limit gauge
		scalekit_ratelimit_adaptive_limit{instance_name="api-1",name="shed"} 1
		# TYPE scalekit_ratelimit_concurrency_acquisitions_total counter
		scalekit_ratelimit_concurrency_acquisitions_total{instance_name="api-1",name="reports",result="acquired"} 1
		scalekit_ratelimit_concurrency_acquisitions_total{instance_name="api-1",name="reports",result="rejected"} 1
		# TYPE scalekit_ratelimit_decisions_total counter
		scalekit_ratelimit_decisions_total{instance_name="api-1",name="api",result="allowed"} 3
		scalekit_ratelimit_decisions_total{instance_name="api-1",name="api",result="denied"} 1
		# TYPE scalekit_ratelimit_http_requests_total counter
		scalekit_ratelimit_http_requests_total{instance_name="api-1",name="api",result="allowed"} 1
		scalekit_ratelimit_http_requests_total{instance_name="api-1",name="api",result="bad_key"} 1
		scalekit_ratelimit_http_requests_total{instance_name="api-1",name="api",result="denied"} 1
		scalekit_ratelimit_http_requests_total{instance_name="api-1",name="api",result="error"} 0
		# TYPE scalekit_ratelimit_keys gauge
		scalekit_ratelimit_keys{instance_name="api-1",name="api"} 2
		# TYPE scalekit_ratelimit_keys_evicted_total counter
		scalekit_ratelimit_keys_evicted_total{instance_name="api-1",name="api"} 0
		# TYPE scalekit_ratelimit_keys_swept_total counter
		scalekit_ratelimit_keys_swept_total{instance_name="api-1",name="api"} 0
	`)
	done2(false)
}

// TestRedis drives the Redis limiters against a real redis-server, then
// stops it: the degraded decisions and the circuit show up.
func TestRedis(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	ctx := context.Background()
	lim := must[*ratelimitredis.Limiter](t)(ratelimitredis.New(ratelimitredis.Options{Client: r.Client, Limits: ratelimit.Policy{ratelimit.PerSecond(1, 1)}, Clock: clk, Timeout: 2 * time.Second}))
	conc := must[*ratelimitredis.Concurrency](t)(ratelimitredis.NewConcurrency(ratelimitredis.ConcurrencyOptions{Client: r.Client, Limit: 1, Timeout: 2 * time.Second}))
	t.Cleanup(func() { conc.Close() })
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddRedisLimiter("api", lim))
	noErr(t, m.AddRedisConcurrency("exports", conc))

	for _, want := range []bool{true, false} {
		if d := must[ratelimit.Decision](t)(lim.Allow(ctx, "alice")); d.Allowed != want {
			t.Fatalf("Allowed = %v, want %v", d.Allowed, want)
		}
	}
	release := must[func()](t)(conc.Acquire(ctx, "bob"))
	if _, err := conc.Acquire(ctx, "bob"); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("second holder: %v, want ErrLimited", err)
	}
	expect(t, m, "scalekit_ratelimit_redis_concurrency_leases_held", `
		# TYPE scalekit_ratelimit_redis_concurrency_leases_held gauge
		scalekit_ratelimit_redis_concurrency_leases_held{instance_name="api-1",name="exports"} 1
	`)
	release()

	r.Stop()
	// Three failures open the default circuit; the fourth decision skips
	// Redis. All four are admitted by the default FailOpen.
	for range 4 {
		if d := must[ratelimit.Decision](t)(lim.Allow(ctx, "alice")); !d.Allowed {
			t.Fatal("denied while Redis is down, want FailOpen")
		}
	}
	expect(t, m, "scalekit_ratelimit_redis_", `
		# TYPE scalekit_ratelimit_redis_batched_decisions_total counter
		scalekit_ratelimit_redis_batched_decisions_total{instance_name="api-1",name="api"} 0
		# TYPE scalekit_ratelimit_redis_batches_total counter
		scalekit_ratelimit_redis_batches_total{instance_name="api-1",name="api"} 0
		# TYPE scalekit_ratelimit_redis_circuit_state gauge
		scalekit_ratelimit_redis_circuit_state{instance_name="api-1",name="api",state="closed"} 0
		scalekit_ratelimit_redis_circuit_state{instance_name="api-1",name="api",state="half-open"} 0
		scalekit_ratelimit_redis_circuit_state{instance_name="api-1",name="api",state="open"} 1
		# TYPE scalekit_ratelimit_redis_concurrency_acquisitions_total counter
		scalekit_ratelimit_redis_concurrency_acquisitions_total{instance_name="api-1",name="exports",result="acquired"} 1
		scalekit_ratelimit_redis_concurrency_acquisitions_total{instance_name="api-1",name="exports",result="rejected"} 1
		# TYPE scalekit_ratelimit_redis_concurrency_circuit_state gauge
		scalekit_ratelimit_redis_concurrency_circuit_state{instance_name="api-1",name="exports",state="closed"} 1
		scalekit_ratelimit_redis_concurrency_circuit_state{instance_name="api-1",name="exports",state="half-open"} 0
		scalekit_ratelimit_redis_concurrency_circuit_state{instance_name="api-1",name="exports",state="open"} 0
		# TYPE scalekit_ratelimit_redis_concurrency_degraded_acquisitions_total counter
		scalekit_ratelimit_redis_concurrency_degraded_acquisitions_total{instance_name="api-1",mode="fail_closed",name="exports"} 0
		scalekit_ratelimit_redis_concurrency_degraded_acquisitions_total{instance_name="api-1",mode="fail_open",name="exports"} 0
		scalekit_ratelimit_redis_concurrency_degraded_acquisitions_total{instance_name="api-1",mode="fallback",name="exports"} 0
		# TYPE scalekit_ratelimit_redis_concurrency_errors_total counter
		scalekit_ratelimit_redis_concurrency_errors_total{instance_name="api-1",name="exports"} 0
		# TYPE scalekit_ratelimit_redis_concurrency_leases_held gauge
		scalekit_ratelimit_redis_concurrency_leases_held{instance_name="api-1",name="exports"} 0
		# TYPE scalekit_ratelimit_redis_concurrency_leases_lost_total counter
		scalekit_ratelimit_redis_concurrency_leases_lost_total{instance_name="api-1",name="exports"} 0
		# TYPE scalekit_ratelimit_redis_concurrency_releases_total counter
		scalekit_ratelimit_redis_concurrency_releases_total{instance_name="api-1",name="exports"} 1
		# TYPE scalekit_ratelimit_redis_concurrency_renewals_total counter
		scalekit_ratelimit_redis_concurrency_renewals_total{instance_name="api-1",name="exports"} 0
		# TYPE scalekit_ratelimit_redis_concurrency_skipped_total counter
		scalekit_ratelimit_redis_concurrency_skipped_total{instance_name="api-1",name="exports"} 0
		# TYPE scalekit_ratelimit_redis_decisions_total counter
		scalekit_ratelimit_redis_decisions_total{instance_name="api-1",name="api",result="allowed"} 1
		scalekit_ratelimit_redis_decisions_total{instance_name="api-1",name="api",result="denied"} 1
		# TYPE scalekit_ratelimit_redis_degraded_decisions_total counter
		scalekit_ratelimit_redis_degraded_decisions_total{instance_name="api-1",mode="fail_closed",name="api"} 0
		scalekit_ratelimit_redis_degraded_decisions_total{instance_name="api-1",mode="fail_open",name="api"} 4
		scalekit_ratelimit_redis_degraded_decisions_total{instance_name="api-1",mode="fallback",name="api"} 0
		# TYPE scalekit_ratelimit_redis_errors_total counter
		scalekit_ratelimit_redis_errors_total{instance_name="api-1",name="api"} 3
		# TYPE scalekit_ratelimit_redis_round_trips_total counter
		scalekit_ratelimit_redis_round_trips_total{instance_name="api-1",name="api"} 5
		# TYPE scalekit_ratelimit_redis_skipped_total counter
		scalekit_ratelimit_redis_skipped_total{instance_name="api-1",name="api"} 1
		# TYPE scalekit_ratelimit_redis_token_lease_events_total counter
		scalekit_ratelimit_redis_token_lease_events_total{instance_name="api-1",name="api",result="expired"} 0
		scalekit_ratelimit_redis_token_lease_events_total{instance_name="api-1",name="api",result="leased"} 0
		scalekit_ratelimit_redis_token_lease_events_total{instance_name="api-1",name="api",result="spent"} 0
		# TYPE scalekit_ratelimit_redis_token_leases_total counter
		scalekit_ratelimit_redis_token_leases_total{instance_name="api-1",name="api"} 0
	`)
}

// TestCache drives a real two-instance cache (two Caches over one
// MemoryStore) through L1 and L2 hits, coalesced misses, a remembered
// not-found and a stale read, in a synctest bubble so time is exact.
func TestCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := cache.NewMemoryStore(cache.MemoryStoreOptions{})
		opts := cache.Options{TTL: time.Minute, NoJitter: true, NoEarlyRefresh: true, Store: store}
		a := must[*cache.Cache[string]](t)(cache.New[string](opts))
		b := must[*cache.Cache[string]](t)(cache.New[string](opts))
		t.Cleanup(func() { a.Close(); b.Close() })
		load := func(ctx context.Context, key string) (string, error) {
			time.Sleep(10 * time.Millisecond)
			if key == "ghost" {
				return "", cache.ErrNotFound
			}
			return "v:" + key, nil
		}

		var wg sync.WaitGroup
		for range 2 { // two concurrent misses: one load, one coalesced
			wg.Go(func() { a.Get(ctx, "user:1", load) })
		}
		wg.Wait()
		a.Get(ctx, "user:1", load)   // L1 hit
		a.Get(ctx, "ghost", load)    // loads ErrNotFound
		a.Get(ctx, "ghost", load)    // remembered
		b.Get(ctx, "user:1", load)   // L1 miss, L2 hit
		time.Sleep(61 * time.Second) // past the TTL, within StaleFor
		a.Get(ctx, "user:1", load)   // stale, refreshed in the background
		time.Sleep(time.Second)      // the refresh ends
		synctest.Wait()

		m := newCollector(t, metrics.Options{Instance: "api-1"})
		noErr(t, m.AddCache("users", a))
		noErr(t, m.AddCache("users-b", b))
		// Each load reads the Store before and after taking the key's fill
		// lease: the two first loads miss it twice each (l2 misses 4), the
		// stale refresh finds the stale copy twice (l2 hits 2). The first
		// Get of "ghost" loads the not-found and serves it (negative hits
		// 2 with the second Get); 61s later it has expired from the L1.
		expect(t, m, "scalekit_cache_", `
			# TYPE scalekit_cache_coalesced_total counter
			scalekit_cache_coalesced_total{instance_name="api-1",name="users"} 1
			scalekit_cache_coalesced_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_codec_errors_total counter
			scalekit_cache_codec_errors_total{instance_name="api-1",name="users"} 0
			scalekit_cache_codec_errors_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_delayed_invalidations_total counter
			scalekit_cache_delayed_invalidations_total{instance_name="api-1",name="users"} 0
			scalekit_cache_delayed_invalidations_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_feed_losses_total counter
			scalekit_cache_feed_losses_total{instance_name="api-1",name="users"} 0
			scalekit_cache_feed_losses_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_fills_refused_total counter
			scalekit_cache_fills_refused_total{instance_name="api-1",name="users"} 0
			scalekit_cache_fills_refused_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_hits_total counter
			scalekit_cache_hits_total{instance_name="api-1",name="users",tier="l1"} 1
			scalekit_cache_hits_total{instance_name="api-1",name="users",tier="l2"} 2
			scalekit_cache_hits_total{instance_name="api-1",name="users-b",tier="l1"} 0
			scalekit_cache_hits_total{instance_name="api-1",name="users-b",tier="l2"} 1
			# TYPE scalekit_cache_invalidations_total counter
			scalekit_cache_invalidations_total{instance_name="api-1",name="users"} 0
			scalekit_cache_invalidations_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_l1_entries gauge
			scalekit_cache_l1_entries{instance_name="api-1",name="users"} 1
			scalekit_cache_l1_entries{instance_name="api-1",name="users-b"} 1
			# TYPE scalekit_cache_l2_circuit_state gauge
			scalekit_cache_l2_circuit_state{instance_name="api-1",name="users",state="closed"} 1
			scalekit_cache_l2_circuit_state{instance_name="api-1",name="users",state="half-open"} 0
			scalekit_cache_l2_circuit_state{instance_name="api-1",name="users",state="open"} 0
			scalekit_cache_l2_circuit_state{instance_name="api-1",name="users-b",state="closed"} 1
			scalekit_cache_l2_circuit_state{instance_name="api-1",name="users-b",state="half-open"} 0
			scalekit_cache_l2_circuit_state{instance_name="api-1",name="users-b",state="open"} 0
			# TYPE scalekit_cache_l2_errors_total counter
			scalekit_cache_l2_errors_total{instance_name="api-1",name="users"} 0
			scalekit_cache_l2_errors_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_l2_skipped_total counter
			scalekit_cache_l2_skipped_total{instance_name="api-1",name="users"} 0
			scalekit_cache_l2_skipped_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_lease_busy_total counter
			scalekit_cache_lease_busy_total{instance_name="api-1",name="users"} 0
			scalekit_cache_lease_busy_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_lease_timeouts_total counter
			scalekit_cache_lease_timeouts_total{instance_name="api-1",name="users"} 0
			scalekit_cache_lease_timeouts_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_lease_waits_total counter
			scalekit_cache_lease_waits_total{instance_name="api-1",name="users"} 0
			scalekit_cache_lease_waits_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_leases_won_total counter
			scalekit_cache_leases_won_total{instance_name="api-1",name="users"} 3
			scalekit_cache_leases_won_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_load_errors_total counter
			scalekit_cache_load_errors_total{instance_name="api-1",name="users"} 0
			scalekit_cache_load_errors_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_load_panics_total counter
			scalekit_cache_load_panics_total{instance_name="api-1",name="users"} 0
			scalekit_cache_load_panics_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_loads_total counter
			scalekit_cache_loads_total{instance_name="api-1",name="users"} 3
			scalekit_cache_loads_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_misses_total counter
			scalekit_cache_misses_total{instance_name="api-1",name="users",tier="l1"} 3
			scalekit_cache_misses_total{instance_name="api-1",name="users",tier="l2"} 4
			scalekit_cache_misses_total{instance_name="api-1",name="users-b",tier="l1"} 1
			scalekit_cache_misses_total{instance_name="api-1",name="users-b",tier="l2"} 0
			# TYPE scalekit_cache_negative_hits_total counter
			scalekit_cache_negative_hits_total{instance_name="api-1",name="users"} 2
			scalekit_cache_negative_hits_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_pending_invalidations gauge
			scalekit_cache_pending_invalidations{instance_name="api-1",name="users"} 0
			scalekit_cache_pending_invalidations{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_pending_overflows_total counter
			scalekit_cache_pending_overflows_total{instance_name="api-1",name="users"} 0
			scalekit_cache_pending_overflows_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_refreshes_total counter
			scalekit_cache_refreshes_total{instance_name="api-1",name="users",trigger="early"} 0
			scalekit_cache_refreshes_total{instance_name="api-1",name="users",trigger="stale"} 1
			scalekit_cache_refreshes_total{instance_name="api-1",name="users-b",trigger="early"} 0
			scalekit_cache_refreshes_total{instance_name="api-1",name="users-b",trigger="stale"} 0
			# TYPE scalekit_cache_resubscribes_total counter
			scalekit_cache_resubscribes_total{instance_name="api-1",name="users"} 0
			scalekit_cache_resubscribes_total{instance_name="api-1",name="users-b"} 0
			# TYPE scalekit_cache_stale_served_total counter
			scalekit_cache_stale_served_total{instance_name="api-1",name="users"} 1
			scalekit_cache_stale_served_total{instance_name="api-1",name="users-b"} 0
		`)
	})
}

func TestBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fetch := func(ctx context.Context, ids []int) (map[int]string, error) {
			if ids[0] < 0 {
				return nil, errBoom
			}
			out := map[int]string{}
			for _, id := range ids {
				out[id] = fmt.Sprint(id)
			}
			return out, nil
		}
		l := must[*batch.Loader[int, string]](t)(batch.New(fetch, batch.Options{Wait: time.Millisecond}))
		var wg sync.WaitGroup
		for _, id := range []int{1, 2, 2} { // one batch of 2 keys, one deduped load
			wg.Go(func() { l.Load(ctx, id) })
		}
		wg.Wait()
		l.LoadMany(ctx, []int{10, 11, 12, 13, 14}) // one batch of 5 keys
		l.Load(ctx, -1)                            // a failed fetch of 1 key
		cctx, cancel := context.WithCancel(ctx)
		go l.Load(cctx, 99)
		synctest.Wait()
		cancel()                // the only caller leaves: its batch is dropped unfetched
		time.Sleep(time.Second) // the batch's window ends
		m := newCollector(t, metrics.Options{Instance: "api-1"})
		noErr(t, m.AddBatch("authors", l))
		// 3 fetches, of 2, 5 and 1 keys; every batch, the dropped one too,
		// stayed open 1ms (Options.Wait).
		expect(t, m, "scalekit_batch_", `
			# TYPE scalekit_batch_cancelled_total counter
			scalekit_batch_cancelled_total{instance_name="api-1",name="authors"} 1
			# TYPE scalekit_batch_deduped_total counter
			scalekit_batch_deduped_total{instance_name="api-1",name="authors"} 1
			# TYPE scalekit_batch_fetch_errors_total counter
			scalekit_batch_fetch_errors_total{instance_name="api-1",name="authors"} 1
			# TYPE scalekit_batch_fetch_keys histogram
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="1"} 1
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="2"} 2
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="4"} 2
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="8"} 3
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="16"} 3
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="32"} 3
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="64"} 3
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="128"} 3
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="256"} 3
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="512"} 3
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="1024"} 3
			scalekit_batch_fetch_keys_bucket{instance_name="api-1",name="authors",le="+Inf"} 3
			scalekit_batch_fetch_keys_sum{instance_name="api-1",name="authors"} 8
			scalekit_batch_fetch_keys_count{instance_name="api-1",name="authors"} 3
			# TYPE scalekit_batch_fetch_panics_total counter
			scalekit_batch_fetch_panics_total{instance_name="api-1",name="authors"} 0
			# TYPE scalekit_batch_loads_total counter
			scalekit_batch_loads_total{instance_name="api-1",name="authors"} 10
			# TYPE scalekit_batch_wait_seconds_total counter
			scalekit_batch_wait_seconds_total{instance_name="api-1",name="authors"} 0.004
		`)
	})
}

// failingStore is an idempotency.Store whose backend is down.
type failingStore struct{}

func (failingStore) Begin(context.Context, string, string, time.Duration, time.Duration) (idempotency.Outcome, error) {
	return idempotency.Outcome{}, errors.New("connection refused")
}
func (failingStore) Complete(context.Context, string, string, []byte, time.Duration) error {
	return errors.New("connection refused")
}
func (failingStore) Release(context.Context, string, string) error {
	return errors.New("connection refused")
}
func (failingStore) Extend(context.Context, string, string, time.Duration) error {
	return errors.New("connection refused")
}

func TestIdempotency(t *testing.T) {
	started, finish := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			close(started)
			<-finish
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mw := must[*idempotency.HTTP](t)(idempotency.NewHTTP(idempotency.HTTPOptions{Unscoped: true}))
	down := must[*idempotency.HTTP](t)(idempotency.NewHTTP(idempotency.HTTPOptions{Store: failingStore{}, Unscoped: true}))
	send := func(m *idempotency.HTTP, path, key, body string) int {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Idempotency-Key", key)
		w := httptest.NewRecorder()
		m.Middleware(h).ServeHTTP(w, r)
		return w.Code
	}
	for _, c := range []struct {
		path, key, body string
		want            int
	}{
		{"/payments", "k1", "a", 201},  // executed
		{"/payments", "k1", "a", 201},  // replayed
		{"/payments", "k1", "b", 422},  // mismatch
		{"/payments", "a b", "a", 400}, // bad key
		{"/fail", "k2", "a", 500},      // executed, released
	} {
		if got := send(mw, c.path, c.key, c.body); got != c.want {
			t.Fatalf("%s %s: %d, want %d", c.path, c.key, got, c.want)
		}
	}
	codes := make(chan int)
	go func() { codes <- send(mw, "/slow", "k3", "a") }()
	<-started
	if got := send(mw, "/slow", "k3", "a"); got != http.StatusConflict {
		t.Fatalf("while running: %d, want 409", got)
	}
	close(finish)
	<-codes
	if got := send(down, "/payments", "k4", "a"); got != http.StatusServiceUnavailable {
		t.Fatalf("with the Store down: %d, want 503", got)
	}

	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddIdempotency("payments", mw))
	noErr(t, m.AddIdempotency("payments-down", down))
	expect(t, m, "scalekit_idempotency_", `
		# TYPE scalekit_idempotency_lease_lost_total counter
		scalekit_idempotency_lease_lost_total{instance_name="api-1",name="payments"} 0
		scalekit_idempotency_lease_lost_total{instance_name="api-1",name="payments-down"} 0
		# TYPE scalekit_idempotency_released_total counter
		scalekit_idempotency_released_total{instance_name="api-1",name="payments"} 1
		scalekit_idempotency_released_total{instance_name="api-1",name="payments-down"} 0
		# TYPE scalekit_idempotency_requests_total counter
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments",result="bad_key"} 1
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments",result="conflict"} 1
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments",result="executed"} 3
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments",result="mismatch"} 1
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments",result="replayed"} 1
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments",result="unavailable"} 0
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments-down",result="bad_key"} 0
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments-down",result="conflict"} 0
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments-down",result="executed"} 0
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments-down",result="mismatch"} 0
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments-down",result="replayed"} 0
		scalekit_idempotency_requests_total{instance_name="api-1",name="payments-down",result="unavailable"} 1
	`)
}

func TestSLO(t *testing.T) {
	clk := testclock.New()
	s := must[*slo.SLO](t)(slo.New(slo.Options{Name: "checkout", Target: 0.75, Clock: clk}))
	for i := range 100 {
		s.Record(i%5 > 1) // 40 bad of 100: burn rate 0.4 / 0.25 = 1.6
	}
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddSLO(s))
	expect(t, m, "scalekit_slo_", `
		# TYPE scalekit_slo_alert_firing gauge
		scalekit_slo_alert_firing{alert="budget-burn",instance_name="api-1",name="checkout",severity="ticket"} 1
		scalekit_slo_alert_firing{alert="fast-burn",instance_name="api-1",name="checkout",severity="page"} 0
		scalekit_slo_alert_firing{alert="slow-burn",instance_name="api-1",name="checkout",severity="page"} 0
		# TYPE scalekit_slo_burn_rate gauge
		scalekit_slo_burn_rate{instance_name="api-1",name="checkout",window="1h"} 1.6
		scalekit_slo_burn_rate{instance_name="api-1",name="checkout",window="30m"} 1.6
		scalekit_slo_burn_rate{instance_name="api-1",name="checkout",window="3d"} 1.6
		scalekit_slo_burn_rate{instance_name="api-1",name="checkout",window="5m"} 1.6
		scalekit_slo_burn_rate{instance_name="api-1",name="checkout",window="6h"} 1.6
		# TYPE scalekit_slo_error_budget_allowed_events gauge
		scalekit_slo_error_budget_allowed_events{instance_name="api-1",name="checkout"} 25
		# TYPE scalekit_slo_error_budget_consumed_events gauge
		scalekit_slo_error_budget_consumed_events{instance_name="api-1",name="checkout"} 40
		# TYPE scalekit_slo_error_budget_remaining_events gauge
		scalekit_slo_error_budget_remaining_events{instance_name="api-1",name="checkout"} -15
		# TYPE scalekit_slo_error_budget_remaining_ratio gauge
		scalekit_slo_error_budget_remaining_ratio{instance_name="api-1",name="checkout"} -0.6
		# TYPE scalekit_slo_target_ratio gauge
		scalekit_slo_target_ratio{instance_name="api-1",name="checkout"} 0.75
		# TYPE scalekit_slo_window_events gauge
		scalekit_slo_window_events{instance_name="api-1",name="checkout"} 100
		# TYPE scalekit_slo_window_good_events gauge
		scalekit_slo_window_good_events{instance_name="api-1",name="checkout"} 60
		# TYPE scalekit_slo_window_seconds gauge
		scalekit_slo_window_seconds{instance_name="api-1",name="checkout"} 2.592e+06
	`)
}

func TestSLOTracker(t *testing.T) {
	clk := testclock.New()
	tr := must[*slo.Tracker](t)(slo.NewTracker(slo.TrackerOptions{Availability: 0.75, Latency: 0.5, LatencyThreshold: 100 * time.Millisecond, Clock: clk}))
	tr.Observe("GET /users/{id}", 200, 10*time.Millisecond)
	tr.Observe("GET /users/{id}", 503, 300*time.Millisecond)
	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddSLOTracker(tr))
	expect(t, m, "scalekit_slo_error_budget_consumed", `
		# TYPE scalekit_slo_error_budget_consumed_events gauge
		scalekit_slo_error_budget_consumed_events{name="GET /users/{id} availability"} 1
		scalekit_slo_error_budget_consumed_events{name="GET /users/{id} latency"} 1
		scalekit_slo_error_budget_consumed_events{name="other availability"} 0
		scalekit_slo_error_budget_consumed_events{name="other latency"} 0
	`)
}

// TestHealth reads the probes of a Health whose checks run in the
// background (Options.Interval), in a synctest bubble.
func TestHealth(t *testing.T) {
	synctest.Test(t, testHealth)
}

func testHealth(t *testing.T) {
	h := must[*health.Health](t)(health.New(health.Options{Interval: 10 * time.Second}))
	noErr(t, h.Add(health.Check{Name: "postgres", Func: ok}))
	noErr(t, h.Add(health.Check{Name: "search", Func: fail, Optional: true}))
	noErr(t, h.Add(health.Check{Name: "goroutines", Func: ok, Kind: health.Liveness}))
	h.Start()
	defer h.Close()
	synctest.Wait() // the first round of checks is done
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddHealth("api", h, health.Readiness, health.Liveness))
	expect(t, m, "scalekit_health_", `
		# TYPE scalekit_health_check_latency_seconds gauge
		scalekit_health_check_latency_seconds{check="goroutines",instance_name="api-1",name="api",probe="liveness"} 0
		scalekit_health_check_latency_seconds{check="postgres",instance_name="api-1",name="api",probe="readiness"} 0
		scalekit_health_check_latency_seconds{check="search",instance_name="api-1",name="api",probe="readiness"} 0
		# TYPE scalekit_health_check_runs_total counter
		scalekit_health_check_runs_total{instance_name="api-1",name="api"} 3
		# TYPE scalekit_health_check_up gauge
		scalekit_health_check_up{check="goroutines",instance_name="api-1",name="api",probe="liveness"} 1
		scalekit_health_check_up{check="postgres",instance_name="api-1",name="api",probe="readiness"} 1
		scalekit_health_check_up{check="search",instance_name="api-1",name="api",probe="readiness"} 0
		# TYPE scalekit_health_draining gauge
		scalekit_health_draining{instance_name="api-1",name="api"} 0
		# TYPE scalekit_health_probe_status gauge
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="liveness",status="fail"} 0
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="liveness",status="pass"} 1
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="liveness",status="warn"} 0
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="readiness",status="fail"} 0
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="readiness",status="pass"} 0
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="readiness",status="warn"} 1
	`)

	// Draining fails readiness; no new runs before the next interval.
	h.SetDraining(true)
	expect(t, m, "scalekit_health_", `
		# TYPE scalekit_health_check_latency_seconds gauge
		scalekit_health_check_latency_seconds{check="draining",instance_name="api-1",name="api",probe="readiness"} 0
		scalekit_health_check_latency_seconds{check="goroutines",instance_name="api-1",name="api",probe="liveness"} 0
		scalekit_health_check_latency_seconds{check="postgres",instance_name="api-1",name="api",probe="readiness"} 0
		scalekit_health_check_latency_seconds{check="search",instance_name="api-1",name="api",probe="readiness"} 0
		# TYPE scalekit_health_check_runs_total counter
		scalekit_health_check_runs_total{instance_name="api-1",name="api"} 3
		# TYPE scalekit_health_check_up gauge
		scalekit_health_check_up{check="draining",instance_name="api-1",name="api",probe="readiness"} 0
		scalekit_health_check_up{check="goroutines",instance_name="api-1",name="api",probe="liveness"} 1
		scalekit_health_check_up{check="postgres",instance_name="api-1",name="api",probe="readiness"} 1
		scalekit_health_check_up{check="search",instance_name="api-1",name="api",probe="readiness"} 0
		# TYPE scalekit_health_draining gauge
		scalekit_health_draining{instance_name="api-1",name="api"} 1
		# TYPE scalekit_health_probe_status gauge
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="liveness",status="fail"} 0
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="liveness",status="pass"} 1
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="liveness",status="warn"} 0
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="readiness",status="fail"} 1
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="readiness",status="pass"} 0
		scalekit_health_probe_status{instance_name="api-1",name="api",probe="readiness",status="warn"} 0
	`)
}

// TestHealthOnDemand: without Interval, a scrape runs a check whose
// result is older than CacheTTL, as a probe would.
func TestHealthOnDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := must[*health.Health](t)(health.New(health.Options{}))
		noErr(t, h.Add(health.Check{Name: "postgres", Func: func(context.Context) error { <-release; return nil }}))
		m := newCollector(t, metrics.Options{})
		noErr(t, m.AddHealth("api", h, health.Readiness))
		type result struct {
			text string
			err  error
		}
		out := make(chan result)
		go func() {
			s, err := gatherText(m, "scalekit_health_")
			out <- result{s, err}
		}()
		synctest.Wait() // the scrape waits for the check
		time.Sleep(250 * time.Millisecond)
		close(release)
		got := <-out
		if got.err != nil {
			t.Fatal(got.err)
		}
		want := dedent(`
			# TYPE scalekit_health_check_latency_seconds gauge
			scalekit_health_check_latency_seconds{check="postgres",name="api",probe="readiness"} 0.25
			# TYPE scalekit_health_check_runs_total counter
			scalekit_health_check_runs_total{name="api"} 1
			# TYPE scalekit_health_check_up gauge
			scalekit_health_check_up{check="postgres",name="api",probe="readiness"} 1
			# TYPE scalekit_health_draining gauge
			scalekit_health_draining{name="api"} 0
			# TYPE scalekit_health_probe_status gauge
			scalekit_health_probe_status{name="api",probe="readiness",status="fail"} 0
			scalekit_health_probe_status{name="api",probe="readiness",status="pass"} 1
			scalekit_health_probe_status{name="api",probe="readiness",status="warn"} 0
		`)
		if got.text != want {
			t.Errorf("got\n%swant\n%s", got.text, want)
		}
	})
}

// TestHealthStatsOnly: without probes, AddHealth runs no check.
func TestHealthStatsOnly(t *testing.T) {
	h := must[*health.Health](t)(health.New(health.Options{}))
	noErr(t, h.Add(health.Check{Name: "postgres", Func: func(context.Context) error { t.Error("a scrape ran a check"); return nil }}))
	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddHealth("api", h))
	expect(t, m, "scalekit_health_", `
		# TYPE scalekit_health_check_runs_total counter
		scalekit_health_check_runs_total{name="api"} 0
		# TYPE scalekit_health_draining gauge
		scalekit_health_draining{name="api"} 0
	`)
}
