package metrics

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/requestid"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// ErrInvalid is wrapped by errors about bad options or arguments (a nil
// primitive, a label value that is not valid UTF-8).
var ErrInvalid = errors.New("metrics: invalid")

// ErrDuplicate is wrapped by the error an Add method returns when the same
// primitive, or another of its kind under the same name, was added already:
// their series would collide.
var ErrDuplicate = errors.New("metrics: duplicate")

// The label names every metric carries.
const (
	// InstanceLabel is the constant label holding Options.Instance. It is
	// not "instance" because Prometheus sets that label on every scraped
	// target (and would rename ours to exported_instance).
	InstanceLabel = "instance_name"
	// NameLabel is the variable label holding the name of the primitive
	// instance: the breaker's or SLO's own name, or the name given to Add.
	NameLabel = "name"
)

// Options configures New. The zero value works.
type Options struct {
	// Instance is the value of the constant label instance_name on every
	// metric: the name of this process or service instance (a pod name,
	// "api-1"). Must be valid UTF-8. Default: "", and the label is left
	// out.
	Instance string
}

// Collector is a prometheus.Collector for scalekit primitives: add the
// primitives with its Add methods, register it on a prometheus.Registry of
// your own, and every scrape reads each primitive's Stats snapshot and
// turns it into metrics. Nothing runs between scrapes and nothing touches
// the primitives' hot paths. The package never registers anything on the
// global registry.
//
// Each Add method takes a name for the name label (or uses the
// primitive's own, for breakers and SLOs), unique among the primitives of
// its kind: adding a name taken returns an error wrapping ErrDuplicate.
//
// Describe always sends the descriptors of every metric family the package
// defines, whatever was added, so primitives may be added after the
// Collector was registered, and a pedantic registry accepts it. Register
// one Collector per registry and Instance (two with the same Instance
// describe the same metrics, and the registry refuses the second).
//
// It is safe for concurrent use: Add methods may run during a scrape.
type Collector struct {
	descs []*prometheus.Desc // every family, in the order they were made

	breaker     table[breaker.Stats]
	retrier     table[retry.Stats]
	budget      table[retry.BudgetStats]
	local       table[ratelimit.LocalStats]
	concurrency table[ratelimit.ConcurrencyStats]
	adaptive    table[ratelimit.AdaptiveStats]
	bulkhead    table[bulkhead.Stats]
	timeout     table[timeout.Stats]
	throttle    table[throttle.Stats]
	pacer       table[retry.PacerStats]
	shedder     table[slo.ShedderStats]
	httpLimit   table[ratelimit.HTTPStats]
	redisLimit  table[ratelimit.RemoteStats]
	redisConc   table[ratelimit.RemoteConcurrencyStats]
	cache       table[cache.Stats]
	batch       table[batch.Stats]
	idem        table[idempotency.HTTPStats]
	requestID   table[requestid.HTTPStats]
	slo         table[slo.Stats]
	health      table[healthScrape]
	queueWorker table[queue.Stats]
	queueCounts table[queueCount]
	scheduler   table[queue.ScheduleStats]
	dbrouter    dbrouterTables
	shard       shardTables

	mu      sync.Mutex
	sources []source
	seen    added.Set
}

// source is one added primitive: collect sends its metrics.
type source struct {
	collect func(ch chan<- prometheus.Metric)
}

// named is the duplicate-check key of a primitive added under a name.
type named struct{ kind, name string }

// AddedAs implements added.Named.
func (n named) AddedAs() (kind, name string) { return n.kind, n.name }

// New returns a Collector with no primitives, or an error naming the bad
// option.
func New(o Options) (*Collector, error) {
	if !utf8.ValidString(o.Instance) {
		return nil, fmt.Errorf("%w: Options.Instance must be valid UTF-8, got %q", ErrInvalid, o.Instance)
	}
	b := &builder{}
	if o.Instance != "" {
		b.constLabels = prometheus.Labels{InstanceLabel: o.Instance}
	}
	c := &Collector{
		breaker:     newTable(b, breakerFamilies),
		retrier:     newTable(b, retrierFamilies),
		budget:      newTable(b, budgetFamilies),
		local:       newTable(b, localFamilies),
		concurrency: newTable(b, concurrencyFamilies),
		adaptive:    newTable(b, adaptiveFamilies),
		bulkhead:    newTable(b, bulkheadFamilies),
		timeout:     newTable(b, timeoutFamilies),
		throttle:    newTable(b, throttleFamilies),
		pacer:       newTable(b, pacerFamilies),
		shedder:     newTable(b, shedderFamilies),
		httpLimit:   newTable(b, httpLimitFamilies),
		redisLimit:  newTable(b, redisLimitFamilies),
		redisConc:   newTable(b, redisConcFamilies),
		cache:       newTable(b, cacheFamilies),
		batch:       newTable(b, batchFamilies),
		idem:        newTable(b, idempotencyFamilies),
		requestID:   newTable(b, requestIDFamilies),
		slo:         newTable(b, sloFamilies),
		health:      newTable(b, healthFamilies),
		queueWorker: newTable(b, queueWorkerFamilies, "queue"),
		queueCounts: newTable(b, queueCountFamilies, "queue"),
		scheduler:   newTable(b, schedulerFamilies, "schedule"),
		dbrouter:    newDBRouterTables(b),
		shard:       newShardTables(b),
	}
	c.descs = b.all
	return c, nil
}

// Describe sends the descriptor of every metric family the package
// defines. It implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the Stats of every added primitive and sends its metrics.
// It implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	srcs := slices.Clone(c.sources)
	c.mu.Unlock()
	for _, s := range srcs {
		s.collect(ch)
	}
}

// add registers a source under key (a named or a pointer to the primitive),
// refusing a key seen before.
func (c *Collector) add(method string, key any, collect func(ch chan<- prometheus.Metric)) error {
	if n, ok := key.(named); ok && !utf8.ValidString(n.name) {
		return fmt.Errorf("%w: %s: the name must be valid UTF-8, got %q", ErrInvalid, method, n.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.seen.Add(ErrDuplicate, method, key); err != nil {
		return err
	}
	c.sources = append(c.sources, source{collect: collect})
	return nil
}

// isNil reports whether v is nil or a nil pointer in an interface.
func isNil(v any) bool { return added.IsNil(v) }

// addStats adds p, a primitive whose metrics are t's families of its
// Stats, under key (whose name is the name label); what names p in the
// error for a nil p.
func addStats[S any, P interface{ Stats() S }](c *Collector, method, what string, p P, key named, t *table[S]) error {
	if isNil(p) {
		return nilArg(method, what)
	}
	return c.add(method, key, func(ch chan<- prometheus.Metric) { t.collect(ch, p.Stats(), key.name) })
}

// nilArg is the error for a nil primitive.
func nilArg(method, what string) error {
	return fmt.Errorf("%w: %s: %s is nil", ErrInvalid, method, what)
}

// builder makes the descriptors of New, all with the same constant labels
// and NameLabel first, and remembers them for Describe.
type builder struct {
	constLabels prometheus.Labels
	all         []*prometheus.Desc
}

func (b *builder) desc(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, append([]string{NameLabel}, labels...), b.constLabels)
	b.all = append(b.all, d)
	return d
}

// emit sends one sample. A label value Prometheus refuses (not UTF-8: a
// check or route name from outside) becomes an invalid metric, which the
// registry reports as a gather error, rather than a panic in Collect.
func emit(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
