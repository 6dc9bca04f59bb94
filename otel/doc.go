// Package scalekitotel traces scalekit's primitives with OpenTelemetry
// and exports their Stats through the OpenTelemetry metric API. It is in
// a Go module of its own (github.com/scalekit-go/scalekit/otel), so the
// core module never compiles OpenTelemetry; dbrouter's decisions are in
// the sub-package dbrouterotel, so this one compiles no pgx.
//
//	tr, _ := scalekitotel.New(scalekitotel.Options{TracerProvider: tp}) // nil: the global provider
//	jobs, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{tr.EnqueueMiddleware}})
//	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: qs, Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{tr.AttemptMiddleware}})
//	users, _ := cache.New[User](cache.Options{Store: store, Tracer: tr.Cache("users")})
//	loader, _ := batch.New(fetchUsers, batch.Options{Tracer: tr.Batch("users")})
//	br, _ := breaker.New(breaker.Options{Name: "payments", OnStateChange: tr.OnStateChange})
//	rt, _ := retry.New(retry.Options{OnRetry: tr.OnRetry})
//	m, _ := scalekitotel.NewMetrics(scalekitotel.MetricsOptions{MeterProvider: mp}); m.AddCache("users", users)
//
// With no TracerProvider (nor a global one) every span is a no-op, and a
// primitive with no Tracer set pays one nil check: the cache hit, breaker
// and limiter hot paths are unchanged.
//
// # Queue
//
// EnqueueMiddleware makes a producer span "send <queue>" per job enqueued
// and writes its trace context (W3C traceparent and tracestate, and
// baggage, through Options.Propagator) into the job's metadata;
// AttemptMiddleware makes a consumer span "process <queue>" per attempt,
// child of and linked to that span (Options.QueueNewTrace: a new trace,
// linked), with the queue, kind, job id, attempt number and outcome
// (completed, snoozed, retry, dead). Retries are one span each.
// EnqueueMiddleware serves queue.SchedulerOptions.Middleware too, so
// periodic jobs carry a trace context (each tick's enqueue a root span).
//
// # Cache and batch
//
// Tracer.Cache makes a span "cache get <name>" per Get or GetMany that
// misses the L1, parent of the Store read and the loader, saying where
// the answer came from (CacheTier: l2, l2_stale, loader, fill, l1_copy),
// what happened to the fill lease (CacheLease: taken, waited) and
// whether the Get joined a load in flight. Hits make no span: they set
// CacheHit (and CacheRefresh, for an early or stale refresh) on the
// caller's span. Tracer.Batch makes a span "batch fetch <name>" per
// fetch, linked to the span of every caller whose key it fetches.
//
// # Breaker, limiter and retry
//
// Tracer.OnRetry (retry.Options.OnRetry) adds an event per retry to the
// caller's span; Tracer.Limiter wraps a ratelimit.Limiter so that each
// denial is an event on the span of its ctx (the request's, behind
// ratelimit's HTTP middleware); Tracer.OnStateChange
// (breaker.Options.OnStateChange) makes a span per state change holding
// its event, since a breaker changes state outside any caller's span.
//
// # Metrics
//
// Metrics reads each added primitive's Stats at collection time through
// observable instruments, named as package metrics's Prometheus
// families once the OpenTelemetry Prometheus exporter maps them back (no
// _total, the unit instead of _seconds or _bytes): an alternative to the
// Prometheus Collector with the same series, for every primitive it
// covers (breakers, retries, retry budgets and pacers, limiters local
// and on Redis, bulkheads, timeouts, adaptive throttlers, caches,
// batchers, idempotency, request-ID and rate limit middlewares, SLOs and
// SLO shedders, health probes, queue workers, queue counts, schedulers,
// dbrouter routers and their pools). The HTTP RED middleware and the batch size
// histogram are left to otelhttp and Prometheus.
package scalekitotel
