package scalekitotel

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
)

// ErrDuplicate is wrapped by the error an Add method returns when the same
// primitive, or another of its kind under the same name, was added
// already: their series would collide.
var ErrDuplicate = fmt.Errorf("scalekitotel: duplicate")

// NameKey is the attribute holding the name of a primitive instance
// (the name label of package metrics).
const NameKey = attribute.Key("name")

// MetricsOptions configures NewMetrics. The zero value works.
type MetricsOptions struct {
	// MeterProvider makes the instruments. Default: the global one
	// (otel.GetMeterProvider), a no-op until the program sets one.
	MeterProvider metric.MeterProvider
}

// Metrics exports the Stats snapshots of scalekit primitives through the
// OpenTelemetry metric API, as package metrics's Collector does for
// Prometheus: add the primitives with its Add methods, and every
// collection of the MeterProvider's readers reads each primitive's Stats
// (observable instruments, one callback): nothing runs between
// collections and nothing touches the primitives' hot paths.
//
// The instruments have package metrics's names and units: the name of an
// instrument is its Prometheus family's without the _total of counters
// and without the unit's suffix (_seconds, unit "s"), which is how the
// OpenTelemetry Prometheus exporter writes them back, so a dashboard
// reads the same series either way. Attributes are the families' labels
// (name, queue, result, tier, state...); instance_name is left to the
// Resource (service.instance.id). Histograms (batch sizes) are not
// exported: an observable instrument cannot be a histogram.
//
// It is safe for concurrent use: Add methods may run during a collection.
type Metrics struct {
	reg metric.Registration

	breaker     table[breaker.Stats]
	retrier     table[retry.Stats]
	budget      table[retry.BudgetStats]
	local       table[ratelimit.LocalStats]
	concurrency table[ratelimit.ConcurrencyStats]
	adaptive    table[ratelimit.AdaptiveStats]
	cache       table[cache.Stats]
	batch       table[batch.Stats]
	queueWorker table[queue.Stats]

	mu      sync.Mutex
	sources []func(o metric.Observer)
	seen    added.Set
}

// NewMetrics makes every instrument the package defines on o's
// MeterProvider and registers their one callback; Close unregisters it.
func NewMetrics(o MetricsOptions) (*Metrics, error) {
	mp := o.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	b := &builder{meter: mp.Meter(ScopeName)}
	m := &Metrics{
		breaker:     newTable(b, breakerFamilies),
		retrier:     newTable(b, retrierFamilies),
		budget:      newTable(b, budgetFamilies),
		local:       newTable(b, localFamilies),
		concurrency: newTable(b, concurrencyFamilies),
		adaptive:    newTable(b, adaptiveFamilies),
		cache:       newTable(b, cacheFamilies),
		batch:       newTable(b, batchFamilies),
		queueWorker: newTable(b, queueWorkerFamilies),
	}
	if b.err != nil {
		return nil, b.err
	}
	reg, err := b.meter.RegisterCallback(m.observe, b.all...)
	if err != nil {
		return nil, fmt.Errorf("scalekitotel: registering the metrics callback: %w", err)
	}
	m.reg = reg
	return m, nil
}

// Close unregisters the callback: the instruments report nothing more.
// Calling it again does nothing.
func (m *Metrics) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reg == nil {
		return nil
	}
	err := m.reg.Unregister()
	m.reg = nil
	return err
}

func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	m.mu.Lock()
	srcs := m.sources
	m.mu.Unlock()
	for _, s := range srcs {
		s(o)
	}
	return nil
}

// named is the duplicate-check key of a primitive added under a name.
type named struct{ kind, name string }

// AddedAs implements added.Named.
func (n named) AddedAs() (kind, name string) { return n.kind, n.name }

// add registers a source under key (a named or the primitive itself),
// refusing a key seen before.
func (m *Metrics) add(method string, key any, observe func(o metric.Observer)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.seen.Add(ErrDuplicate, method, key); err != nil {
		return err
	}
	// Copy on write: a collection in progress keeps the slice it read.
	m.sources = append(m.sources[:len(m.sources):len(m.sources)], observe)
	return nil
}

// addStats adds p, whose metrics are t's families of its Stats, under
// key, whose name is the name attribute.
func addStats[S any, P interface{ Stats() S }](m *Metrics, method, what string, p P, key named, t *table[S]) error {
	if added.IsNil(p) {
		return nilArg(method, what)
	}
	attrs := []attribute.KeyValue{NameKey.String(key.name)}
	return m.add(method, key, func(o metric.Observer) { t.observe(o, p.Stats(), attrs) })
}

func nilArg(method, what string) error {
	return fmt.Errorf("%w: %s: %s is nil", ErrInvalid, method, what)
}

// AddBreaker reports b's Stats under its own name (breaker.Options.Name).
func (m *Metrics) AddBreaker(b *breaker.Breaker) error {
	if b == nil {
		return nilArg("AddBreaker", "the *breaker.Breaker")
	}
	return m.add("AddBreaker", named{"breaker", b.Name()}, func(o metric.Observer) {
		st := b.Stats()
		m.breaker.observe(o, st, []attribute.KeyValue{NameKey.String(st.Name)})
	})
}

// AddBreakerGroup reports every breaker g holds at collection time, each
// under its key (its Name).
func (m *Metrics) AddBreakerGroup(g *breaker.Group) error {
	if g == nil {
		return nilArg("AddBreakerGroup", "the *breaker.Group")
	}
	return m.add("AddBreakerGroup", g, func(o metric.Observer) {
		for _, st := range g.Stats() {
			m.breaker.observe(o, st, []attribute.KeyValue{NameKey.String(st.Name)})
		}
	})
}

// AddCache reports the Stats of a cache (any *cache.Cache[V]) under name.
func (m *Metrics) AddCache(name string, c interface{ Stats() cache.Stats }) error {
	return addStats(m, "AddCache", "the cache", c, named{"cache", name}, &m.cache)
}

// AddRetrier reports r's Stats under name. A nil r reports the default
// Retrier, the one the package-level retry.Do uses.
func (m *Metrics) AddRetrier(name string, r *retry.Retrier) error {
	attrs := []attribute.KeyValue{NameKey.String(name)}
	return m.add("AddRetrier", named{"retrier", name}, func(o metric.Observer) { m.retrier.observe(o, r.Stats(), attrs) })
}

// AddRetryBudget reports b's Stats under name.
func (m *Metrics) AddRetryBudget(name string, b *retry.Budget) error {
	return addStats(m, "AddRetryBudget", "the *retry.Budget", b, named{"retry budget", name}, &m.budget)
}

// AddLimiter reports l's Stats under name.
func (m *Metrics) AddLimiter(name string, l *ratelimit.Local) error {
	return addStats(m, "AddLimiter", "the *ratelimit.Local", l, named{"limiter", name}, &m.local)
}

// AddConcurrency reports l's Stats under name.
func (m *Metrics) AddConcurrency(name string, l *ratelimit.Concurrency) error {
	return addStats(m, "AddConcurrency", "the *ratelimit.Concurrency", l, named{"concurrency limiter", name}, &m.concurrency)
}

// AddAdaptive reports a's Stats under name.
func (m *Metrics) AddAdaptive(name string, a *ratelimit.Adaptive) error {
	return addStats(m, "AddAdaptive", "the *ratelimit.Adaptive", a, named{"adaptive limiter", name}, &m.adaptive)
}

// AddQueueWorker reports w's Stats under name, one series per queue the
// worker consumes (the queue attribute).
func (m *Metrics) AddQueueWorker(name string, w *queue.Worker) error {
	if w == nil {
		return nilArg("AddQueueWorker", "the *queue.Worker")
	}
	return m.add("AddQueueWorker", named{"queue worker", name}, func(o metric.Observer) {
		for _, st := range w.Stats() {
			m.queueWorker.observe(o, st, []attribute.KeyValue{NameKey.String(name), attribute.String("queue", st.Queue)})
		}
	})
}

// AddBatch reports the Stats of a batcher (any *batch.Loader[K, V]) under
// name.
func (m *Metrics) AddBatch(name string, l interface{ Stats() batch.Stats }) error {
	return addStats(m, "AddBatch", "the loader", l, named{"batch loader", name}, &m.batch)
}
