package scalekitotel_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/metrics"
	scalekitotel "github.com/scalekit-go/scalekit/otel"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
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
	return func(a adder) {
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
			name := m.Name
			if m.Unit == "s" {
				name += "_seconds"
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[float64]:
				if !d.IsMonotonic || d.Temporality != metricdata.CumulativeTemporality {
					t.Fatalf("%s: a sum not monotonic and cumulative", m.Name)
				}
				for _, p := range d.DataPoints {
					out[series(name+"_total", p.Attributes.ToSlice())] = p.Value
				}
			case metricdata.Gauge[float64]:
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
	add := primitives(t)
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
	if len(got) < 100 {
		t.Fatalf("only %d series", len(got))
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
