// Package health serves liveness, readiness and startup probes as
// application/health+json (draft-inadarei-api-health-check).
//
//	h, err := health.New(health.Options{ServiceID: "orders"})
//	h.Add(health.Check{Name: "postgres", Kind: health.Readiness, Timeout: time.Second,
//		Func: func(ctx context.Context) error { return pool.Ping(ctx) }})
//	mux.Handle("GET /health/live", h.Handler(health.Liveness))
//	mux.Handle("GET /health/ready", h.Handler(health.Readiness)) // 503 while a critical check fails
//
// # How it works
//
// Checks are func(ctx) error with a name, a timeout and a criticality: a
// failing critical check makes its probe "fail" (503), a failing Optional one
// "warn" (degraded, still 200). Checks of a probe run in parallel, so a
// probe takes about as long as its slowest check; each result is cached for
// CacheTTL and concurrent probes share one run, so probes from many load
// balancers never stampede the database. With Interval the checks run in the
// background instead and probes only read results. FailureThreshold damps
// flapping. A check that ignores its ctx still fails at its Timeout.
//
// Liveness checks must not depend on external services: when the database
// is down every instance would be restarted at once. Put dependencies in
// readiness. SetDraining(true) fails readiness whatever the checks say; the
// shutdown sequence calls it first so load balancers stop sending traffic
// before the servers close. The startup probe fails until MarkStarted.
package health
