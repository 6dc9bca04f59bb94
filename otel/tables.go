package scalekitotel

import (
	"go.opentelemetry.io/otel/attribute"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
)

// The attributes splitting a counter, as package metrics's labels.
const (
	result  = attribute.Key("result")
	tier    = attribute.Key("tier")
	trigger = attribute.Key("trigger")
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
	gauge("scalekit_breaker_open_until_timestamp", "s", "When an open breaker starts probing (Unix time); 0 unless open.", func(s bs) float64 {
		if s.OpenUntil.IsZero() {
			return 0
		}
		return float64(s.OpenUntil.UnixNano()) / 1e9
	}),
}

var retrierFamilies = []family[retry.Stats]{
	counter("scalekit_retry_calls", "", "Calls to the retrier.", func(s retry.Stats) uint64 { return s.Calls }),
	counter("scalekit_retry_attempts", "", "Attempts, first ones included.", func(s retry.Stats) uint64 { return s.Attempts }),
	counter("scalekit_retry_retries", "", "Attempts after the first.", func(s retry.Stats) uint64 { return s.Retries }),
	counter("scalekit_retry_exhausted", "", "Calls the retrier gave up on.", func(s retry.Stats) uint64 { return s.Exhausted }),
	counter("scalekit_retry_exhausted_by_budget", "", "Give-ups for an empty retry budget.", func(s retry.Stats) uint64 { return s.BudgetRefusals }),
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
