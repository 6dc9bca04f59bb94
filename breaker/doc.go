// Package breaker provides a circuit breaker: after a dependency fails
// enough, calls to it are rejected at once (ErrOpen) instead of piling up
// on timeouts, and a few probe calls later test whether it recovered.
//
//	br, err := breaker.New(breaker.Options{Name: "payments", FailureRateThreshold: 0.5})
//	err = br.Do(ctx, func(ctx context.Context) error { return provider.Charge(ctx, p) })
//	if errors.Is(err, breaker.ErrOpen) { ... } // rejected at once: answer 503, or fall back
//	resp, err := breaker.DoValueJudged(ctx, br, fetch,
//		func(r *http.Response) bool { return r.StatusCode >= 500 }) // a 503 counts as a failure
//
// States: Closed (calls go through and their outcomes are counted), Open
// (calls are rejected until OpenTimeout passes, growing by
// OpenTimeoutMultiplier after each failed probe, capped at MaxOpenTimeout),
// HalfOpen (up to HalfOpenProbes calls probe at once, others get
// ErrTooManyProbes, which matches ErrOpen; HalfOpenSuccesses successes
// close it, one failure reopens it). OpenTimeoutJitter spreads the open
// time at random so that a fleet's breakers tripped by
// one outage do not all probe at once. A probe still running after
// HalfOpenMaxWait (default 60s; a hung call, or an Acquire whose release
// is never called) counts as a failed probe and frees its slot.
//
// Manual control, as resilience4j's special states: ForceOpen rejects
// every call (ErrForcedOpen, which matches ErrOpen); ForceClosed lets every
// call through and applies no rule (resilience4j's DISABLED); MetricsOnly
// lets every call through but counts and evaluates as in closed state,
// reporting a trip it would make (logged, Stats.WouldTrips) instead of
// opening (METRICS_ONLY). These states last until Reset (back to Closed) or
// another of them; each change is a state change like the automatic ones.
//
// Trips: ConsecutiveFailures in a row (default 5), and optionally a
// FailureRateThreshold or a slow-call rate (SlowCallThreshold,
// SlowCallRateThreshold) over a window of the last WindowSize calls or the
// last WindowDuration, once it holds MinimumCalls.
//
// # Consecutive failures beside a failure rate
//
// At high traffic a run of a few failures comes often at a failure rate far
// below any sensible threshold (at 30% failures, 5 in a row come every few
// hundred calls), so a default consecutive rule would undercut a
// FailureRateThreshold. When a FailureRateThreshold is set, the consecutive
// rule applies only if ConsecutiveFailures is set explicitly:
//
//	FailureRateThreshold  ConsecutiveFailures  NoConsecutive  trips on a run of failures
//	0 (off)               0 (unset)            false          5 in a row (the default)
//	0 (off)               n                    false          n in a row
//	> 0                   0 (unset)            false          never: the rate rule alone decides
//	> 0                   n                    false          n in a row, beside the rate rule
//	any                   any                  true           never
//
// A slow-call rule alone (SlowCallThreshold without a FailureRateThreshold)
// does not count failures, so it keeps the default consecutive rule.
//
// Classification: IsFailure decides what counts as a failure, Ignore what
// counts as nothing; a call whose ctx the caller cancelled is ignored; an
// ErrOpen from a nested breaker is ignored unless CountNestedOpen. A call
// whose function panics counts as a failure whatever those say, and the
// panic goes on to the caller (as in gobreaker). DoValueJudged also judges
// the returned value, so an HTTP 503 returned with a nil error can count as a
// failure.
//
// Use Do(ctx, fn), DoValue[T] or DoValueJudged[T] for values, or
// Acquire() for code that cannot pass a function. In closed state Do,
// DoValue and DoValueJudged are lock-free and allocate nothing. Group
// keeps one breaker per downstream name. State changes are logged, counted
// in Stats, sent to OnStateChange (never blocking calls) and the last
// TransitionsKept kept for Transitions (a dashboard's recent history).
//
// With retry, put the breaker inside the retry loop and stop retrying when
// it is open:
//
//	r, _ := retry.New(retry.Options{Retryable: func(err error) bool { return !errors.Is(err, breaker.ErrOpen) }})
//	err := r.Do(ctx, func(ctx context.Context) error { return br.Do(ctx, call) })
package breaker
