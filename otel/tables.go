package scalekitotel

import (
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/priority"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/requestid"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/shard/shardstats"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// The attributes splitting a counter, as package metrics's labels.
const (
	result      = attribute.Key("result")
	tier        = attribute.Key("tier")
	trigger     = attribute.Key("trigger")
	mode        = attribute.Key("mode")
	source      = attribute.Key("source")
	tickOutcome = attribute.Key("outcome")
	reason      = attribute.Key("reason")
	intent      = attribute.Key("intent")
	stateK      = attribute.Key("state")
	probe       = attribute.Key("probe")
	check       = attribute.Key("check")
	class       = attribute.Key("class")
)

// Units of the instruments whose Prometheus names end in a unit, which
// the OpenTelemetry Prometheus exporter appends back: seconds, bytes, a
// ratio (gauges only).
const (
	seconds = "s"
	bytes   = "By"
	ratio   = "1"
)

// circuitStates are the states of the circuits inside engines;
// breakerStates adds those set by hand.
var (
	circuitStates = []string{breaker.Closed.String(), breaker.Open.String(), breaker.HalfOpen.String()}
	breakerStates = append(circuitStates[:3:3], breaker.ForcedOpen.String(), breaker.ForcedClosed.String(), breaker.MetricsOnly.String())
)

type bs = breaker.Stats

var breakerFamilies = []family[bs]{
	stateSet("scalekit_breaker_state", "1 for the breaker's current state, 0 for the others.", breakerStates, func(s bs) string { return s.State.String() }),
	counterBy("scalekit_breaker_calls", "Calls through the breaker by result (success, failure, ignored, rejected).", result,
		with("success", func(s bs) uint64 { return s.Successes }), with("failure", func(s bs) uint64 { return s.Failures }),
		with("ignored", func(s bs) uint64 { return s.Ignored }), with("rejected", func(s bs) uint64 { return s.Rejected })),
	counter("scalekit_breaker_slow_calls", "", "Recorded calls slower than SlowCallThreshold.", func(s bs) uint64 { return s.Slow }),
	counter("scalekit_breaker_transitions", "", "State changes.", func(s bs) uint64 { return s.Transitions }),
	counter("scalekit_breaker_probe_timeouts", "", "Half-open probes past HalfOpenMaxWait.", func(s bs) uint64 { return s.ProbeTimeouts }),
	counter("scalekit_breaker_would_trips", "", "Trips a metrics-only breaker would have made.", func(s bs) uint64 { return s.WouldTrips }),
	gauge("scalekit_breaker_consecutive_failures", "", "Current run of consecutive failures.", func(s bs) int64 { return s.ConsecutiveFailures }),
	gauge("scalekit_breaker_window_calls", "", "Calls in the current rate window.", func(s bs) int64 { return s.WindowCalls }),
	gauge("scalekit_breaker_window_failures", "", "Failures in the current rate window.", func(s bs) int64 { return s.WindowFailures }),
	gauge("scalekit_breaker_window_slow_calls", "", "Slow calls in the current rate window.", func(s bs) int64 { return s.WindowSlow }),
	gauge("scalekit_breaker_open_until_timestamp", seconds, "When an open breaker starts probing (Unix time); 0 unless open.", func(s bs) float64 { return added.UnixSeconds(s.OpenUntil) }),
}

var retrierFamilies = []family[retry.Stats]{
	counter("scalekit_retry_calls", "", "Calls to the retrier.", func(s retry.Stats) uint64 { return s.Calls }),
	counter("scalekit_retry_attempts", "", "Attempts, first ones included.", func(s retry.Stats) uint64 { return s.Attempts }),
	counter("scalekit_retry_retries", "", "Attempts after the first.", func(s retry.Stats) uint64 { return s.Retries }),
	counter("scalekit_retry_exhausted", "", "Calls the retrier gave up on.", func(s retry.Stats) uint64 { return s.Exhausted }),
	counter("scalekit_retry_exhausted_by_budget", "", "Give-ups for an empty retry budget.", func(s retry.Stats) uint64 { return s.BudgetRefusals }),
	counter("scalekit_retry_not_retried", "", "Failed calls not retried because their request is itself a retry (retry.WithRetried, retry.Middleware).", func(s retry.Stats) uint64 { return s.NotRetried }),
}

// byClass is the series of a priority.Counts, one per class.
func byClass[S any](v func(S) priority.Counts) []series[S] {
	var ss []series[S]
	for _, c := range priority.Classes {
		ss = append(ss, with(c.String(), func(s S) uint64 { return v(s).Of(c) }))
	}
	return ss
}

type bhs = bulkhead.Stats

var bulkheadFamilies = []family[bhs]{
	gauge("scalekit_bulkhead_max_concurrent", "", "Most calls a bulkhead runs at once (Options.MaxConcurrent).", func(s bhs) int { return s.MaxConcurrent }),
	gauge("scalekit_bulkhead_max_waiting", "", "Most calls a bulkhead queues (Options.MaxWaiting).", func(s bhs) int { return s.MaxWaiting }),
	gauge("scalekit_bulkhead_in_flight", "", "Calls holding a slot of the bulkhead now.", func(s bhs) int { return s.InFlight }),
	gauge("scalekit_bulkhead_waiting", "", "Calls waiting for a slot of the bulkhead now.", func(s bhs) int { return s.Waiting }),
	counter("scalekit_bulkhead_admitted", "", "Calls given a slot, at once or after waiting.", func(s bhs) uint64 { return s.Admitted }),
	counter("scalekit_bulkhead_waited", "", "Calls given a slot after waiting in the queue.", func(s bhs) uint64 { return s.Waited }),
	counterBy("scalekit_bulkhead_rejections", "Calls rejected by reason (queue_full, max_wait, shed).", reason,
		with("queue_full", func(s bhs) uint64 { return s.QueueFull }), with("max_wait", func(s bhs) uint64 { return s.MaxWait }),
		with("shed", func(s bhs) uint64 { return s.Shed })),
	counterBy("scalekit_bulkhead_rejections_by_class", "Calls rejected by the caller's priority class (sheddable, default, critical).", class,
		byClass(func(s bhs) priority.Counts { return s.Rejected })...),
	counter("scalekit_bulkhead_cancelled", "", "Waiting calls whose ctx ended before they got a slot.", func(s bhs) uint64 { return s.Cancelled }),
}

var timeoutFamilies = []family[timeout.Stats]{
	counter("scalekit_timeout_calls", "", "Calls run under the timeout.", func(s timeout.Stats) uint64 { return s.Calls }),
	counter("scalekit_timeout_timeouts", "", "Calls that failed past the timeout's deadline.", func(s timeout.Stats) uint64 { return s.Timeouts }),
}

type ths = throttle.Stats

var throttleFamilies = []family[ths]{
	counter("scalekit_throttle_calls", "", "Calls to the adaptive throttler.", func(s ths) uint64 { return s.Calls }),
	counterBy("scalekit_throttle_throttled", "Calls refused locally (ErrThrottled) by the caller's priority class (sheddable, default, critical).", class,
		byClass(func(s ths) priority.Counts { return s.Throttled })...),
	counter("scalekit_throttle_rejected", "", "Calls the backend refused (Options.Rejected).", func(s ths) uint64 { return s.Rejected }),
	gauge("scalekit_throttle_window_requests", "", "Requests counted in the sliding window now.", func(s ths) uint64 { return s.Requests }),
	gauge("scalekit_throttle_window_accepts", "", "Accepts counted in the sliding window now.", func(s ths) uint64 { return s.Accepts }),
	gauge("scalekit_throttle_probability", ratio, "Probability that a call of the default class is refused locally now.", func(s ths) float64 { return s.Probability }),
}

type pcs = retry.PacerStats

var pacerFamilies = []family[pcs]{
	counterBy("scalekit_retry_pacer_requests", "Requests through a pacer by result (sent, waited: sent after waiting for the server's quota, refused: not sent).", result,
		with("sent", func(s pcs) uint64 { return s.Sent - s.Waited }), with("waited", func(s pcs) uint64 { return s.Waited }),
		with("refused", func(s pcs) uint64 { return s.Refused })),
}

// shedLevels are the values of scalekit_slo_shed_level's state attribute.
var shedLevels = []string{slo.ShedNone.String(), slo.ShedSheddable.String(), slo.ShedDefault.String()}

type shs = slo.ShedderStats

var shedderFamilies = []family[shs]{
	stateSet("scalekit_slo_shed_level", "What an SLO shedder sheds now: 1 for the current level (none, sheddable, default), 0 for the others.", shedLevels, func(s shs) string { return s.Level.String() }),
	counterBy("scalekit_slo_shed", "Calls an SLO shedder shed by priority class (sheddable, default, critical).", class,
		byClass(func(s shs) priority.Counts { return s.Shed })...),
}

var budgetFamilies = []family[retry.BudgetStats]{
	counter("scalekit_retry_budget_deposits", "", "Calls recorded by the budget.", func(s retry.BudgetStats) uint64 { return s.Deposits }),
	counter("scalekit_retry_budget_withdrawals", "", "Retries the budget allowed.", func(s retry.BudgetStats) uint64 { return s.Withdrawals }),
	counter("scalekit_retry_budget_refusals", "", "Retries the budget refused.", func(s retry.BudgetStats) uint64 { return s.Refusals }),
	gauge("scalekit_retry_budget_tokens", "", "Retries the budget would allow now.", func(s retry.BudgetStats) float64 { return s.Tokens }),
}

type ls = ratelimit.LocalStats

var localFamilies = []family[ls]{
	counterBy("scalekit_ratelimit_decisions", "In-process limiter decisions by result (allowed, denied).", result,
		with("allowed", func(s ls) uint64 { return s.Allowed }), with("denied", func(s ls) uint64 { return s.Denied })),
	gauge("scalekit_ratelimit_keys", "", "Keys the limiter holds.", func(s ls) int { return s.Keys }),
	counter("scalekit_ratelimit_keys_swept", "", "Keys dropped with full buckets.", func(s ls) uint64 { return s.Swept }),
	counter("scalekit_ratelimit_keys_evicted", "", "Active keys dropped at MaxKeys.", func(s ls) uint64 { return s.Evicted }),
}

var concurrencyFamilies = []family[ratelimit.ConcurrencyStats]{
	counterBy("scalekit_ratelimit_concurrency_acquisitions", "Slot requests by result (acquired, rejected).", result,
		with("acquired", func(s ratelimit.ConcurrencyStats) uint64 { return s.Acquired }),
		with("rejected", func(s ratelimit.ConcurrencyStats) uint64 { return s.Rejected })),
}

type as = ratelimit.AdaptiveStats

var adaptiveFamilies = []family[as]{
	gauge("scalekit_ratelimit_adaptive_limit", "", "Current in-flight limit.", func(s as) int { return s.Limit }),
	gauge("scalekit_ratelimit_adaptive_in_flight", "", "Calls in flight now.", func(s as) int { return s.InFlight }),
	counterBy("scalekit_ratelimit_adaptive_calls", "Calls by result (admitted, shed).", result,
		with("admitted", func(s as) uint64 { return s.Admitted }), with("shed", func(s as) uint64 { return s.Shed })),
	counter("scalekit_ratelimit_adaptive_cuts", "", "Limit cuts on overload.", func(s as) uint64 { return s.Cuts }),
}

type cs = cache.Stats

var cacheFamilies = []family[cs]{
	counterBy("scalekit_cache_hits", "Hits by tier (l1, l2).", tier,
		with("l1", func(s cs) uint64 { return s.Hits }), with("l2", func(s cs) uint64 { return s.L2Hits })),
	counterBy("scalekit_cache_misses", "Misses by tier (l1, l2).", tier,
		with("l1", func(s cs) uint64 { return s.Misses }), with("l2", func(s cs) uint64 { return s.L2Misses })),
	counter("scalekit_cache_negative_hits", "", "Remembered not-found results served.", func(s cs) uint64 { return s.NegativeHits }),
	counter("scalekit_cache_stale_served", "", "Stale values served while a refresh runs.", func(s cs) uint64 { return s.StaleServed }),
	counterBy("scalekit_cache_refreshes", "Background refreshes by trigger (early, stale).", trigger,
		with("early", func(s cs) uint64 { return s.EarlyRefreshes }), with("stale", func(s cs) uint64 { return s.StaleRefreshes })),
	counter("scalekit_cache_loads", "", "Loader calls.", func(s cs) uint64 { return s.Loads }),
	counter("scalekit_cache_load_errors", "", "Loader calls that failed.", func(s cs) uint64 { return s.LoadErrors }),
	counter("scalekit_cache_load_panics", "", "Loader calls that panicked.", func(s cs) uint64 { return s.Panics }),
	counter("scalekit_cache_coalesced", "", "Gets that joined a load in flight.", func(s cs) uint64 { return s.Coalesced }),
	counter("scalekit_cache_l2_errors", "", "Store calls that failed.", func(s cs) uint64 { return s.L2Errors }),
	counter("scalekit_cache_l2_skipped", "", "Store calls the open circuit skipped.", func(s cs) uint64 { return s.L2Skipped }),
	stateSet("scalekit_cache_l2_circuit_state", "1 for the Store circuit's current state, 0 for the others.", circuitStates, func(s cs) string { return s.Circuit.String() }),
	counter("scalekit_cache_leases_won", "", "Loads done under a fill lease.", func(s cs) uint64 { return s.LeasesWon }),
	counter("scalekit_cache_lease_waits", "", "Misses that waited for another fill.", func(s cs) uint64 { return s.LeaseWaits }),
	counter("scalekit_cache_lease_busy", "", "Refreshes left to another lease holder.", func(s cs) uint64 { return s.LeaseBusy }),
	counter("scalekit_cache_lease_timeouts", "", "Waits for another fill that gave up.", func(s cs) uint64 { return s.LeaseTimeouts }),
	counter("scalekit_cache_fills_refused", "", "Fills voided by a Set, Delete or expired lease.", func(s cs) uint64 { return s.FillsRefused }),
	counter("scalekit_cache_codec_errors", "", "Values that did not encode or decode.", func(s cs) uint64 { return s.CodecErrors }),
	counter("scalekit_cache_invalidations", "", "Invalidations from other instances applied.", func(s cs) uint64 { return s.Invalidations }),
	gauge("scalekit_cache_l1_entries", "", "Entries in the in-process tier.", func(s cs) int { return s.Entries }),
	gauge("scalekit_cache_pending_invalidations", "", "Invalidations waiting for the Store.", func(s cs) int { return s.PendingInvalidations }),
	counter("scalekit_cache_delayed_invalidations", "", "Kept invalidations delivered later.", func(s cs) uint64 { return s.DelayedInvalidations }),
	counter("scalekit_cache_pending_overflows", "", "Overflows of the kept invalidations.", func(s cs) uint64 { return s.PendingOverflows }),
	counter("scalekit_cache_resubscribes", "", "Invalidation subscriptions restored.", func(s cs) uint64 { return s.Resubscribes }),
	counter("scalekit_cache_feed_losses", "", "Losses of a tracking Store's invalidation feed.", func(s cs) uint64 { return s.FeedLosses }),
}

var batchFamilies = []family[batch.Stats]{
	counter("scalekit_batch_loads", "", "Keys asked of the batcher.", func(s batch.Stats) uint64 { return s.Loads }),
	counter("scalekit_batch_deduped", "", "Loads that joined a key in the open batch.", func(s batch.Stats) uint64 { return s.Deduped }),
	counter("scalekit_batch_cancelled", "", "Callers whose ctx ended.", func(s batch.Stats) uint64 { return s.Cancelled }),
	counter("scalekit_batch_fetch_errors", "", "Fetches that returned an error.", func(s batch.Stats) uint64 { return s.FetchErrors }),
	counter("scalekit_batch_fetch_panics", "", "Fetches that panicked.", func(s batch.Stats) uint64 { return s.Panics }),
	counter("scalekit_batch_wait", "s", "Time batches spent open before their fetch.", func(s batch.Stats) float64 { return s.Wait.Seconds() }),
}

type qs = queue.Stats

var queueWorkerFamilies = []family[qs]{
	counter("scalekit_queue_fetched", "", "Jobs leased (each attempt).", func(s qs) uint64 { return s.Fetched }),
	counter("scalekit_queue_processed", "", "Jobs completed.", func(s qs) uint64 { return s.Processed }),
	counter("scalekit_queue_failed", "", "Failed attempts.", func(s qs) uint64 { return s.Failed }),
	counter("scalekit_queue_retried", "", "Failed attempts scheduled again.", func(s qs) uint64 { return s.Retried }),
	counter("scalekit_queue_dead_lettered", "", "Jobs sent to the dead letters.", func(s qs) uint64 { return s.Dead }),
	counter("scalekit_queue_released", "", "Jobs given back at shutdown.", func(s qs) uint64 { return s.Released }),
	counter("scalekit_queue_leases_lost", "", "Leases lost under the worker.", func(s qs) uint64 { return s.Lost }),
	counter("scalekit_queue_cancelled", "", "Running jobs stopped by Cancel or Delete.", func(s qs) uint64 { return s.Cancelled }),
	counter("scalekit_queue_handler_panics", "", "Handler panics.", func(s qs) uint64 { return s.Panics }),
	counter("scalekit_queue_rate_limited", "", "Jobs given back by the queue's Limiter.", func(s qs) uint64 { return s.Limited }),
	counter("scalekit_queue_snoozed", "", "Jobs snoozed.", func(s qs) uint64 { return s.Snoozed }),
	gauge("scalekit_queue_in_flight", "", "Jobs running now.", func(s qs) int64 { return s.InFlight }),
}

var httpLimitFamilies = []family[ratelimit.HTTPStats]{
	counterBy("scalekit_ratelimit_http_requests", "Requests through the rate limit middleware by result (allowed, denied, bad_key, error).", result,
		with("allowed", func(s ratelimit.HTTPStats) uint64 { return s.Allowed }), with("denied", func(s ratelimit.HTTPStats) uint64 { return s.Denied }),
		with("bad_key", func(s ratelimit.HTTPStats) uint64 { return s.BadKey }), with("error", func(s ratelimit.HTTPStats) uint64 { return s.Errors })),
}

type rs = ratelimit.RemoteStats

var redisLimitFamilies = []family[rs]{
	counterBy("scalekit_ratelimit_redis_decisions", "Decisions Redis made by result (allowed, denied).", result,
		with("allowed", func(s rs) uint64 { return s.Allowed }), with("denied", func(s rs) uint64 { return s.Denied })),
	counterBy("scalekit_ratelimit_redis_degraded_decisions", "Decisions made without Redis by mode (fail_open, fail_closed, fallback).", mode,
		with("fail_open", func(s rs) uint64 { return s.FailOpen }), with("fail_closed", func(s rs) uint64 { return s.FailClosed }),
		with("fallback", func(s rs) uint64 { return s.Fallbacks })),
	counter("scalekit_ratelimit_redis_errors", "", "Failed round trips to Redis.", func(s rs) uint64 { return s.Errors }),
	counter("scalekit_ratelimit_redis_skipped", "", "Decisions the open circuit kept away from Redis.", func(s rs) uint64 { return s.Skipped }),
	stateSet("scalekit_ratelimit_redis_circuit_state", "1 for the Redis circuit's current state, 0 for the others.", circuitStates, func(s rs) string { return s.Circuit.String() }),
	counter("scalekit_ratelimit_redis_round_trips", "", "Calls sent to Redis to decide (one per decision, coalesced batch, AllowMany or token lease).", func(s rs) uint64 { return s.RoundTrips }),
	counter("scalekit_ratelimit_redis_batches", "", "Round trips that carried a batch of decisions (coalesced calls or an AllowMany).", func(s rs) uint64 { return s.Batches }),
	counter("scalekit_ratelimit_redis_batched_decisions", "", "Decisions carried by batches; over batches, the mean batch size.", func(s rs) uint64 { return s.Batched }),
	counter("scalekit_ratelimit_redis_token_leases", "", "Token leases asked of Redis (Options.Lease).", func(s rs) uint64 { return s.Leases }),
	counterBy("scalekit_ratelimit_redis_token_lease_events", "Events of token leases by result (leased, spent, expired).", result,
		with("leased", func(s rs) uint64 { return s.Leased }), with("spent", func(s rs) uint64 { return s.LeaseSpent }),
		with("expired", func(s rs) uint64 { return s.LeaseExpired })),
}

type rcs = ratelimit.RemoteConcurrencyStats

var redisConcFamilies = []family[rcs]{
	counterBy("scalekit_ratelimit_redis_concurrency_acquisitions", "Slot requests Redis decided by result (acquired, rejected).", result,
		with("acquired", func(s rcs) uint64 { return s.Acquired }), with("rejected", func(s rcs) uint64 { return s.Rejected })),
	counterBy("scalekit_ratelimit_redis_concurrency_degraded_acquisitions", "Slot requests decided without Redis by mode (fail_open, fail_closed, fallback).", mode,
		with("fail_open", func(s rcs) uint64 { return s.FailOpen }), with("fail_closed", func(s rcs) uint64 { return s.FailClosed }),
		with("fallback", func(s rcs) uint64 { return s.Fallbacks })),
	counter("scalekit_ratelimit_redis_concurrency_releases", "", "Slots released.", func(s rcs) uint64 { return s.Released }),
	counter("scalekit_ratelimit_redis_concurrency_renewals", "", "Lease renewals.", func(s rcs) uint64 { return s.Renewals }),
	counter("scalekit_ratelimit_redis_concurrency_leases_lost", "", "Leases found gone when renewing.", func(s rcs) uint64 { return s.Lost }),
	counter("scalekit_ratelimit_redis_concurrency_errors", "", "Failed round trips to Redis.", func(s rcs) uint64 { return s.Errors }),
	counter("scalekit_ratelimit_redis_concurrency_skipped", "", "Slot requests the open circuit kept away from Redis.", func(s rcs) uint64 { return s.Skipped }),
	gauge("scalekit_ratelimit_redis_concurrency_leases_held", "", "Leases this process holds now.", func(s rcs) int { return s.Held }),
	stateSet("scalekit_ratelimit_redis_concurrency_circuit_state", "1 for the Redis circuit's current state, 0 for the others.", circuitStates, func(s rcs) string { return s.Circuit.String() }),
}

type is = idempotency.HTTPStats

var idempotencyFamilies = []family[is]{
	counterBy("scalekit_idempotency_requests", "Keyed requests by result (executed, replayed, conflict, mismatch, bad_key, unavailable).", result,
		with("executed", func(s is) uint64 { return s.Executed }), with("replayed", func(s is) uint64 { return s.Replayed }),
		with("conflict", func(s is) uint64 { return s.Conflicts }), with("mismatch", func(s is) uint64 { return s.Mismatches }),
		with("bad_key", func(s is) uint64 { return s.BadKeys }), with("unavailable", func(s is) uint64 { return s.Unavailable })),
	counter("scalekit_idempotency_released", "", "Keys given back so a retry runs again.", func(s is) uint64 { return s.Released }),
	counter("scalekit_idempotency_lease_lost", "", "Requests whose key's lease was lost while the handler ran.", func(s is) uint64 { return s.LeaseLost }),
}

var requestIDFamilies = []family[requestid.HTTPStats]{
	counterBy("scalekit_requestid_requests", "Requests given an ID by source (header, traceparent, generated).", source,
		with("header", func(s requestid.HTTPStats) uint64 { return s.Accepted }),
		with("traceparent", func(s requestid.HTTPStats) uint64 { return s.FromTraceparent }),
		with("generated", func(s requestid.HTTPStats) uint64 { return s.Generated })),
	counter("scalekit_requestid_replaced", "", "Incoming request IDs refused and replaced.", func(s requestid.HTTPStats) uint64 { return s.Replaced }),
}

var sloFamilies = []family[slo.Stats]{
	gauge("scalekit_slo_target", ratio, "The objective's target: the share of good events promised.", func(s slo.Stats) float64 { return s.Target }),
	gauge("scalekit_slo_window", seconds, "The objective's rolling window.", func(s slo.Stats) float64 { return s.Window.Seconds() }),
	gauge("scalekit_slo_window_events", "", "Events recorded in the rolling window.", func(s slo.Stats) uint64 { return s.Budget.Total }),
	gauge("scalekit_slo_window_good_events", "", "Good events recorded in the rolling window.", func(s slo.Stats) uint64 { return s.Budget.Good }),
	gauge("scalekit_slo_error_budget_allowed_events", "", "Bad events the objective allows for the window's events.", func(s slo.Stats) float64 { return s.Budget.Allowed }),
	gauge("scalekit_slo_error_budget_consumed_events", "", "Bad events in the rolling window.", func(s slo.Stats) uint64 { return s.Budget.Consumed }),
	gauge("scalekit_slo_error_budget_remaining_events", "", "Allowed minus consumed bad events.", func(s slo.Stats) float64 { return s.Budget.Remaining }),
	gauge("scalekit_slo_error_budget_remaining", ratio, "Share of the error budget left (negative: blown).", func(s slo.Stats) float64 { return s.Budget.RemainingFraction }),
	gaugeFunc("scalekit_slo_burn_rate", "", "Error rate over the window attribute's trailing window divided by the rate the objective allows.",
		func(o obs, s slo.Stats) {
			for w, r := range s.BurnRates {
				o.observe(r, attribute.String("window", windowLabel(w)))
			}
		}),
	gaugeFunc("scalekit_slo_alert_firing", "", "Whether a multi-window burn-rate alert rule fires: 1 or 0.",
		func(o obs, s slo.Stats) {
			for _, a := range s.Alerts {
				o.observe(added.Boolf(a.Firing), attribute.String("alert", a.Rule.Name), attribute.String("severity", string(a.Rule.Severity)))
			}
		}),
}

// windowLabel is d as Prometheus writes a duration (model.Duration:
// "5m", "1h30m", "3d", "1w"), the value of the burn rate's window
// attribute, written out here so that the package compiles no
// Prometheus code.
func windowLabel(d time.Duration) string {
	ms := d.Milliseconds()
	if ms == 0 {
		return "0s"
	}
	sign, out := "", ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	for _, u := range []struct {
		unit  string
		mult  int64
		exact bool
	}{{"y", 365 * 24 * 3600e3, true}, {"w", 7 * 24 * 3600e3, true}, {"d", 24 * 3600e3, false},
		{"h", 3600e3, false}, {"m", 60e3, false}, {"s", 1e3, false}, {"ms", 1, false}} {
		if u.exact && ms%u.mult != 0 {
			continue
		}
		if v := ms / u.mult; v > 0 {
			out += fmt.Sprintf("%d%s", v, u.unit)
			ms -= v * u.mult
		}
	}
	return sign + out
}

// healthStatuses are the values of the status attribute.
var healthStatuses = []string{string(health.Pass), string(health.Warn), string(health.Fail)}

type hr = added.HealthRead

var healthFamilies = []family[hr]{
	counter("scalekit_health_check_runs", "", "Health check executions (cached results are not runs).", func(s hr) uint64 { return s.Stats.Runs }),
	gauge("scalekit_health_draining", "", "1 while readiness is forced to fail for a graceful shutdown, else 0.", func(s hr) float64 { return added.Boolf(s.Stats.Draining) }),
	gaugeFunc("scalekit_health_probe_status", "", "Status of a probe: 1 for the current status (pass, warn, fail), 0 for the others.",
		func(o obs, s hr) {
			for i, k := range s.Probes {
				o.stateSet("status", healthStatuses, string(s.Reports[i].Status), probe.String(k.String()))
			}
		}),
	gaugeFunc("scalekit_health_check_up", "", "1 when a check of a probe passes, 0 when it fails.",
		func(o obs, s hr) {
			for i, k := range s.Probes {
				for _, r := range s.Reports[i].Results {
					o.observe(added.Boolf(r.Status == health.Pass), probe.String(k.String()), check.String(r.Name))
				}
			}
		}),
	gaugeFunc("scalekit_health_check_latency", seconds, "How long the latest run of a check took.",
		func(o obs, s hr) {
			for i, k := range s.Probes {
				for _, r := range s.Reports[i].Results {
					o.observe(r.Latency.Seconds(), probe.String(k.String()), check.String(r.Name))
				}
			}
		}),
}

type qc = added.QueueCount

var queueCountFamilies = []family[qc]{
	gauge("scalekit_queue_counts_up", "", "1 when the backend answered the count of the queue's jobs, 0 when it failed or ran out of its 2s.", func(n qc) float64 { return added.Boolf(n.Err == nil) }),
	gaugeFunc("scalekit_queue_jobs", "", "Jobs of the queue in the backend by state (pending, scheduled, active, retry, dead, done, cancelled).",
		func(o obs, n qc) {
			if n.Err != nil {
				return
			}
			for _, x := range []struct {
				st queue.State
				n  int64
			}{{queue.Pending, n.Pending}, {queue.Scheduled, n.Scheduled}, {queue.Active, n.Active}, {queue.Retry, n.Retry},
				{queue.Dead, n.Dead}, {queue.Done, n.Done}, {queue.Cancelled, n.Cancelled}} {
				o.observe(float64(x.n), stateK.String(string(x.st)))
			}
		}),
	gaugeFunc("scalekit_queue_oldest_pending", seconds, "Age of the oldest job due to run and not yet taken; 0 when none waits.",
		func(o obs, n qc) {
			if n.Err == nil {
				o.observe(n.OldestPending.Seconds())
			}
		}),
}

type ss = queue.ScheduleStats

var schedulerFamilies = []family[ss]{
	counterBy("scalekit_queue_periodic_ticks", "Ticks of a periodic schedule by outcome (emitted, duplicate, overlapped, missed, failed).", tickOutcome,
		with("emitted", func(s ss) uint64 { return s.Emitted }), with("duplicate", func(s ss) uint64 { return s.Duplicates }),
		with("overlapped", func(s ss) uint64 { return s.Overlapped }), with("missed", func(s ss) uint64 { return s.Missed }),
		with("failed", func(s ss) uint64 { return s.Failed })),
	gaugeFunc("scalekit_queue_periodic_next_tick_timestamp", seconds, "When the schedule's next tick is due (Unix time).",
		func(o obs, s ss) {
			if !s.Next.IsZero() {
				o.observe(added.UnixSeconds(s.Next))
			}
		}),
}

// tracerFamilies are the families of a pool's dbrouter.Tracer counts, the
// server being primary or replica.
func tracerFamilies(server string) []family[routerstats.TracerStats] {
	type t = routerstats.TracerStats
	p := "scalekit_dbrouter_" + server
	return []family[t]{
		counter(p+"_queries", "", "Queries the pool's dbrouter.Tracer saw finish.", func(s t) uint64 { return s.Queries }),
		counter(p+"_query_errors", "", "Queries on the pool that failed.", func(s t) uint64 { return s.Errors }),
		counter(p+"_slow_queries", "", "Queries on the pool at or over the Tracer's SlowThreshold.", func(s t) uint64 { return s.Slow }),
		counter(p+"_query_duration", seconds, "Total time of the queries on the pool.", func(s t) float64 { return s.Duration.Seconds() }),
	}
}

// poolFamilies are the families of a pool's pgxpool.Stat, the server being
// primary or replica (a negative count, which pgxpool never gives, reads
// as 0).
func poolFamilies(server string) []family[routerstats.PoolStats] {
	type ps = routerstats.PoolStats
	p := "scalekit_dbrouter_" + server + "_pool"
	return []family[ps]{
		gaugeBy(p+"_connections", "Connections of the pool by state (acquired, idle, constructing).", stateK,
			with("acquired", func(s ps) int32 { return s.AcquiredConns }), with("idle", func(s ps) int32 { return s.IdleConns }),
			with("constructing", func(s ps) int32 { return s.ConstructingConns })),
		gauge(p+"_max_connections", "", "The pool's size (MaxConns).", func(s ps) int32 { return s.MaxConns }),
		counter(p+"_acquires", "", "Connections the pool handed out.", func(s ps) int64 { return max(s.Acquires, 0) }),
		counter(p+"_acquire", seconds, "Total time callers waited to acquire a connection.", func(s ps) float64 { return s.AcquireDuration.Seconds() }),
		counter(p+"_empty_acquires", "", "Acquires that found no idle connection and had to wait.", func(s ps) int64 { return max(s.EmptyAcquires, 0) }),
		counter(p+"_empty_acquire_wait", seconds, "Total time the empty acquires waited.", func(s ps) float64 { return s.EmptyAcquireWait.Seconds() }),
		counter(p+"_canceled_acquires", "", "Acquires whose ctx ended while they waited.", func(s ps) int64 { return max(s.CanceledAcquires, 0) }),
	}
}

type drs = routerstats.Stats

var dbrouterFamilies = []family[drs]{
	counter("scalekit_dbrouter_fallbacks", "", "Reads sent to the primary because no replica was healthy and caught up.", func(s drs) uint64 { return s.Fallbacks }),
	counter("scalekit_dbrouter_token_primary_reads", "", "Reads sent to the primary because of their read-your-writes token.", func(s drs) uint64 { return s.TokenPrimary }),
	counter("scalekit_dbrouter_token_waits", "", "Reads that waited for a replica to replay their token and got one.", func(s drs) uint64 { return s.TokenWaits }),
	counterBy("scalekit_dbrouter_retries", "Reads that failed on a replica and ran again on the primary by reason (replica_failed, read_only).", reason,
		with("replica_failed", func(s drs) uint64 { return s.ReplicaRetries }), with("read_only", func(s drs) uint64 { return s.ReadOnlyRetries })),
	counter("scalekit_dbrouter_no_replica_errors", "", "Reads refused with ErrNoReplica.", func(s drs) uint64 { return s.NoReplicaErrors }),
	counter("scalekit_dbrouter_forged_tokens", "", "Reads whose token was beyond anything the primary had written.", func(s drs) uint64 { return s.ForgedTokens }),
	counter("scalekit_dbrouter_failovers", "", "Moves of the writes to another server (Options.Failover).", func(s drs) uint64 { return s.Failovers }),
	counter("scalekit_dbrouter_lost_tokens", "", "Reads whose token's write was lost in a failover (past its timeline's switch point).", func(s drs) uint64 { return s.LostTokens }),
	counter("scalekit_dbrouter_split_brain_checks", "", "Monitor checks that saw more than one server claim to be the primary.", func(s drs) uint64 { return s.SplitBrains }),
}

// succeeded is the checks of all that did not fail.
func succeeded(all, failures uint64) uint64 { return all - min(failures, all) }

type prs = routerstats.PrimaryStats

var primaryFamilies = []family[prs]{
	gauge("scalekit_dbrouter_primary_up", "", "1 when the monitor's last check of the primary succeeded, else 0.", func(p prs) float64 { return added.Boolf(p.Up) }),
	gauge("scalekit_dbrouter_primary_timeline", "", "The write server's timeline (rises with each promotion); 0 before a reading.", func(p prs) uint64 { return uint64(p.Timeline) }),
	gauge("scalekit_dbrouter_primary_wal_lsn", bytes, "The primary's WAL position at the last good check; 0 before one.", func(p prs) routerstats.LSN { return p.LSN }),
	counterBy("scalekit_dbrouter_primary_calls", "Calls routed to the primary by intent (read, write).", intent,
		with("read", func(p prs) uint64 { return p.Reads }), with("write", func(p prs) uint64 { return p.Writes })),
	counterBy("scalekit_dbrouter_primary_checks", "The monitor's checks of the primary by result (success, failure).", result,
		with("success", func(p prs) uint64 { return succeeded(p.Checks, p.CheckFailures) }), with("failure", func(p prs) uint64 { return p.CheckFailures })),
	gauge("scalekit_dbrouter_primary_last_check_timestamp", seconds, "When the monitor last checked the primary (Unix time); 0 before.", func(p prs) float64 { return added.UnixSeconds(p.LastCheck) }),
}

type reps = routerstats.ReplicaStats

var replicaFamilies = []family[reps]{
	gauge("scalekit_dbrouter_replica_healthy", "", "1 while reads may go to the replica, else 0.", func(r reps) float64 { return added.Boolf(r.Healthy) }),
	gauge("scalekit_dbrouter_replica_replay_lsn", bytes, "The replica's replayed WAL position at the last check; 0 before one.", func(r reps) routerstats.LSN { return r.ReplayLSN }),
	gaugeFunc("scalekit_dbrouter_replica_lag", bytes, "Bytes of WAL the replica's replay was behind the primary; left out when unknown.",
		func(o obs, r reps) {
			if r.LagKnown {
				o.observe(float64(r.LagBytes))
			}
		}),
	gauge("scalekit_dbrouter_replica_in_flight", "", "The router's reads running on the replica now.", func(r reps) int64 { return r.InFlight }),
	counter("scalekit_dbrouter_replica_reads", "", "Reads routed to the replica.", func(r reps) uint64 { return r.Reads }),
	counter("scalekit_dbrouter_replica_failed_reads", "", "Reads that failed on the replica for want of the server.", func(r reps) uint64 { return r.FailedReads }),
	counter("scalekit_dbrouter_replica_ejections", "", "Moves of the replica out of the healthy set.", func(r reps) uint64 { return r.Ejections }),
	counter("scalekit_dbrouter_replica_readmissions", "", "Moves of the replica back into the healthy set.", func(r reps) uint64 { return r.Readmissions }),
	counterBy("scalekit_dbrouter_replica_checks", "The monitor's checks of the replica by result (success, failure).", result,
		with("success", func(r reps) uint64 { return succeeded(r.Checks, r.CheckFailures) }), with("failure", func(r reps) uint64 { return r.CheckFailures })),
	gauge("scalekit_dbrouter_replica_last_check_timestamp", seconds, "When the monitor last checked the replica (Unix time); 0 before.", func(r reps) float64 { return added.UnixSeconds(r.LastCheck) }),
	counter("scalekit_dbrouter_replica_replay_regressions", "", "Readings of the replica's replay LSN lower than the one before.", func(r reps) uint64 { return r.ReplayRegressions }),
}

type shrs = shardstats.Stats

var shardFamilies = []family[shrs]{
	gauge("scalekit_shard_virtual_shards", "", "Virtual shards keys hash to (Options.VirtualShards).", func(s shrs) int { return s.VirtualShards }),
	gauge("scalekit_shard_clusters", "", "Clusters the router knows, holding virtual shards or not.", func(s shrs) int { return s.Clusters }),
	gauge("scalekit_shard_map_version", "", "Version of the shard map in use.", func(s shrs) int64 { return s.MapVersion }),
	counter("scalekit_shard_map_swaps", "", "Shard maps SetMap installed.", func(s shrs) int64 { return s.MapSwaps }),
	counter("scalekit_shard_maps_refused", "", "Shard maps SetMap refused: stale or invalid.", func(s shrs) int64 { return s.MapRefused }),
	counter("scalekit_shard_no_key", "", "For and ForContext calls refused with ErrNoShardKey.", func(s shrs) int64 { return s.NoShardKey }),
	counter("scalekit_shard_fanouts", "", "Fan-outs over clusters (Each, Gather, GatherSorted) that ran.", func(s shrs) int64 { return s.FanOuts }),
	counter("scalekit_shard_fanouts_failed", "", "Fan-outs in which at least one cluster's call failed.", func(s shrs) int64 { return s.FanOutsFailed }),
}

// shardCluster is one cluster's share of the map in use and its fan-out
// counters.
type shardCluster struct {
	vshards int
	fan     shardstats.FanOutStats
}

var shardClusterFamilies = []family[shardCluster]{
	gauge("scalekit_shard_cluster_vshards", "", "Virtual shards the map in use assigns to the cluster.", func(c shardCluster) int { return c.vshards }),
	counter("scalekit_shard_cluster_fanout_calls", "", "Fan-out calls made on the cluster.", func(c shardCluster) int64 { return c.fan.Calls }),
	counter("scalekit_shard_cluster_fanout_errors", "", "Fan-out calls on the cluster that failed or never started.", func(c shardCluster) int64 { return c.fan.Errors }),
	counter("scalekit_shard_cluster_fanout_timeouts", "", "Fan-out calls on the cluster that ran past EachOptions.Timeout.", func(c shardCluster) int64 { return c.fan.Timeouts }),
}

type shrss = shardstats.StoreStats

var shardStoreFamilies = []family[shrss]{
	counter("scalekit_shard_store_notifications", "", "Map change notifications (LISTEN/NOTIFY) the store's Watch received.", func(s shrss) int64 { return s.Notifications }),
	counter("scalekit_shard_store_polls", "", "Re-reads of the stored map for want of a notification within PollInterval.", func(s shrss) int64 { return s.Polls }),
	counter("scalekit_shard_store_reconnects", "", "Reconnects of Watch's LISTEN connection to the config database.", func(s shrss) int64 { return s.Reconnects }),
	counter("scalekit_shard_store_retried_writes", "", "Writes Do ran again on a virtual shard's new cluster after the old cluster's fence refused them.", func(s shrss) int64 { return s.Retried }),
	counter("scalekit_shard_store_moves", "", "Virtual shard moves finished by Movers on the store.", func(s shrss) int64 { return s.Moves }),
	gauge("scalekit_shard_store_last_move_fence", seconds, "How long the last finished move fenced writes to its virtual shard (the write pause); 0 before any.", func(s shrss) float64 { return s.LastFence.Seconds() }),
}
