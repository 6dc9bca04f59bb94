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
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/requestid"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/shard/shardstats"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
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
// reads the same series either way (bytes are unit "By", ratios "1").
// Attributes are the families' labels (name, queue, replica, schedule,
// result, tier, state...); instance_name is left to the Resource
// (service.instance.id). Histograms (batch sizes) are not exported: an
// observable instrument cannot be a histogram; nor is package metrics's
// HTTP middleware (RED metrics), which otelhttp covers.
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
	httpLimit   table[ratelimit.HTTPStats]
	redisLimit  table[ratelimit.RemoteStats]
	redisConc   table[ratelimit.RemoteConcurrencyStats]
	idem        table[idempotency.HTTPStats]
	requestID   table[requestid.HTTPStats]
	slo         table[slo.Stats]
	health      table[added.HealthRead]
	queueCounts table[added.QueueCount]
	scheduler   table[queue.ScheduleStats]
	dbrouter    dbrouterTables
	bulkhead    table[bulkhead.Stats]
	timeout     table[timeout.Stats]
	throttle    table[throttle.Stats]
	pacer       table[retry.PacerStats]
	shedder     table[slo.ShedderStats]
	shard       table[shardstats.Stats]
	shardVS     table[shardCluster]
	shardStore  table[shardstats.StoreStats]

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
		httpLimit:   newTable(b, httpLimitFamilies),
		redisLimit:  newTable(b, redisLimitFamilies),
		redisConc:   newTable(b, redisConcFamilies),
		idem:        newTable(b, idempotencyFamilies),
		requestID:   newTable(b, requestIDFamilies),
		slo:         newTable(b, sloFamilies),
		health:      newTable(b, healthFamilies),
		queueCounts: newTable(b, queueCountFamilies),
		scheduler:   newTable(b, schedulerFamilies),
		dbrouter:    newDBRouterTables(b),
		bulkhead:    newTable(b, bulkheadFamilies),
		timeout:     newTable(b, timeoutFamilies),
		throttle:    newTable(b, throttleFamilies),
		pacer:       newTable(b, pacerFamilies),
		shedder:     newTable(b, shedderFamilies),
		shard:       newTable(b, shardFamilies),
		shardVS:     newTable(b, shardClusterFamilies),
		shardStore:  newTable(b, shardStoreFamilies),
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

// AddBulkhead reports b's Stats under its own name
// (bulkhead.Options.Name).
func (m *Metrics) AddBulkhead(b *bulkhead.Bulkhead) error {
	if b == nil {
		return nilArg("AddBulkhead", "the *bulkhead.Bulkhead")
	}
	return addStats(m, "AddBulkhead", "the *bulkhead.Bulkhead", b, named{"bulkhead", b.Name()}, &m.bulkhead)
}

// AddTimeout reports t's Stats under name.
func (m *Metrics) AddTimeout(name string, t *timeout.Timeout) error {
	return addStats(m, "AddTimeout", "the *timeout.Timeout", t, named{"timeout", name}, &m.timeout)
}

// AddThrottler reports t's Stats under its own name
// (throttle.Options.Name).
func (m *Metrics) AddThrottler(t *throttle.Throttler) error {
	if t == nil {
		return nilArg("AddThrottler", "the *throttle.Throttler")
	}
	return addStats(m, "AddThrottler", "the *throttle.Throttler", t, named{"throttler", t.Name()}, &m.throttle)
}

// AddRetryPacer reports p's Stats under name: its requests sent at
// once, sent after waiting for the server's quota, and refused.
func (m *Metrics) AddRetryPacer(name string, p *retry.Pacer) error {
	return addStats(m, "AddRetryPacer", "the *retry.Pacer", p, named{"pacer", name}, &m.pacer)
}

// AddSLOShedder reports s's Stats under name: what it sheds now and the
// calls it shed by priority class.
func (m *Metrics) AddSLOShedder(name string, s *slo.Shedder) error {
	return addStats(m, "AddSLOShedder", "the *slo.Shedder", s, named{"slo shedder", name}, &m.shedder)
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

// AddRateLimitMiddleware reports the Stats of the rate limit middleware
// m (from ratelimit.NewHTTP) under name. Its limiter is reported on its
// own, by AddLimiter or AddRedisLimiter.
func (m *Metrics) AddRateLimitMiddleware(name string, mw *ratelimit.HTTP) error {
	return addStats(m, "AddRateLimitMiddleware", "the *ratelimit.HTTP", mw, named{"rate limit middleware", name}, &m.httpLimit)
}

// AddRedisLimiter reports the Stats of l, a *ratelimitredis.Limiter (or
// any limiter that decides on a server), under name.
func (m *Metrics) AddRedisLimiter(name string, l interface{ Stats() ratelimit.RemoteStats }) error {
	return addStats(m, "AddRedisLimiter", "the *ratelimitredis.Limiter", l, named{"redis limiter", name}, &m.redisLimit)
}

// AddRedisConcurrency reports the Stats of l, a
// *ratelimitredis.Concurrency (or any concurrency limiter leasing slots
// on a server), under name.
func (m *Metrics) AddRedisConcurrency(name string, l interface {
	Stats() ratelimit.RemoteConcurrencyStats
}) error {
	return addStats(m, "AddRedisConcurrency", "the *ratelimitredis.Concurrency", l, named{"redis concurrency limiter", name}, &m.redisConc)
}

// AddIdempotency reports the Stats of the Idempotency-Key middleware mw
// under name.
func (m *Metrics) AddIdempotency(name string, mw *idempotency.HTTP) error {
	return addStats(m, "AddIdempotency", "the *idempotency.HTTP", mw, named{"idempotency middleware", name}, &m.idem)
}

// AddRequestID reports the Stats of the request-ID middleware mw under
// name.
func (m *Metrics) AddRequestID(name string, mw *requestid.HTTP) error {
	return addStats(m, "AddRequestID", "the *requestid.HTTP", mw, named{"request-ID middleware", name}, &m.requestID)
}

// AddSLO reports s's Stats under its own name (slo.Options.Name).
// Reading them evaluates the alert rules, so OnAlert hooks may fire
// during a collection, as they would on any Stats call.
func (m *Metrics) AddSLO(s *slo.SLO) error {
	if s == nil {
		return nilArg("AddSLO", "the *slo.SLO")
	}
	return m.add("AddSLO", named{"SLO", s.Name()}, func(o metric.Observer) { m.observeSLO(o, s) })
}

// AddSLOTracker reports every objective t tracks at collection time, as
// AddSLO would, each under its own name ("<route> availability",
// "<route> latency"). The names share the name space of AddSLO.
func (m *Metrics) AddSLOTracker(t *slo.Tracker) error {
	if t == nil {
		return nilArg("AddSLOTracker", "the *slo.Tracker")
	}
	return m.add("AddSLOTracker", t, func(o metric.Observer) {
		for _, s := range t.SLOs() {
			m.observeSLO(o, s)
		}
	})
}

func (m *Metrics) observeSLO(o metric.Observer, s *slo.SLO) {
	st := s.Stats()
	m.slo.observe(o, st, []attribute.KeyValue{NameKey.String(st.Name)})
}

// AddHealth reports h's Stats under name and, for each of probes, the
// probe's status and each of its checks' result, read with h.Run during
// the collection, as package metrics's AddHealth does: the probes are
// evaluated at once, for at most 5s (with health.Options.Interval only
// the results of the background runs are read). With no probes only the
// Stats are reported. probes lists each of Readiness, Liveness and
// Startup at most once.
func (m *Metrics) AddHealth(name string, h *health.Health, probes ...health.Kind) error {
	if h == nil {
		return nilArg("AddHealth", "the *health.Health")
	}
	probes, err := added.CheckProbes(probes)
	if err != nil {
		return fmt.Errorf("%w: AddHealth: %v", ErrInvalid, err)
	}
	attrs := []attribute.KeyValue{NameKey.String(name)}
	return m.add("AddHealth", named{"health", name}, func(o metric.Observer) {
		m.health.observe(o, added.ReadHealth(h, probes), attrs)
	})
}

// AddQueue reports, under name, each of queues as the backend behind c
// counts it: jobs per state and the age of the oldest pending job, the
// queue's numbers across every worker and producer. Like package
// metrics's AddQueue it does I/O during the collection: one
// Client.Counts per queue, all at once, bounded by 2s; a queue whose
// count fails has scalekit_queue_counts_up 0 and no other series for
// that collection. queues must name at least one valid queue name, each
// once.
func (m *Metrics) AddQueue(name string, c *queue.Client, queues ...string) error {
	if c == nil {
		return nilArg("AddQueue", "the *queue.Client")
	}
	queues, err := added.CheckQueues(queues)
	if err != nil {
		return fmt.Errorf("%w: AddQueue: %v", ErrInvalid, err)
	}
	return m.add("AddQueue", named{"queue client", name}, func(o metric.Observer) {
		for _, n := range added.ReadCounts(c, queues) {
			m.queueCounts.observe(o, n, []attribute.KeyValue{NameKey.String(name), attribute.String("queue", n.Queue)})
		}
	})
}

// AddScheduler reports s's Stats under name: one series per registered
// schedule (the schedule attribute).
func (m *Metrics) AddScheduler(name string, s interface{ Stats() queue.SchedulerStats }) error {
	if added.IsNil(s) {
		return nilArg("AddScheduler", "the scheduler")
	}
	return m.add("AddScheduler", named{"scheduler", name}, func(o metric.Observer) {
		for _, st := range s.Stats().Schedules {
			m.scheduler.observe(o, st, []attribute.KeyValue{NameKey.String(name), attribute.String("schedule", st.Name)})
		}
	})
}

// dbrouterTables are a router's tables: its own, the primary's, each
// replica's, and each pool's and its Tracer's.
type dbrouterTables struct {
	router         table[routerstats.Stats]
	primary        table[routerstats.PrimaryStats]
	primaryQueries table[routerstats.TracerStats]
	primaryPool    table[routerstats.PoolStats]
	replica        table[routerstats.ReplicaStats]
	replicaQueries table[routerstats.TracerStats]
	replicaPool    table[routerstats.PoolStats]
}

func newDBRouterTables(b *builder) dbrouterTables {
	return dbrouterTables{
		router:         newTable(b, dbrouterFamilies),
		primary:        newTable(b, primaryFamilies),
		primaryQueries: newTable(b, tracerFamilies("primary")),
		primaryPool:    newTable(b, poolFamilies("primary")),
		replica:        newTable(b, replicaFamilies),
		replicaQueries: newTable(b, tracerFamilies("replica")),
		replicaPool:    newTable(b, poolFamilies("replica")),
	}
}

// AddDBRouter reports the Stats of r, a *dbrouter.Router, under name, as
// package metrics's AddDBRouter does: the router's fallbacks, token
// reads and retries; the primary's state, calls and checks; per replica
// (the replica attribute, its name in Stats) its health, WAL position
// and lag, reads and checks; each pool's connections and acquires, and
// the query counts of a pool with a dbrouter.Tracer. It returns an error
// wrapping ErrInvalid if two replicas share a name (set
// dbrouter.Options.ReplicaNames) or a name is not valid UTF-8.
func (m *Metrics) AddDBRouter(name string, r interface{ Stats() routerstats.Stats }) error {
	if added.IsNil(r) {
		return nilArg("AddDBRouter", "the *dbrouter.Router")
	}
	if err := added.CheckReplicaNames(r.Stats().Replicas); err != nil {
		return fmt.Errorf("%w: AddDBRouter: %v", ErrInvalid, err)
	}
	t := &m.dbrouter
	attrs := []attribute.KeyValue{NameKey.String(name)}
	return m.add("AddDBRouter", named{"dbrouter", name}, func(o metric.Observer) {
		st := r.Stats()
		t.router.observe(o, st, attrs)
		t.primary.observe(o, st.Primary, attrs)
		if st.Primary.Queries.Target != "" { // the pool has a Tracer
			t.primaryQueries.observe(o, st.Primary.Queries, attrs)
		}
		t.primaryPool.observe(o, st.Primary.Pool, attrs)
		for _, rep := range st.Replicas {
			ra := []attribute.KeyValue{NameKey.String(name), attribute.String("replica", rep.Name)}
			t.replica.observe(o, rep, ra)
			if rep.Queries.Target != "" {
				t.replicaQueries.observe(o, rep.Queries, ra)
			}
			t.replicaPool.observe(o, rep.Pool, ra)
		}
	})
}

// AddShard reports r's Stats under name, as package metrics's AddShard
// does: its map's version, the maps SetMap installed and refused, the
// calls refused for want of a key, and per cluster (the cluster
// attribute) the virtual shards the map in use assigns it and its fan-out
// calls, errors and timeouts. The clusters' own routers are not included:
// add each with AddDBRouter.
// r is a *shard.Router.
func (m *Metrics) AddShard(name string, r interface {
	Stats() shardstats.Stats
	VShards() map[string]int
}) error {
	if added.IsNil(r) {
		return nilArg("AddShard", "the *shard.Router")
	}
	attrs := []attribute.KeyValue{NameKey.String(name)}
	return m.add("AddShard", named{"shard", name}, func(o metric.Observer) {
		m.shard.observe(o, r.Stats(), attrs)
		var fan map[string]shardstats.FanOutStats
		if f, ok := r.(interface {
			FanOutStats() map[string]shardstats.FanOutStats
		}); ok {
			fan = f.FanOutStats()
		}
		for cl, n := range r.VShards() {
			m.shardVS.observe(o, shardCluster{vshards: n, fan: fan[cl]}, []attribute.KeyValue{NameKey.String(name), attribute.String("cluster", cl)})
		}
	})
}

// AddShardStore reports s's Stats under name, as package metrics's
// AddShardStore does: the notifications, polls and reconnects of its
// Watch, the writes its Do retried after a move's fence refused them, and
// the moves finished with the last one's fence. s is a *shard.MapStore.
func (m *Metrics) AddShardStore(name string, s interface{ Stats() shardstats.StoreStats }) error {
	if added.IsNil(s) {
		return nilArg("AddShardStore", "the *shard.MapStore")
	}
	attrs := []attribute.KeyValue{NameKey.String(name)}
	return m.add("AddShardStore", named{"shard store", name}, func(o metric.Observer) {
		m.shardStore.observe(o, s.Stats(), attrs)
	})
}
