package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/ratelimit"
)

type localDescs struct {
	decisions, keys, swept, evicted *prometheus.Desc
}

func newLocalDescs(b *builder) localDescs {
	return localDescs{
		decisions: b.desc("scalekit_ratelimit_decisions_total", "Rate limit decisions of an in-process limiter, by result: allowed or denied.", "result"),
		keys:      b.desc("scalekit_ratelimit_keys", "Keys the in-process limiter holds now."),
		swept:     b.desc("scalekit_ratelimit_keys_swept_total", "Keys dropped because their buckets were full again (lossless)."),
		evicted:   b.desc("scalekit_ratelimit_keys_evicted_total", "Active keys dropped because MaxKeys was reached (such a key may burst again)."),
	}
}

// AddLimiter reports l's Stats under name.
func (c *Collector) AddLimiter(name string, l *ratelimit.Local) error {
	if l == nil {
		return nilArg("AddLimiter", "the *ratelimit.Local")
	}
	d := &c.local
	return c.add("AddLimiter", named{"limiter", name}, func(ch chan<- prometheus.Metric) {
		st := l.Stats()
		counter(ch, d.decisions, st.Allowed, name, "allowed")
		counter(ch, d.decisions, st.Denied, name, "denied")
		gauge(ch, d.keys, float64(st.Keys), name)
		counter(ch, d.swept, st.Swept, name)
		counter(ch, d.evicted, st.Evicted, name)
	})
}

type concurrencyDescs struct {
	acquisitions *prometheus.Desc
}

func newConcurrencyDescs(b *builder) concurrencyDescs {
	return concurrencyDescs{
		acquisitions: b.desc("scalekit_ratelimit_concurrency_acquisitions_total", "Slot requests to an in-process concurrency limiter, by result: acquired or rejected.", "result"),
	}
}

// AddConcurrency reports l's Stats under name.
func (c *Collector) AddConcurrency(name string, l *ratelimit.Concurrency) error {
	if l == nil {
		return nilArg("AddConcurrency", "the *ratelimit.Concurrency")
	}
	d := &c.concurrency
	return c.add("AddConcurrency", named{"concurrency limiter", name}, func(ch chan<- prometheus.Metric) {
		st := l.Stats()
		counter(ch, d.acquisitions, st.Acquired, name, "acquired")
		counter(ch, d.acquisitions, st.Rejected, name, "rejected")
	})
}

type adaptiveDescs struct {
	limit, inFlight, calls, cuts *prometheus.Desc
}

func newAdaptiveDescs(b *builder) adaptiveDescs {
	return adaptiveDescs{
		limit:    b.desc("scalekit_ratelimit_adaptive_limit", "Current in-flight limit of an adaptive (AIMD) limiter."),
		inFlight: b.desc("scalekit_ratelimit_adaptive_in_flight", "Calls in flight through an adaptive limiter now."),
		calls:    b.desc("scalekit_ratelimit_adaptive_calls_total", "Calls to an adaptive limiter, by result: admitted or shed.", "result"),
		cuts:     b.desc("scalekit_ratelimit_adaptive_cuts_total", "Times an adaptive limiter cut its limit on overload."),
	}
}

// AddAdaptive reports a's Stats under name.
func (c *Collector) AddAdaptive(name string, a *ratelimit.Adaptive) error {
	if a == nil {
		return nilArg("AddAdaptive", "the *ratelimit.Adaptive")
	}
	d := &c.adaptive
	return c.add("AddAdaptive", named{"adaptive limiter", name}, func(ch chan<- prometheus.Metric) {
		st := a.Stats()
		gauge(ch, d.limit, float64(st.Limit), name)
		gauge(ch, d.inFlight, float64(st.InFlight), name)
		counter(ch, d.calls, st.Admitted, name, "admitted")
		counter(ch, d.calls, st.Shed, name, "shed")
		counter(ch, d.cuts, st.Cuts, name)
	})
}

type httpLimitDescs struct {
	requests *prometheus.Desc
}

func newHTTPLimitDescs(b *builder) httpLimitDescs {
	return httpLimitDescs{
		requests: b.desc("scalekit_ratelimit_http_requests_total", "Requests through the rate limit middleware, by result: allowed, denied (429), bad_key (400) or error (the limiter failed).", "result"),
	}
}

// AddRateLimitMiddleware reports the Stats of the rate limit middleware m
// (from ratelimit.NewHTTP) under name. Its limiter is reported on its
// own, by AddLimiter or AddRedisLimiter.
func (c *Collector) AddRateLimitMiddleware(name string, m *ratelimit.HTTP) error {
	if m == nil {
		return nilArg("AddRateLimitMiddleware", "the *ratelimit.HTTP")
	}
	d := &c.httpLimit
	return c.add("AddRateLimitMiddleware", named{"rate limit middleware", name}, func(ch chan<- prometheus.Metric) {
		st := m.Stats()
		counter(ch, d.requests, st.Allowed, name, "allowed")
		counter(ch, d.requests, st.Denied, name, "denied")
		counter(ch, d.requests, st.BadKey, name, "bad_key")
		counter(ch, d.requests, st.Errors, name, "error")
	})
}

// degradedModes are the values of the mode label: how a decision was made
// while Redis was unavailable.
const (
	modeFailOpen   = "fail_open"
	modeFailClosed = "fail_closed"
	modeFallback   = "fallback"
)

type redisLimitDescs struct {
	decisions, degraded, errors, skipped, circuit *prometheus.Desc
}

func newRedisLimitDescs(b *builder) redisLimitDescs {
	return redisLimitDescs{
		decisions: b.desc("scalekit_ratelimit_redis_decisions_total", "Rate limit decisions Redis made, by result: allowed or denied.", "result"),
		degraded:  b.desc("scalekit_ratelimit_redis_degraded_decisions_total", "Decisions made without Redis (down, slow or circuit open), by mode: fail_open, fail_closed or fallback (Options.Fallback).", "mode"),
		errors:    b.desc("scalekit_ratelimit_redis_errors_total", "Failed round trips to Redis."),
		skipped:   b.desc("scalekit_ratelimit_redis_skipped_total", "Decisions the open circuit kept away from Redis."),
		circuit:   b.desc("scalekit_ratelimit_redis_circuit_state", "State of the circuit breaker around Redis: 1 for the current state (closed, open, half-open), 0 for the others.", "state"),
	}
}

// AddRedisLimiter reports the Stats of l, a *ratelimitredis.Limiter (or any
// limiter that decides on a server), under name.
func (c *Collector) AddRedisLimiter(name string, l interface{ Stats() ratelimit.RemoteStats }) error {
	if isNil(l) {
		return nilArg("AddRedisLimiter", "the *ratelimitredis.Limiter")
	}
	d := &c.redisLimit
	return c.add("AddRedisLimiter", named{"redis limiter", name}, func(ch chan<- prometheus.Metric) {
		st := l.Stats()
		counter(ch, d.decisions, st.Allowed, name, "allowed")
		counter(ch, d.decisions, st.Denied, name, "denied")
		counter(ch, d.degraded, st.FailOpen, name, modeFailOpen)
		counter(ch, d.degraded, st.FailClosed, name, modeFailClosed)
		counter(ch, d.degraded, st.Fallbacks, name, modeFallback)
		counter(ch, d.errors, st.Errors, name)
		counter(ch, d.skipped, st.Skipped, name)
		stateSet(ch, d.circuit, circuitStates, st.Circuit.String(), name)
	})
}

type redisConcDescs struct {
	acquisitions, degraded, releases, renewals, lost, errors, skipped, held, circuit *prometheus.Desc
}

func newRedisConcDescs(b *builder) redisConcDescs {
	return redisConcDescs{
		acquisitions: b.desc("scalekit_ratelimit_redis_concurrency_acquisitions_total", "Slot requests Redis decided for a fleet-wide concurrency limiter, by result: acquired or rejected.", "result"),
		degraded:     b.desc("scalekit_ratelimit_redis_concurrency_degraded_acquisitions_total", "Slot requests decided without Redis (down, slow or circuit open), by mode: fail_open, fail_closed or fallback (Options.Fallback).", "mode"),
		releases:     b.desc("scalekit_ratelimit_redis_concurrency_releases_total", "Slots released."),
		renewals:     b.desc("scalekit_ratelimit_redis_concurrency_renewals_total", "Lease renewals."),
		lost:         b.desc("scalekit_ratelimit_redis_concurrency_leases_lost_total", "Leases found gone when renewing (Redis lost them, or the holder stalled past its lease)."),
		errors:       b.desc("scalekit_ratelimit_redis_concurrency_errors_total", "Failed round trips to Redis."),
		skipped:      b.desc("scalekit_ratelimit_redis_concurrency_skipped_total", "Slot requests the open circuit kept away from Redis."),
		held:         b.desc("scalekit_ratelimit_redis_concurrency_leases_held", "Leases this process holds now."),
		circuit:      b.desc("scalekit_ratelimit_redis_concurrency_circuit_state", "State of the circuit breaker around Redis: 1 for the current state (closed, open, half-open), 0 for the others.", "state"),
	}
}

// AddRedisConcurrency reports the Stats of l, a *ratelimitredis.Concurrency
// (or any concurrency limiter leasing slots on a server), under name.
func (c *Collector) AddRedisConcurrency(name string, l interface {
	Stats() ratelimit.RemoteConcurrencyStats
}) error {
	if isNil(l) {
		return nilArg("AddRedisConcurrency", "the *ratelimitredis.Concurrency")
	}
	d := &c.redisConc
	return c.add("AddRedisConcurrency", named{"redis concurrency limiter", name}, func(ch chan<- prometheus.Metric) {
		st := l.Stats()
		counter(ch, d.acquisitions, st.Acquired, name, "acquired")
		counter(ch, d.acquisitions, st.Rejected, name, "rejected")
		counter(ch, d.degraded, st.FailOpen, name, modeFailOpen)
		counter(ch, d.degraded, st.FailClosed, name, modeFailClosed)
		counter(ch, d.degraded, st.Fallbacks, name, modeFallback)
		counter(ch, d.releases, st.Released, name)
		counter(ch, d.renewals, st.Renewals, name)
		counter(ch, d.lost, st.Lost, name)
		counter(ch, d.errors, st.Errors, name)
		counter(ch, d.skipped, st.Skipped, name)
		gauge(ch, d.held, float64(st.Held), name)
		stateSet(ch, d.circuit, circuitStates, st.Circuit.String(), name)
	})
}
