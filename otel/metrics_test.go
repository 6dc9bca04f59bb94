package scalekitotel_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/metrics"
	scalekitotel "github.com/scalekit-go/scalekit/otel"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
	"github.com/scalekit-go/scalekit/requestid"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/shard/shardstats"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// adder is what metrics.Collector and scalekitotel.Metrics share: each
// test primitive is added to both.
type adder interface {
	AddBreaker(*breaker.Breaker) error
	AddBreakerGroup(*breaker.Group) error
	AddCache(string, interface{ Stats() cache.Stats }) error
	AddBatch(string, interface{ Stats() batch.Stats }) error
	AddRetrier(string, *retry.Retrier) error
	AddRetryBudget(string, *retry.Budget) error
	AddLimiter(string, *ratelimit.Local) error
	AddConcurrency(string, *ratelimit.Concurrency) error
	AddAdaptive(string, *ratelimit.Adaptive) error
	AddQueueWorker(string, *queue.Worker) error
	AddRateLimitMiddleware(string, *ratelimit.HTTP) error
	AddRedisLimiter(string, interface{ Stats() ratelimit.RemoteStats }) error
	AddRedisConcurrency(string, interface {
		Stats() ratelimit.RemoteConcurrencyStats
	}) error
	AddIdempotency(string, *idempotency.HTTP) error
	AddRequestID(string, *requestid.HTTP) error
	AddSLO(*slo.SLO) error
	AddSLOTracker(*slo.Tracker) error
	AddHealth(string, *health.Health, ...health.Kind) error
	AddQueue(string, *queue.Client, ...string) error
	AddScheduler(string, interface{ Stats() queue.SchedulerStats }) error
	AddDBRouter(string, interface{ Stats() routerstats.Stats }) error
	AddBulkhead(*bulkhead.Bulkhead) error
	AddTimeout(string, *timeout.Timeout) error
	AddThrottler(*throttle.Throttler) error
	AddRetryPacer(string, *retry.Pacer) error
	AddSLOShedder(string, *slo.Shedder) error
	AddShard(string, interface {
		Stats() shardstats.Stats
		VShards() map[string]int
	}) error
	AddShardStore(string, interface{ Stats() shardstats.StoreStats }) error
}

var (
	_ adder = (*metrics.Collector)(nil)
	_ adder = (*scalekitotel.Metrics)(nil)
)

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// primitives makes one of each primitive Metrics reports, used a little,
// and returns the function adding them all to a.
func primitives(t *testing.T) func(a adder) {
	ctx := context.Background()
	br, err := breaker.New(breaker.Options{Name: "payments"})
	check(t, err)
	_ = br.Do(ctx, func(context.Context) error { return nil })
	_ = br.Do(ctx, func(context.Context) error { return errors.New("x") })
	g, err := breaker.NewGroup(breaker.GroupOptions{})
	check(t, err)
	gb, err := g.Get("tenant-a")
	check(t, err)
	_ = gb.Do(ctx, func(context.Context) error { return nil })
	c, err := cache.New[string](cache.Options{TTL: time.Minute})
	check(t, err)
	t.Cleanup(func() { _ = c.Close() })
	for range 3 {
		_, _ = c.Get(ctx, "k", func(context.Context, string) (string, error) { return "v", nil })
	}
	l, err := batch.New(func(_ context.Context, keys []int) (map[int]int, error) {
		out := map[int]int{}
		for _, k := range keys {
			out[k] = k
		}
		return out, nil
	}, batch.Options{})
	check(t, err)
	_, _ = l.Load(ctx, 1)
	r, err := retry.New(retry.Options{Backoff: retry.Constant{}})
	check(t, err)
	_ = r.Do(ctx, func(context.Context) error { return nil })
	_ = r.Do(retry.WithRetried(ctx), func(context.Context) error { return errors.New("x") }) // not retried
	bud, err := retry.NewBudget(retry.BudgetOptions{})
	check(t, err)
	lim, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour}}})
	check(t, err)
	_, _ = lim.Allow(ctx, "a")
	_, _ = lim.Allow(ctx, "a")
	conc, err := ratelimit.NewConcurrency(ratelimit.ConcurrencyOptions{Limit: 1})
	check(t, err)
	if release, err := conc.Acquire(ctx, "a"); err == nil {
		release()
	}
	ad, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{})
	check(t, err)
	if release, err := ad.Acquire(); err == nil {
		release(false)
	}
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{}), Queues: map[string]queue.Options{"emails": {}, "reports": {}}})
	check(t, err)
	more, policies := morePrimitives(t), policyPrimitives(t)
	return func(a adder) {
		more(a)
		policies(a)
		check(t, a.AddBreaker(br))
		check(t, a.AddBreakerGroup(g))
		check(t, a.AddCache("users", c))
		check(t, a.AddBatch("users", l))
		check(t, a.AddRetrier("api", r))
		check(t, a.AddRetryBudget("api", bud))
		check(t, a.AddLimiter("login", lim))
		check(t, a.AddConcurrency("uploads", conc))
		check(t, a.AddAdaptive("api", ad))
		check(t, a.AddQueueWorker("worker", w))
	}
}

// manual is Metrics over a real SDK MeterProvider with a ManualReader.
func manual(t testing.TB) (*scalekitotel.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := scalekitotel.NewMetrics(scalekitotel.MetricsOptions{MeterProvider: mp})
	check(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m, rd
}

// otelSeries collects rd and returns every data point as "prometheus
// name{k=v,...}" -> value, the name mapped back as the OpenTelemetry
// Prometheus exporter does (unit suffix, _total on counters).
func otelSeries(t testing.TB, rd *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	check(t, rd.Collect(context.Background(), &rm))
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			name := m.Name + map[string]string{"s": "_seconds", "By": "_bytes"}[m.Unit]
			switch d := m.Data.(type) {
			case metricdata.Sum[float64]:
				if !d.IsMonotonic || d.Temporality != metricdata.CumulativeTemporality {
					t.Fatalf("%s: a sum not monotonic and cumulative", m.Name)
				}
				for _, p := range d.DataPoints {
					out[series(name+"_total", p.Attributes.ToSlice())] = p.Value
				}
			case metricdata.Gauge[float64]:
				if m.Unit == "1" {
					name += "_ratio"
				}
				for _, p := range d.DataPoints {
					out[series(name, p.Attributes.ToSlice())] = p.Value
				}
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

func series(name string, attrs []attribute.KeyValue) string {
	kv := make([]string, len(attrs))
	for i, a := range attrs {
		kv[i] = string(a.Key) + "=" + a.Value.String()
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// promSeries gathers r the same way, leaving out the histogram
// scalekit_batch_fetch_keys (an observable instrument cannot be one).
func promSeries(t testing.TB, r *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := r.Gather()
	check(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "scalekit_batch_fetch_keys" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var attrs []attribute.KeyValue
			for _, l := range m.GetLabel() {
				attrs = append(attrs, attribute.String(l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[series(mf.GetName(), attrs)] = v
		}
	}
	return out
}

// The OpenTelemetry instruments give exactly the series and values of
// package metrics's Prometheus families (the batch size histogram
// aside), names mapped back as the Prometheus exporter does.
func TestMetricsMatchPrometheus(t *testing.T) {
	got := compare(t, primitives(t))
	if len(got) < 200 {
		t.Fatalf("only %d series", len(got))
	}
	for k, v := range map[string]float64{
		`scalekit_slo_burn_rate{name=checkout,window=1h}`:                                 1.6,
		`scalekit_slo_target_ratio{name=checkout}`:                                        0.75,
		`scalekit_slo_window_seconds{name=checkout}`:                                      30 * 24 * 3600,
		`scalekit_slo_error_budget_consumed_events{name=GET /users/{id} latency}`:         1,
		`scalekit_health_probe_status{name=api,probe=readiness,status=warn}`:              1,
		`scalekit_health_check_up{check=search,name=api,probe=readiness}`:                 0,
		`scalekit_health_check_runs_total{name=api}`:                                      3,
		`scalekit_idempotency_requests_total{name=payments,result=replayed}`:              1,
		`scalekit_requestid_requests_total{name=api,source=header}`:                       1,
		`scalekit_ratelimit_http_requests_total{name=login,result=denied}`:                1,
		`scalekit_queue_jobs{name=jobs,queue=emails,state=pending}`:                       1,
		`scalekit_queue_oldest_pending_seconds{name=jobs,queue=emails}`:                   60,
		`scalekit_queue_periodic_ticks_total{name=cron,outcome=emitted,schedule=refresh}`: 1,
		`scalekit_queue_periodic_next_tick_timestamp_seconds{name=cron,schedule=refresh}`: 1767225720,
		`scalekit_queue_counts_up{name=jobs,queue=reports}`:                               1,
		`scalekit_retry_not_retried_total{name=api}`:                                      1,
		`scalekit_shard_cluster_vshards{cluster=c,name=orders}`:                           2,
		`scalekit_shard_map_version{name=orders}`:                                         2,
		`scalekit_shard_maps_refused_total{name=orders}`:                                  1,
		`scalekit_shard_no_key_total{name=orders}`:                                        1,
		`scalekit_shard_fanouts_failed_total{name=orders}`:                                1,
		`scalekit_shard_cluster_fanout_calls_total{cluster=a,name=orders}`:                1,
		`scalekit_shard_cluster_fanout_timeouts_total{cluster=c,name=orders}`:             1,
		`scalekit_shard_cluster_fanout_errors_total{cluster=c,name=orders}`:               1,
		`scalekit_bulkhead_in_flight{name=inventory}`:                                     1,
		`scalekit_bulkhead_rejections_total{name=inventory,reason=queue_full}`:            1,
		`scalekit_bulkhead_rejections_by_class_total{class=sheddable,name=inventory}`:     1,
		`scalekit_timeout_calls_total{name=inventory-attempt}`:                            2,
		`scalekit_timeout_timeouts_total{name=inventory-attempt}`:                         1,
		`scalekit_throttle_calls_total{name=inventory}`:                                   4,
		`scalekit_throttle_window_requests{name=inventory}`:                               4,
		`scalekit_retry_pacer_requests_total{name=inventory,result=sent}`:                 1,
		`scalekit_retry_pacer_requests_total{name=inventory,result=refused}`:              1,
		`scalekit_slo_shed_level{name=api,state=default}`:                                 1,
		`scalekit_slo_shed_total{class=sheddable,name=api}`:                               1,
		`scalekit_slo_shed_total{class=critical,name=api}`:                                0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got[`scalekit_breaker_calls_total{name=payments,result=failure}`] != 1 || got[`scalekit_cache_hits_total{name=users,tier=l1}`] != 2 ||
		got[`scalekit_ratelimit_decisions_total{name=login,result=denied}`] != 1 || got[`scalekit_breaker_state{name=payments,state=closed}`] != 1 {
		t.Fatalf("values off: %v", got)
	}
}

// Add refuses nil primitives and names taken; Close stops the reports.
func TestMetricsAddAndClose(t *testing.T) {
	m, rd := manual(t)
	var nilBreaker *breaker.Breaker
	if err := m.AddBreaker(nilBreaker); !errors.Is(err, scalekitotel.ErrInvalid) {
		t.Fatalf("AddBreaker(nil) = %v", err)
	}
	if err := m.AddCache("c", (*cache.Cache[int])(nil)); !errors.Is(err, scalekitotel.ErrInvalid) || !strings.Contains(err.Error(), "AddCache") {
		t.Fatalf("AddCache(nil) = %v", err)
	}
	lim, _ := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 1}}})
	check(t, m.AddLimiter("login", lim))
	other, _ := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 1}}})
	if err := m.AddLimiter("login", other); !errors.Is(err, scalekitotel.ErrDuplicate) || !strings.Contains(err.Error(), `"login"`) {
		t.Fatalf("AddLimiter of a name taken = %v", err)
	}
	if n := len(otelSeries(t, rd)); n == 0 {
		t.Fatal("no series before Close")
	}
	check(t, m.Close())
	check(t, m.Close())
	if s := otelSeries(t, rd); len(s) != 0 {
		t.Fatalf("series after Close: %v", s)
	}
}

// Many goroutines add primitives while collections run.
func TestMetricsConcurrentAddAndCollect(t *testing.T) {
	m, rd := manual(t)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			b, _ := breaker.New(breaker.Options{Name: fmt.Sprint("b", i)})
			check(t, m.AddBreaker(b))
			_ = b.Do(context.Background(), func(context.Context) error { return nil })
		})
		wg.Go(func() { otelSeries(t, rd) })
	}
	wg.Wait()
	s := otelSeries(t, rd)
	for i := range 32 {
		if s[fmt.Sprintf("scalekit_breaker_calls_total{name=b%d,result=success}", i)] != 1 {
			t.Fatalf("breaker b%d: %v", i, s)
		}
	}
}

// compare adds the primitives add adds to a Metrics and to a Prometheus
// Collector, and checks both give exactly the same series and values;
// it returns them.
func compare(t *testing.T, add func(a adder)) map[string]float64 {
	t.Helper()
	m, rd := manual(t)
	add(m)
	col, err := metrics.New(metrics.Options{})
	check(t, err)
	add(col)
	reg := prometheus.NewPedanticRegistry()
	check(t, reg.Register(col))

	got, want := otelSeries(t, rd), promSeries(t, reg)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			t.Errorf("missing %s", k)
		} else if g != want[k] {
			t.Errorf("%s = %v, Prometheus says %v", k, g, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("extra %s", k)
		}
	}
	return got
}

// morePrimitives makes the in-process primitives of the families beyond
// the Stats snapshots (SLOs, health probes, queue counts, schedules) and
// the middlewares, used a little, their time fixed so that the two
// collections read the same values.
func morePrimitives(t *testing.T) func(a adder) {
	ctx := context.Background()
	lim, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour}}})
	check(t, err)
	_, _ = lim.Allow(ctx, "a") // the middleware's request is denied
	clk := testclock.New()
	s, err := slo.New(slo.Options{Name: "checkout", Target: 0.75, Clock: clk})
	check(t, err)
	for i := range 100 {
		s.Record(i%5 > 1) // 40 bad of 100: burn rate 1.6
	}
	tr, err := slo.NewTracker(slo.TrackerOptions{Availability: 0.75, Latency: 0.5, LatencyThreshold: 100 * time.Millisecond, Clock: clk})
	check(t, err)
	tr.Observe("GET /users/{id}", 200, 10*time.Millisecond)
	tr.Observe("GET /users/{id}", 503, 300*time.Millisecond)

	h, err := health.New(health.Options{CacheTTL: time.Hour}) // both collections read the same results
	check(t, err)
	ok := func(context.Context) error { return nil }
	check(t, h.Add(health.Check{Name: "postgres", Func: ok}))
	check(t, h.Add(health.Check{Name: "search", Func: func(context.Context) error { return errors.New("down") }, Optional: true}))
	check(t, h.Add(health.Check{Name: "goroutines", Func: ok, Kind: health.Liveness}))

	idem, err := idempotency.NewHTTP(idempotency.HTTPOptions{Unscoped: true})
	check(t, err)
	ids, err := requestid.NewHTTP(requestid.HTTPOptions{})
	check(t, err)
	rl, err := ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: lim, Key: func(*http.Request) (string, error) { return "a", nil }})
	check(t, err)
	created := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	for _, mw := range []func(http.Handler) http.Handler{idem.Middleware, idem.Middleware, ids.Middleware, rl.Middleware} {
		r := httptest.NewRequest("POST", "/payments", strings.NewReader("a"))
		r.Header.Set("Idempotency-Key", "k1")
		r.Header.Set("X-Request-ID", "req-1")
		mw(created).ServeHTTP(httptest.NewRecorder(), r)
	}

	qclk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC))
	qb := queue.NewMemoryBackend(queue.MemoryBackendOptions{Clock: qclk})
	qc, err := queue.NewClient(queue.ClientOptions{Backend: qb, Clock: qclk})
	check(t, err)
	_, err = qc.Enqueue(ctx, "emails", "send", "x", queue.EnqueueOptions{})
	check(t, err)
	sched, err := queue.NewScheduler(queue.SchedulerOptions{Backend: qb, Clock: qclk,
		Schedules: []queue.Schedule{{Name: "refresh", Every: time.Minute, Queue: "maintenance", Kind: "refresh"}}})
	check(t, err)
	t.Cleanup(func() { _ = sched.Close() })
	check(t, sched.RunDue(ctx))
	qclk.Add(time.Minute)
	check(t, sched.RunDue(ctx))
	return func(a adder) {
		check(t, a.AddSLO(s))
		check(t, a.AddSLOTracker(tr))
		check(t, a.AddHealth("api", h, health.Readiness, health.Liveness))
		check(t, a.AddIdempotency("payments", idem))
		check(t, a.AddRequestID("api", ids))
		check(t, a.AddRateLimitMiddleware("login", rl))
		check(t, a.AddQueue("jobs", qc, "emails", "reports"))
		check(t, a.AddScheduler("cron", sched))
	}
}

// The Add methods of the families beyond Stats snapshots refuse what
// package metrics refuses: nil primitives, bad probes, no or bad queue
// names, names taken.
func TestMetricsAddErrors(t *testing.T) {
	m, _ := manual(t)
	h, err := health.New(health.Options{})
	check(t, err)
	qc, err := queue.NewClient(queue.ClientOptions{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{})})
	check(t, err)
	check(t, m.AddHealth("api", h))
	check(t, m.AddQueue("jobs", qc, "emails"))
	for name, c := range map[string]struct{ err, want error }{
		"nil middleware":       {m.AddRateLimitMiddleware("m", nil), scalekitotel.ErrInvalid},
		"nil redis limiter":    {m.AddRedisLimiter("r", nil), scalekitotel.ErrInvalid},
		"typed nil redis conc": {m.AddRedisConcurrency("r", (*ratelimitredis.Concurrency)(nil)), scalekitotel.ErrInvalid},
		"nil idempotency":      {m.AddIdempotency("i", nil), scalekitotel.ErrInvalid},
		"nil requestid":        {m.AddRequestID("r", nil), scalekitotel.ErrInvalid},
		"nil slo":              {m.AddSLO(nil), scalekitotel.ErrInvalid},
		"nil tracker":          {m.AddSLOTracker(nil), scalekitotel.ErrInvalid},
		"nil health":           {m.AddHealth("h", nil), scalekitotel.ErrInvalid},
		"bad probe":            {m.AddHealth("h", h, health.Kind(7)), scalekitotel.ErrInvalid},
		"probe twice":          {m.AddHealth("h", h, health.Readiness, health.Readiness), scalekitotel.ErrInvalid},
		"nil queue client":     {m.AddQueue("q", nil, "emails"), scalekitotel.ErrInvalid},
		"no queue":             {m.AddQueue("q", qc), scalekitotel.ErrInvalid},
		"bad queue name":       {m.AddQueue("q", qc, "bad name"), scalekitotel.ErrInvalid},
		"queue twice":          {m.AddQueue("q", qc, "emails", "emails"), scalekitotel.ErrInvalid},
		"nil scheduler":        {m.AddScheduler("s", (*queue.Scheduler)(nil)), scalekitotel.ErrInvalid},
		"nil router":           {m.AddDBRouter("r", nil), scalekitotel.ErrInvalid},
		"same health name":     {m.AddHealth("api", h), scalekitotel.ErrDuplicate},
		"same queue name":      {m.AddQueue("jobs", qc, "reports"), scalekitotel.ErrDuplicate},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", name, c.err, c.want)
		}
	}
}

// Many goroutines add SLOs, health, queue clients and schedulers, and
// record on them, while collections run; the last collection has every
// one's series.
func TestMetricsHammerMoreFamilies(t *testing.T) {
	m, rd := manual(t)
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := slo.New(slo.Options{Name: fmt.Sprint("slo", i), Target: 0.5})
			check(t, err)
			check(t, m.AddSLO(s))
			for range 10 {
				s.Record(false)
			}
			h, err := health.New(health.Options{})
			check(t, err)
			check(t, h.Add(health.Check{Name: "ok", Func: func(context.Context) error { return nil }}))
			check(t, m.AddHealth(fmt.Sprint("h", i), h, health.Readiness))
			b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
			qc, err := queue.NewClient(queue.ClientOptions{Backend: b})
			check(t, err)
			check(t, m.AddQueue(fmt.Sprint("q", i), qc, "emails"))
			for range i {
				_, err := qc.Enqueue(ctx, "emails", "send", i, queue.EnqueueOptions{})
				check(t, err)
			}
			sc, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b, Schedules: []queue.Schedule{{Name: "tick", Every: time.Hour, Queue: "maintenance", Kind: "k"}}})
			check(t, err)
			t.Cleanup(func() { _ = sc.Close() })
			check(t, m.AddScheduler(fmt.Sprint("s", i), sc))
		})
		wg.Go(func() { otelSeries(t, rd) })
	}
	wg.Wait()
	s := otelSeries(t, rd)
	for i := range n {
		for k, v := range map[string]float64{
			fmt.Sprintf("scalekit_slo_error_budget_consumed_events{name=slo%d}", i):                       10,
			fmt.Sprintf("scalekit_health_probe_status{name=h%d,probe=readiness,status=pass}", i):          1,
			fmt.Sprintf("scalekit_queue_jobs{name=q%d,queue=emails,state=pending}", i):                    float64(i),
			fmt.Sprintf("scalekit_queue_periodic_ticks_total{name=s%d,outcome=emitted,schedule=tick}", i): 0,
		} {
			if g, ok := s[k]; !ok || g != v {
				t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
			}
		}
	}
}
