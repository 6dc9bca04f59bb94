package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cacheredis"
	"github.com/scalekit-go/scalekit/console"
	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencypg"
	"github.com/scalekit-go/scalekit/idempotency/idempotencyredis"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/policy"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/queue/queueredis"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
	"github.com/scalekit-go/scalekit/requestid"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/shard"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// wire builds every primitive the service uses, from the stores up, and
// stops at the first error. Each step registers the Prometheus collectors
// and health checks of what it built; what it opens is listed by
// resources, for the shutdown coordinator to close (closeAll, when
// start-up fails).
func (a *app) wire(ctx context.Context) error {
	for _, step := range []func(context.Context) error{
		a.newProbesAndMetrics, // health probes and the Prometheus collector, for the steps below
		a.buildTelemetry,      // OpenTelemetry: traces (off unless Config or OTEL_* env asks), for the steps below
		a.connectRedis,        // rate limits, the cache's L2; idempotency keys and jobs without PostgreSQL
		a.connectDatabase,     // users, posts and payments: replica reads, primary writes
		a.buildUserCache,      // cache-aside: L1 + Redis L2 with fill leases
		a.buildAuthorLoader,   // a page's authors in one query
		a.buildPayments,       // the flaky provider behind a policy pipeline: bulkhead, throttler, timeouts, retries, breaker
		a.buildEdgeCache,      // surrogate keys; the edge's purger (Config.PurgeURL)
		a.buildQueue,          // jobs: the backend, the client, the worker and its handlers
		a.buildSchedules,      // periodic jobs: the payment totals' refresh
		a.buildIdempotency,    // Idempotency-Key on POST /payments
		a.buildRateLimits,     // per client, across the fleet on Redis
		a.buildSLO,            // per-route availability and latency objectives
		a.buildReadYourWrites, // the router's token cookie
		a.buildHTTPMetrics,    // request IDs, RED metrics per route, Go runtime and process metrics
		a.addOTelMetrics,      // the primitives' Stats as OpenTelemetry metrics, with a MeterProvider
		a.buildConsole,        // the operations page at /admin/, with Config.ConsoleToken
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// newProbesAndMetrics creates the Prometheus registry with the metrics
// collector the other steps register with, and the health probes, whose
// own metrics it registers.
func (a *app) newProbesAndMetrics(context.Context) error {
	var err error
	a.registry = prometheus.NewRegistry()
	if a.metrics, err = metrics.New(metrics.Options{Instance: a.cfg.Addr}); err != nil {
		return err
	}
	if err := a.registry.Register(a.metrics); err != nil {
		return err
	}
	if a.health, err = health.New(health.Options{ServiceID: "scalekit-example", Logger: a.log}); err != nil {
		return err
	}
	return a.metrics.AddHealth("service", a.health)
}

// buildTelemetry builds the service's OpenTelemetry: Config's
// TracerProvider and MeterProvider, or else the providers the OTEL_*
// environment asks for (telemetry.go); none, by default, leaves
// a.tel nil and every primitive untraced. The steps below put its spans
// on each primitive: the pgx queries with dbrouter's decision, the
// cache loads, the author batches, the queue's enqueues and attempts
// (one trace from the request to its jobs), the breaker's state
// changes, the retries and the rate limiter's denials; routes puts the
// HTTP server spans around the API.
func (a *app) buildTelemetry(ctx context.Context) error {
	tp, mp := a.cfg.TracerProvider, a.cfg.MeterProvider
	var shutdown func(context.Context) error
	if tp == nil && mp == nil {
		var err error
		if tp, mp, shutdown, err = telemetryFromEnv(ctx, a.out); err != nil {
			return err
		}
	}
	var err error
	if a.tel, err = newTelemetry(tp, mp, shutdown); err != nil {
		if shutdown != nil {
			err = errors.Join(err, shutdown(ctx))
		}
		return err
	}
	return nil
}

// addOTelMetrics adds the primitives built above to the OpenTelemetry
// Metrics, when there is a MeterProvider (Config's or OTEL_METRICS_EXPORTER's):
// the same series as the Prometheus collector's, for an OpenTelemetry
// pipeline.
func (a *app) addOTelMetrics(context.Context) error {
	if a.tel == nil || a.tel.metrics == nil {
		return nil
	}
	m := a.tel.metrics
	errs := []error{m.AddHealth("service", a.health), m.AddCache("users", a.users), m.AddBatch("authors", a.authors),
		m.AddBreaker(a.payBr), m.AddRetrier("provider", a.payRetry), m.AddRetryBudget("provider", a.payBudget),
		m.AddQueueWorker("worker", a.worker), m.AddQueue("jobs", a.jobs, countedQueues...),
		m.AddScheduler("scheduler", a.cron), m.AddIdempotency("payments", a.idem), m.AddRateLimitMiddleware("clients", a.rl),
		m.AddSLOTracker(a.tracker), m.AddRequestID("api", a.ids)}
	switch {
	case a.shards != nil:
		for _, c := range a.clusters {
			errs = append(errs, m.AddDBRouter(c.name, c.router))
			if c.worker != nil {
				errs = append(errs, m.AddQueueWorker("worker_"+c.name, c.worker))
			}
		}
		errs = append(errs, m.AddShard("users", a.shards))
	case a.router != nil:
		errs = append(errs, m.AddDBRouter("db", a.router))
	}
	if a.payBulkhead != nil { // the pipeline (not with Config.NoPipeline)
		errs = append(errs, m.AddBulkhead(a.payBulkhead), m.AddThrottler(a.payThrottle),
			m.AddTimeout("provider_total", a.payTotal), m.AddTimeout("provider_attempt", a.payAttempt))
	}
	if a.redisLimiter != nil {
		errs = append(errs, m.AddRedisLimiter("clients", a.redisLimiter))
	}
	if a.localLimiter != nil {
		errs = append(errs, m.AddLimiter("clients", a.localLimiter))
	}
	return errors.Join(errs...)
}

// buildConsole builds the operations page (package console) when
// Config.ConsoleToken is set, and adds the primitives an operator looks
// at: the provider's breaker, the users cache, the jobs' queues, the
// database router, the SLOs and the health probes. routes mounts it at
// /admin/, where a request without "Authorization: Bearer
// <token>" gets 401. Without a token there is no console (404): its
// breaker actions are not for anyone who can reach the port.
func (a *app) buildConsole(ctx context.Context) error {
	if a.cfg.ConsoleToken == "" {
		return nil
	}
	want := []byte("Bearer " + a.cfg.ConsoleToken)
	var err error
	if a.console, err = console.New(console.Options{Title: "scalekit example", Logger: a.log,
		Authorize: func(r *http.Request) bool {
			return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1
		}}); err != nil {
		return err
	}
	c := a.console
	errs := []error{c.AddHealth("service", a.health, health.Readiness, health.Liveness), c.AddBreaker(a.payBr),
		c.AddCache("users", a.users), c.AddBatch("authors", a.authors), c.AddQueueWorker("worker", a.worker),
		c.AddQueue("jobs", a.jobs, countedQueues...), c.AddIdempotency("payments", a.idem), c.AddSLOTracker(a.tracker)}
	switch {
	case a.shards != nil: // each cluster's router, and its worker after the first
		for _, cl := range a.clusters {
			errs = append(errs, c.AddDBRouter(cl.name, cl.router))
			if cl.worker != nil {
				errs = append(errs, c.AddQueueWorker("worker_"+cl.name, cl.worker))
			}
		}
	case a.router != nil:
		errs = append(errs, c.AddDBRouter("db", a.router))
	}
	if a.redisLimiter != nil {
		errs = append(errs, c.AddLimiter("clients", a.redisLimiter))
	} else if a.localLimiter != nil {
		errs = append(errs, c.AddLimiter("clients", a.localLimiter))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The sampler behind the pages' charts runs until the shutdown
	// coordinator closes the console (resources), not for ctx: that is
	// start-up's.
	return c.Start(context.WithoutCancel(ctx))
}

// connectRedis opens the Redis client, when there is a Redis, with an
// optional health check: without Redis the service degrades, it does not
// stop.
func (a *app) connectRedis(context.Context) error {
	if a.in.redisURL == "" {
		return nil
	}
	opt, err := redis.ParseURL(a.in.redisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.ContextTimeoutEnabled = true
	a.rdb = redis.NewClient(opt)
	a.health.Add(health.Check{Name: "redis", Optional: true, Timeout: time.Second,
		Func: func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() }})
	return nil
}

// connectDatabase opens PostgreSQL through the router (reads on the
// replica, writes on the primary, read-your-writes tokens), creates the
// schema, and waits until the replicas have it. Without a database the
// users, posts and payments live in memory.
func (a *app) connectDatabase(ctx context.Context) error {
	if a.in.dbURL == "" {
		a.repo = newMemRepo()
		return nil
	}
	if len(a.in.shards) > 0 {
		return a.connectShards(ctx) // users and posts by user ID over several clusters (shards.go)
	}
	var err error
	if a.router, err = dbrouter.Open(ctx, a.in.dbURL, a.in.replicaURLs, dbrouter.Options{Logger: a.log, SlowQuery: 200 * time.Millisecond, TokenWait: 50 * time.Millisecond,
		RouteTracer: a.tel.routeTracer(), ConfigurePool: a.configurePool}); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := migrate(ctx, a.router.PrimaryPool()); err != nil {
		return err
	}
	// No replica takes reads before it has replayed the migrations (else
	// "relation users does not exist"), and readiness waits for that.
	if err := a.router.Fence(ctx); err != nil {
		return err
	}
	a.repo = &pgRepo{db: a.router}
	a.health.Add(health.Check{Name: "postgres", Timeout: time.Second,
		Func: func(ctx context.Context) error {
			if err := a.router.PrimaryPool().Ping(ctx); err != nil {
				return err
			}
			return a.router.Ready(ctx)
		}})
	return a.metrics.AddDBRouter("db", a.router)
}

// configurePool is dbrouter.Options.ConfigurePool: Config.DBPoolSize
// connections at most when set, unless the URL says (pool_max_conns), and
// the tracing hooks when tracing is on.
func (a *app) configurePool(target string, cfg *pgxpool.Config) error {
	if a.cfg.DBPoolSize > 0 && !strings.Contains(cfg.ConnString(), "pool_max_conns") {
		cfg.MaxConns = int32(a.cfg.DBPoolSize)
	}
	return a.tel.configurePool(target, cfg)
}

// buildUserCache builds the user cache: L1 + Redis L2 with fill leases,
// in a versioned namespace.
func (a *app) buildUserCache(context.Context) error {
	var err error
	co := cache.Options{TTL: time.Minute, MaxEntries: 50_000, MaxConcurrentLoads: 32, Logger: a.log, Tracer: a.tel.cache("users")}
	if a.rdb != nil {
		if co.Store, err = cacheredis.New(cacheredis.Options{Client: a.rdb, Prefix: "example:cache"}); err != nil {
			return err
		}
	}
	if a.users, err = cache.New[userCopy](co); err != nil {
		return err
	}
	a.userNS = a.users.Namespace("user")
	return a.metrics.AddCache("users", a.users)
}

// buildAuthorLoader batches the authors of a page of posts into one query.
func (a *app) buildAuthorLoader(context.Context) error {
	var err error
	if a.authors, err = batch.New(a.repo.authors, batch.Options{Wait: time.Millisecond, MaxBatch: 500, Tracer: a.tel.batch("authors")}); err != nil {
		return err
	}
	return a.metrics.AddBatch("authors", a.authors)
}

// buildPayments starts the payment provider, deliberately flaky, and puts
// it behind a policy pipeline in the standard order (package policy):
//
//  1. a bulkhead: at most ProviderConcurrency charges at once, as many
//     more waiting up to 500ms, the waiting ones of a lower priority
//     class shed first (withPriority: payments are critical unless the
//     caller lowers them), so a slow provider holds a fixed share of the
//     service and critical payments wait behind critical ones only;
//  2. an adaptive throttler: when the provider refuses charges, refuse
//     some locally, sheddable ones first;
//  3. a total timeout (1s) over
//  4. the retries (3 attempts, within a retry budget) of
//  5. the breaker, and
//  6. an attempt timeout (300ms, 60 times the provider's normal latency).
//
// With Config.NoPipeline, only the retries and the breaker, nested by
// hand (what the service did before the pipeline): the comparison of
// shed_test.go.
func (a *app) buildPayments(context.Context) error {
	var err error
	if a.provider, err = startProvider(a.cfg.ProviderLatency, a.cfg.ProviderConcurrency); err != nil {
		return err
	}
	if a.payBr, err = breaker.New(breaker.Options{Name: "provider", FailureRateThreshold: 0.5, MinimumCalls: 20, OpenTimeout: 2 * time.Second, Logger: a.log,
		OnStateChange: a.tel.onStateChange()}); err != nil {
		return err
	}
	if a.payBudget, err = retry.NewBudget(retry.BudgetOptions{Ratio: 0.2}); err != nil {
		return err
	}
	if a.payRetry, err = retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Exponential{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond}, Budget: a.payBudget, OnRetry: a.tel.onRetry(),
		Retryable: policy.Retryable}); err != nil { // not an open breaker
		return err
	}
	if err := errors.Join(a.metrics.AddBreaker(a.payBr), a.metrics.AddRetrier("provider", a.payRetry), a.metrics.AddRetryBudget("provider", a.payBudget)); err != nil {
		return err
	}
	if a.cfg.NoPipeline {
		a.payPolicy = policy.Compose(a.payRetry, a.payBr)
		return nil
	}
	if a.payBulkhead, err = bulkhead.New(bulkhead.Options{Name: "provider", MaxConcurrent: a.cfg.ProviderConcurrency, MaxWait: 500 * time.Millisecond, Logger: a.log}); err != nil {
		return err
	}
	if a.payThrottle, err = throttle.New(throttle.Options{Name: "provider", Window: 30 * time.Second, Logger: a.log}); err != nil {
		return err
	}
	if a.payTotal, err = timeout.New(timeout.Options{Timeout: time.Second, Kind: timeout.Total}); err != nil {
		return err
	}
	if a.payAttempt, err = timeout.New(timeout.Options{Timeout: 300 * time.Millisecond, Kind: timeout.Attempt}); err != nil {
		return err
	}
	a.payPolicy = policy.Compose(a.payBulkhead, a.payThrottle, a.payTotal, a.payRetry, a.payBr, a.payAttempt)
	return errors.Join(a.metrics.AddBulkhead(a.payBulkhead), a.metrics.AddThrottler(a.payThrottle),
		a.metrics.AddTimeout("provider_total", a.payTotal), a.metrics.AddTimeout("provider_attempt", a.payAttempt))
}

// countedQueues are the queues whose jobs the metrics and the console
// count (Client.Counts).
var countedQueues = []string{"emails", "receipts", "maintenance", "ledger"}

// topicPaymentCaptured is the domain event of a recorded payment
// (queue.Client.Publish), delivered to the queues subscribed to it.
const topicPaymentCaptured = "payment.captured"

// buildQueue builds the jobs: the backend, a client to enqueue and a
// worker with its handlers (started by Run, as -role says).
func (a *app) buildQueue(ctx context.Context) error {
	if err := a.openQueueBackend(ctx); err != nil {
		return err
	}
	var err error
	// A job carries the request ID of the request that enqueued it (in its
	// metadata), and the worker puts it back into the attempt's ctx: the
	// job's log lines share the request's ID. With tracing, it carries
	// the trace context too: the attempt's span is in the request's trace.
	if a.jobs, err = queue.NewClient(queue.ClientOptions{Backend: a.backend,
		Middleware: append([]func(queue.EnqueueFunc) queue.EnqueueFunc{queue.RequestIDClient()}, a.tel.enqueue()...)}); err != nil {
		return err
	}
	if a.worker, err = queue.NewWorker(queue.WorkerOptions{Backend: a.backend, Logger: a.log,
		Middleware: append([]func(queue.AttemptFunc) queue.AttemptFunc{queue.RequestIDWorker()}, a.tel.attempt()...),
		Queues: map[string]queue.Options{"emails": {Concurrency: 8}, "receipts": {Concurrency: 4}, "maintenance": {Concurrency: 1}, "invalidations": {Concurrency: 2},
			"ledger": {Concurrency: 2}}}); err != nil {
		return err
	}
	if err := a.handleJobs(); err != nil {
		return err
	}
	if err := a.buildShardQueues(ctx); err != nil { // sharded: each cluster's queue and worker
		return err
	}
	// The ledger queue subscribes to the payments' domain event: durable
	// and fleet-wide, so every instance subscribing again is harmless.
	if err := a.jobs.Subscribe(ctx, topicPaymentCaptured, "ledger"); err != nil {
		return err
	}
	if err := a.metrics.AddQueueWorker("worker", a.worker); err != nil {
		return err
	}
	return a.metrics.AddQueue("jobs", a.jobs, countedQueues...)
}

// buildSchedules builds the scheduler of the periodic jobs (started with
// the worker, as -role says): the refresh of the payment totals, one at
// a time (a tick that comes while the last refresh runs is skipped).
func (a *app) buildSchedules(context.Context) error {
	refresh := queue.Schedule{Name: "refresh-payment-totals", Cron: "* * * * *", Queue: "maintenance", Kind: "stats:refresh",
		MaxAttempts: 3, Timeout: time.Minute, Overlap: queue.OverlapSkip}
	if a.cfg.StatsRefresh > 0 {
		refresh.Cron, refresh.Every = "", a.cfg.StatsRefresh
	}
	var err error
	if a.cron, err = queue.NewScheduler(queue.SchedulerOptions{Backend: a.backend, Logger: a.log, Schedules: []queue.Schedule{refresh},
		Middleware: a.tel.enqueue()}); err != nil {
		return err
	}
	return a.metrics.AddScheduler("scheduler", a.cron)
}

// openQueueBackend opens the jobs' backend: PostgreSQL (a payment's
// receipt job is enqueued in the payment's transaction), or Redis, or
// memory.
func (a *app) openQueueBackend(ctx context.Context) error {
	switch {
	case a.router != nil:
		b, err := queuepg.New(queuepg.Options{Pool: a.router.PrimaryPool(), SweepInterval: time.Minute, Logger: a.log})
		if err != nil {
			return err
		}
		a.backend = b // from here on resources closes it, if Migrate fails too
		return b.Migrate(ctx)
	case a.rdb != nil:
		b, err := queueredis.New(queueredis.Options{Client: a.rdb, Prefix: "example:queue"})
		if err != nil {
			return err
		}
		a.backend = b
	default:
		a.backend = queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	}
	return nil
}

// handleJobs registers the worker's handlers: sending an email (it
// reports its progress and returns the message id, which GET /jobs/{id}
// shows; it fails for good while chaos has the mail server reject
// messages), refreshing the payment totals, queueing a payment's receipt
// email once, and the ledger's handling of the payment.captured event.
func (a *app) handleJobs() error {
	if err := a.handleUserChanged(a.worker); err != nil {
		return err
	}
	if err := queue.HandleResult(a.worker, "email:send", func(ctx context.Context, j *queue.Job[Email]) (EmailSent, error) {
		// Progress is best effort, but a lost lease means another worker
		// has the job: stop before sending.
		if err := j.Progress(ctx, 10, "connecting to the mail server"); errors.Is(err, queue.ErrLeaseLost) {
			return EmailSent{}, err
		}
		time.Sleep(2 * time.Millisecond) // the SMTP call
		// A 5xx reply (chaos): retrying the same message cannot help.
		if a.mailReject.Load() {
			return EmailSent{}, queue.Permanent(fmt.Errorf("mail server rejected %s: 550 mailbox unavailable", j.Args.To))
		}
		a.emails.Add(1)
		a.log.LogAttrs(ctx, slog.LevelInfo, "email sent", slog.String("job_id", j.ID), slog.String("subject", j.Args.Subject))
		_ = j.Progress(ctx, 100, "sent")
		return EmailSent{MessageID: "<" + j.ID + "@mail.example.com>"}, nil
	}); err != nil {
		return err
	}
	if err := queue.Handle(a.worker, "stats:refresh", func(ctx context.Context, _ *queue.Job[any]) error {
		if err := a.repo.refreshPaymentTotals(ctx); err != nil {
			return err
		}
		a.refreshes.Add(1)
		return nil
	}); err != nil {
		return err
	}
	// The subscriber of the payment.captured event (the job's kind is the
	// topic): one job per payment in the ledger queue.
	if err := queue.Handle(a.worker, topicPaymentCaptured, func(ctx context.Context, j *queue.Job[Payment]) error {
		a.ledgered.Add(1)
		return nil
	}); err != nil {
		return err
	}
	return queue.Handle(a.worker, "payment:receipt", func(ctx context.Context, j *queue.Job[Payment]) error {
		_, err := a.jobs.Enqueue(ctx, "emails", "email:send", Email{To: fmt.Sprintf("user-%d@example.com", j.Args.UserID), Subject: "Your receipt " + j.Args.ID}, queue.EnqueueOptions{UniqueKey: "receipt:" + j.Args.ID})
		if errors.Is(err, queue.ErrDuplicate) {
			return nil // a redelivery: the email is already queued
		}
		return err
	})
}

// buildIdempotency builds the Idempotency-Key middleware of POST
// /payments, its keys in PostgreSQL (exactly-once payments), or Redis, or
// memory.
func (a *app) buildIdempotency(ctx context.Context) error {
	opts := idempotency.HTTPOptions{Required: true, Logger: a.log,
		Scope: func(r *http.Request) string { return r.Header.Get("X-User") + "|" + clientHost(r) }}
	var err error
	switch {
	case a.router != nil:
		if a.idemPG, err = idempotencypg.New(idempotencypg.Options{Pool: a.router.PrimaryPool(), SweepInterval: time.Minute, Logger: a.log}); err != nil {
			return err
		}
		if err := a.idemPG.Migrate(ctx); err != nil {
			return err
		}
		opts.Store = a.idemPG
	case a.rdb != nil:
		if opts.Store, err = idempotencyredis.New(idempotencyredis.Options{Client: a.rdb, Prefix: "example:idem"}); err != nil {
			return err
		}
	}
	if a.idem, err = idempotency.NewHTTP(opts); err != nil {
		return err
	}
	return a.metrics.AddIdempotency("payments", a.idem)
}

// rateLease is how many requests of a client an instance takes from Redis
// at once: 1% of the per-second limit (at least 1, exact decisions), so
// the over-admission stays within 1% of a second's requests per instance.
func rateLease(perSecond float64) int {
	return max(1, int(perSecond/100))
}

// buildRateLimits builds the per-client rate limit middleware: across the
// fleet on Redis (in process while Redis is down), else in process.
func (a *app) buildRateLimits(context.Context) error {
	policy := ratelimit.Policy{{Name: "client", Rate: int(a.cfg.RatePerClient), Burst: 2 * int(a.cfg.RatePerClient)}}
	local, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: policy})
	if err != nil {
		return err
	}
	if a.rdb != nil {
		// Token leases: a decision costs a Redis round trip once per
		// rateLease requests of a client, not on every request; each
		// instance may admit rateLease-1 more than the limit per window.
		rl, err := ratelimitredis.New(ratelimitredis.Options{Client: a.rdb, Prefix: "example:rl", Limits: policy, Fallback: local, Logger: a.log,
			Lease: rateLease(a.cfg.RatePerClient)})
		if err != nil {
			return err
		}
		a.limiter, a.redisLimiter = a.tel.limiter("clients", rl), rl
		if err := a.metrics.AddRedisLimiter("clients", rl); err != nil {
			return err
		}
	} else {
		a.limiter, a.localLimiter = a.tel.limiter("clients", local), local
		if err := a.metrics.AddLimiter("clients", local); err != nil {
			return err
		}
	}
	if a.rl, err = ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: a.limiter, Policy: policy, Key: ratelimit.ClientIP(), Logger: a.log}); err != nil {
		return err
	}
	return a.metrics.AddRateLimitMiddleware("clients", a.rl)
}

// buildSLO builds the tracker of the per-route availability and latency
// objectives.
func (a *app) buildSLO(context.Context) error {
	var err error
	if a.tracker, err = slo.NewTracker(slo.TrackerOptions{Availability: 0.999, Latency: 0.99, LatencyThreshold: 250 * time.Millisecond, Logger: a.log}); err != nil {
		return err
	}
	return a.metrics.AddSLOTracker(a.tracker)
}

// buildReadYourWrites builds the router's middleware, which gives a
// client that wrote a token (a cookie) and routes its later reads to a
// server that has its write. Without a database there is none.
func (a *app) buildReadYourWrites(context.Context) error {
	if a.shards != nil {
		// One token per cluster written, in X-Shard-Tokens and the
		// shard_tokens cookie.
		tokens, err := shard.NewHTTP(shard.HTTPOptions{Router: a.shards, Insecure: true})
		if err != nil {
			return err
		}
		a.readYourWrites = tokens.Middleware
		return nil
	}
	if a.router == nil {
		return nil
	}
	tokens, err := dbrouter.NewHTTP(dbrouter.HTTPOptions{Router: a.router, Insecure: true})
	if err != nil {
		return err
	}
	a.readYourWrites = tokens.Middleware
	return nil
}

// buildHTTPMetrics builds the request-ID middleware and the RED metrics of
// the API (per ServeMux pattern: the mux is made here for routes to fill,
// so that requests a middleware answers, a 429, still get their route),
// and adds the Go runtime and process collectors to /metrics.
func (a *app) buildHTTPMetrics(context.Context) error {
	var err error
	if a.ids, err = requestid.NewHTTP(requestid.HTTPOptions{}); err != nil {
		return err
	}
	if err := a.metrics.AddRequestID("api", a.ids); err != nil {
		return err
	}
	a.mux = http.NewServeMux()
	if a.red, err = metrics.NewHTTP(metrics.HTTPOptions{Registerer: a.registry, Instance: a.cfg.Addr, Mux: a.mux}); err != nil {
		return err
	}
	return errors.Join(a.registry.Register(collectors.NewGoCollector()),
		a.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})))
}
