package metrics

import (
	"github.com/scalekit-go/scalekit/cache"
)

var cacheFamilies = []family[cache.Stats]{
	counterBy("scalekit_cache_hits_total", "Cache hits by tier: l1 counts Gets served a fresh in-process value, l2 keys found in the shared Store.", "tier",
		with("l1", func(s cache.Stats) uint64 { return s.Hits }),
		with("l2", func(s cache.Stats) uint64 { return s.L2Hits })),
	counterBy("scalekit_cache_misses_total", "Cache misses by tier: l1 counts Gets that had to wait for the Store or a load, l2 keys missing from the Store.", "tier",
		with("l1", func(s cache.Stats) uint64 { return s.Misses }),
		with("l2", func(s cache.Stats) uint64 { return s.L2Misses })),
	counter("scalekit_cache_negative_hits_total", "Remembered not-found results served.", func(s cache.Stats) uint64 { return s.NegativeHits }),
	counter("scalekit_cache_stale_served_total", "Values served past their freshness while a refresh runs (stale-while-revalidate).", func(s cache.Stats) uint64 { return s.StaleServed }),
	counterBy("scalekit_cache_refreshes_total", "Background refreshes started, by trigger: early (XFetch, before expiry) or stale (a stale read).", "trigger",
		with("early", func(s cache.Stats) uint64 { return s.EarlyRefreshes }),
		with("stale", func(s cache.Stats) uint64 { return s.StaleRefreshes })),
	counter("scalekit_cache_loads_total", "Loader calls (a GetMany batch counts once).", func(s cache.Stats) uint64 { return s.Loads }),
	counter("scalekit_cache_load_errors_total", "Loader calls that failed (not-found excluded).", func(s cache.Stats) uint64 { return s.LoadErrors }),
	counter("scalekit_cache_load_panics_total", "Loader calls that panicked.", func(s cache.Stats) uint64 { return s.Panics }),
	counter("scalekit_cache_coalesced_total", "Gets and refreshes that joined a load in flight instead of starting one.", func(s cache.Stats) uint64 { return s.Coalesced }),
	counter("scalekit_cache_l2_errors_total", "Store calls that failed.", func(s cache.Stats) uint64 { return s.L2Errors }),
	counter("scalekit_cache_l2_skipped_total", "Store calls the open circuit kept from the Store.", func(s cache.Stats) uint64 { return s.L2Skipped }),
	stateSet("scalekit_cache_l2_circuit_state", "State of the circuit breaker around the Store: 1 for the current state (closed, open, half-open), 0 for the others.", circuitStates, func(s cache.Stats) string { return s.Circuit.String() }),
	counter("scalekit_cache_leases_won_total", "Loads this instance did under a fill lease.", func(s cache.Stats) uint64 { return s.LeasesWon }),
	counter("scalekit_cache_lease_waits_total", "Misses that waited for another instance's fill.", func(s cache.Stats) uint64 { return s.LeaseWaits }),
	counter("scalekit_cache_lease_busy_total", "Refreshes left to another instance holding the lease.", func(s cache.Stats) uint64 { return s.LeaseBusy }),
	counter("scalekit_cache_lease_timeouts_total", "Waits for another instance's fill that gave up after LeaseTTL.", func(s cache.Stats) uint64 { return s.LeaseTimeouts }),
	counter("scalekit_cache_fills_refused_total", "Fills a Set, Delete or expired lease voided.", func(s cache.Stats) uint64 { return s.FillsRefused }),
	counter("scalekit_cache_codec_errors_total", "Values that could not be encoded or decoded.", func(s cache.Stats) uint64 { return s.CodecErrors }),
	counter("scalekit_cache_invalidations_total", "Invalidation messages from other instances applied.", func(s cache.Stats) uint64 { return s.Invalidations }),
	gauge("scalekit_cache_l1_entries", "Entries held in the in-process tier now (an estimate).", func(s cache.Stats) int { return s.Entries }),
	gauge("scalekit_cache_pending_invalidations", "Invalidations (Set, Delete, Namespace.Invalidate) kept while the Store could not take them, waiting to be delivered.", func(s cache.Stats) int { return s.PendingInvalidations }),
	counter("scalekit_cache_delayed_invalidations_total", "Kept invalidations delivered once the Store answered again.", func(s cache.Stats) uint64 { return s.DelayedInvalidations }),
	counter("scalekit_cache_pending_overflows_total", "Times the kept invalidations passed MaxPendingInvalidations and collapsed into a flush of every L1 and a bump of every namespace.", func(s cache.Stats) uint64 { return s.PendingOverflows }),
	counter("scalekit_cache_resubscribes_total", "Times the invalidation subscription came back after a lost connection (the L1 was dropped: messages may have been missed).", func(s cache.Stats) uint64 { return s.Resubscribes }),
	counter("scalekit_cache_feed_losses_total", "Times a tracking Store's feed of server invalidations was lost (the L1 was dropped).", func(s cache.Stats) uint64 { return s.FeedLosses }),
}

// AddCache reports the Stats of a cache (any *cache.Cache[V]) under name.
func (c *Collector) AddCache(name string, cc interface{ Stats() cache.Stats }) error {
	return addStats(c, "AddCache", "the cache", cc, named{"cache", name}, &c.cache)
}
