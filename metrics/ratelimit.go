package metrics

import (
	"github.com/scalekit-go/scalekit/ratelimit"
)

var localFamilies = []family[ratelimit.LocalStats]{
	counterBy("scalekit_ratelimit_decisions_total", "Rate limit decisions of an in-process limiter, by result: allowed or denied.", "result",
		with("allowed", func(s ratelimit.LocalStats) uint64 { return s.Allowed }),
		with("denied", func(s ratelimit.LocalStats) uint64 { return s.Denied })),
	gauge("scalekit_ratelimit_keys", "Keys the in-process limiter holds now.", func(s ratelimit.LocalStats) int { return s.Keys }),
	counter("scalekit_ratelimit_keys_swept_total", "Keys dropped because their buckets were full again (lossless).", func(s ratelimit.LocalStats) uint64 { return s.Swept }),
	counter("scalekit_ratelimit_keys_evicted_total", "Active keys dropped because MaxKeys was reached (such a key may burst again).", func(s ratelimit.LocalStats) uint64 { return s.Evicted }),
}

// AddLimiter reports l's Stats under name.
func (c *Collector) AddLimiter(name string, l *ratelimit.Local) error {
	return addStats(c, "AddLimiter", "the *ratelimit.Local", l, named{"limiter", name}, &c.local)
}

var concurrencyFamilies = []family[ratelimit.ConcurrencyStats]{
	counterBy("scalekit_ratelimit_concurrency_acquisitions_total", "Slot requests to an in-process concurrency limiter, by result: acquired or rejected.", "result",
		with("acquired", func(s ratelimit.ConcurrencyStats) uint64 { return s.Acquired }),
		with("rejected", func(s ratelimit.ConcurrencyStats) uint64 { return s.Rejected })),
}

// AddConcurrency reports l's Stats under name.
func (c *Collector) AddConcurrency(name string, l *ratelimit.Concurrency) error {
	return addStats(c, "AddConcurrency", "the *ratelimit.Concurrency", l, named{"concurrency limiter", name}, &c.concurrency)
}

var adaptiveFamilies = []family[ratelimit.AdaptiveStats]{
	gauge("scalekit_ratelimit_adaptive_limit", "Current in-flight limit of an adaptive (AIMD) limiter.", func(s ratelimit.AdaptiveStats) int { return s.Limit }),
	gauge("scalekit_ratelimit_adaptive_in_flight", "Calls in flight through an adaptive limiter now.", func(s ratelimit.AdaptiveStats) int { return s.InFlight }),
	counterBy("scalekit_ratelimit_adaptive_calls_total", "Calls to an adaptive limiter, by result: admitted or shed.", "result",
		with("admitted", func(s ratelimit.AdaptiveStats) uint64 { return s.Admitted }),
		with("shed", func(s ratelimit.AdaptiveStats) uint64 { return s.Shed })),
	counter("scalekit_ratelimit_adaptive_cuts_total", "Times an adaptive limiter cut its limit on overload.", func(s ratelimit.AdaptiveStats) uint64 { return s.Cuts }),
}

// AddAdaptive reports a's Stats under name.
func (c *Collector) AddAdaptive(name string, a *ratelimit.Adaptive) error {
	return addStats(c, "AddAdaptive", "the *ratelimit.Adaptive", a, named{"adaptive limiter", name}, &c.adaptive)
}

var httpLimitFamilies = []family[ratelimit.HTTPStats]{
	counterBy("scalekit_ratelimit_http_requests_total", "Requests through the rate limit middleware, by result: allowed, denied (429), bad_key (400) or error (the limiter failed).", "result",
		with("allowed", func(s ratelimit.HTTPStats) uint64 { return s.Allowed }),
		with("denied", func(s ratelimit.HTTPStats) uint64 { return s.Denied }),
		with("bad_key", func(s ratelimit.HTTPStats) uint64 { return s.BadKey }),
		with("error", func(s ratelimit.HTTPStats) uint64 { return s.Errors })),
}

// AddRateLimitMiddleware reports the Stats of the rate limit middleware m
// (from ratelimit.NewHTTP) under name. Its limiter is reported on its
// own, by AddLimiter or AddRedisLimiter.
func (c *Collector) AddRateLimitMiddleware(name string, m *ratelimit.HTTP) error {
	return addStats(c, "AddRateLimitMiddleware", "the *ratelimit.HTTP", m, named{"rate limit middleware", name}, &c.httpLimit)
}

// degradedModes are the values of the mode label: how a decision was made
// while Redis was unavailable.
const (
	modeFailOpen   = "fail_open"
	modeFailClosed = "fail_closed"
	modeFallback   = "fallback"
)

var redisLimitFamilies = []family[ratelimit.RemoteStats]{
	counterBy("scalekit_ratelimit_redis_decisions_total", "Rate limit decisions Redis made, by result: allowed or denied.", "result",
		with("allowed", func(s ratelimit.RemoteStats) uint64 { return s.Allowed }),
		with("denied", func(s ratelimit.RemoteStats) uint64 { return s.Denied })),
	counterBy("scalekit_ratelimit_redis_degraded_decisions_total", "Decisions made without Redis (down, slow or circuit open), by mode: fail_open, fail_closed or fallback (Options.Fallback).", "mode",
		with(modeFailOpen, func(s ratelimit.RemoteStats) uint64 { return s.FailOpen }),
		with(modeFailClosed, func(s ratelimit.RemoteStats) uint64 { return s.FailClosed }),
		with(modeFallback, func(s ratelimit.RemoteStats) uint64 { return s.Fallbacks })),
	counter("scalekit_ratelimit_redis_errors_total", "Failed round trips to Redis.", func(s ratelimit.RemoteStats) uint64 { return s.Errors }),
	counter("scalekit_ratelimit_redis_skipped_total", "Decisions the open circuit kept away from Redis.", func(s ratelimit.RemoteStats) uint64 { return s.Skipped }),
	stateSet("scalekit_ratelimit_redis_circuit_state", "State of the circuit breaker around Redis: 1 for the current state (closed, open, half-open), 0 for the others.", circuitStates, func(s ratelimit.RemoteStats) string { return s.Circuit.String() }),
	counter("scalekit_ratelimit_redis_round_trips_total", "Calls sent to Redis to decide (one per decision, coalesced batch, AllowMany or token lease).", func(s ratelimit.RemoteStats) uint64 { return s.RoundTrips }),
	counter("scalekit_ratelimit_redis_batches_total", "Round trips that carried a batch of decisions (coalesced calls or an AllowMany).", func(s ratelimit.RemoteStats) uint64 { return s.Batches }),
	counter("scalekit_ratelimit_redis_batched_decisions_total", "Decisions carried by batches; over batches_total, the mean batch size.", func(s ratelimit.RemoteStats) uint64 { return s.Batched }),
	counter("scalekit_ratelimit_redis_token_leases_total", "Token leases asked of Redis (Options.Lease).", func(s ratelimit.RemoteStats) uint64 { return s.Leases }),
	counterBy("scalekit_ratelimit_redis_token_lease_events_total", "Events of token leases, by result: leased (taken from Redis), spent (admitted from a lease) or expired (left unspent).", "result",
		with("leased", func(s ratelimit.RemoteStats) uint64 { return s.Leased }),
		with("spent", func(s ratelimit.RemoteStats) uint64 { return s.LeaseSpent }),
		with("expired", func(s ratelimit.RemoteStats) uint64 { return s.LeaseExpired })),
}

// AddRedisLimiter reports the Stats of l, a *ratelimitredis.Limiter (or any
// limiter that decides on a server), under name.
func (c *Collector) AddRedisLimiter(name string, l interface{ Stats() ratelimit.RemoteStats }) error {
	return addStats(c, "AddRedisLimiter", "the *ratelimitredis.Limiter", l, named{"redis limiter", name}, &c.redisLimit)
}

var redisConcFamilies = []family[ratelimit.RemoteConcurrencyStats]{
	counterBy("scalekit_ratelimit_redis_concurrency_acquisitions_total", "Slot requests Redis decided for a fleet-wide concurrency limiter, by result: acquired or rejected.", "result",
		with("acquired", func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.Acquired }),
		with("rejected", func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.Rejected })),
	counterBy("scalekit_ratelimit_redis_concurrency_degraded_acquisitions_total", "Slot requests decided without Redis (down, slow or circuit open), by mode: fail_open, fail_closed or fallback (Options.Fallback).", "mode",
		with(modeFailOpen, func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.FailOpen }),
		with(modeFailClosed, func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.FailClosed }),
		with(modeFallback, func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.Fallbacks })),
	counter("scalekit_ratelimit_redis_concurrency_releases_total", "Slots released.", func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.Released }),
	counter("scalekit_ratelimit_redis_concurrency_renewals_total", "Lease renewals.", func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.Renewals }),
	counter("scalekit_ratelimit_redis_concurrency_leases_lost_total", "Leases found gone when renewing (Redis lost them, or the holder stalled past its lease).", func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.Lost }),
	counter("scalekit_ratelimit_redis_concurrency_errors_total", "Failed round trips to Redis.", func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.Errors }),
	counter("scalekit_ratelimit_redis_concurrency_skipped_total", "Slot requests the open circuit kept away from Redis.", func(s ratelimit.RemoteConcurrencyStats) uint64 { return s.Skipped }),
	gauge("scalekit_ratelimit_redis_concurrency_leases_held", "Leases this process holds now.", func(s ratelimit.RemoteConcurrencyStats) int { return s.Held }),
	stateSet("scalekit_ratelimit_redis_concurrency_circuit_state", "State of the circuit breaker around Redis: 1 for the current state (closed, open, half-open), 0 for the others.", circuitStates, func(s ratelimit.RemoteConcurrencyStats) string { return s.Circuit.String() }),
}

// AddRedisConcurrency reports the Stats of l, a *ratelimitredis.Concurrency
// (or any concurrency limiter leasing slots on a server), under name.
func (c *Collector) AddRedisConcurrency(name string, l interface {
	Stats() ratelimit.RemoteConcurrencyStats
}) error {
	return addStats(c, "AddRedisConcurrency", "the *ratelimitredis.Concurrency", l, named{"redis concurrency limiter", name}, &c.redisConc)
}
