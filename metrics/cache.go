package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/cache"
)

type cacheDescs struct {
	hits, misses, negativeHits, staleServed, refreshes           *prometheus.Desc
	loads, loadErrors, loadPanics, coalesced                     *prometheus.Desc
	l2Errors, l2Skipped, l2Circuit                               *prometheus.Desc
	leasesWon, leaseWaits, leaseBusy, leaseTimeouts, fillRefused *prometheus.Desc
	codecErrors, invalidations, entries                          *prometheus.Desc
	pending, delayed, overflows, resubscribes                    *prometheus.Desc
}

func newCacheDescs(b *builder) cacheDescs {
	return cacheDescs{
		hits:          b.desc("scalekit_cache_hits_total", "Cache hits by tier: l1 counts Gets served a fresh in-process value, l2 keys found in the shared Store.", "tier"),
		misses:        b.desc("scalekit_cache_misses_total", "Cache misses by tier: l1 counts Gets that had to wait for the Store or a load, l2 keys missing from the Store.", "tier"),
		negativeHits:  b.desc("scalekit_cache_negative_hits_total", "Remembered not-found results served."),
		staleServed:   b.desc("scalekit_cache_stale_served_total", "Values served past their freshness while a refresh runs (stale-while-revalidate)."),
		refreshes:     b.desc("scalekit_cache_refreshes_total", "Background refreshes started, by trigger: early (XFetch, before expiry) or stale (a stale read).", "trigger"),
		loads:         b.desc("scalekit_cache_loads_total", "Loader calls (a GetMany batch counts once)."),
		loadErrors:    b.desc("scalekit_cache_load_errors_total", "Loader calls that failed (not-found excluded)."),
		loadPanics:    b.desc("scalekit_cache_load_panics_total", "Loader calls that panicked."),
		coalesced:     b.desc("scalekit_cache_coalesced_total", "Gets and refreshes that joined a load in flight instead of starting one."),
		l2Errors:      b.desc("scalekit_cache_l2_errors_total", "Store calls that failed."),
		l2Skipped:     b.desc("scalekit_cache_l2_skipped_total", "Store calls the open circuit kept from the Store."),
		l2Circuit:     b.desc("scalekit_cache_l2_circuit_state", "State of the circuit breaker around the Store: 1 for the current state (closed, open, half-open), 0 for the others.", "state"),
		leasesWon:     b.desc("scalekit_cache_leases_won_total", "Loads this instance did under a fill lease."),
		leaseWaits:    b.desc("scalekit_cache_lease_waits_total", "Misses that waited for another instance's fill."),
		leaseBusy:     b.desc("scalekit_cache_lease_busy_total", "Refreshes left to another instance holding the lease."),
		leaseTimeouts: b.desc("scalekit_cache_lease_timeouts_total", "Waits for another instance's fill that gave up after LeaseTTL."),
		fillRefused:   b.desc("scalekit_cache_fills_refused_total", "Fills a Set, Delete or expired lease voided."),
		codecErrors:   b.desc("scalekit_cache_codec_errors_total", "Values that could not be encoded or decoded."),
		invalidations: b.desc("scalekit_cache_invalidations_total", "Invalidation messages from other instances applied."),
		entries:       b.desc("scalekit_cache_l1_entries", "Entries held in the in-process tier now (an estimate)."),
		pending:       b.desc("scalekit_cache_pending_invalidations", "Invalidations (Set, Delete, Namespace.Invalidate) kept while the Store could not take them, waiting to be delivered."),
		delayed:       b.desc("scalekit_cache_delayed_invalidations_total", "Kept invalidations delivered once the Store answered again."),
		overflows:     b.desc("scalekit_cache_pending_overflows_total", "Times the kept invalidations passed MaxPendingInvalidations and collapsed into a flush of every L1 and a bump of every namespace."),
		resubscribes:  b.desc("scalekit_cache_resubscribes_total", "Times the invalidation subscription came back after a lost connection (the L1 was dropped: messages may have been missed)."),
	}
}

// AddCache reports the Stats of a cache (any *cache.Cache[V]) under name.
func (c *Collector) AddCache(name string, cc interface{ Stats() cache.Stats }) error {
	if isNil(cc) {
		return nilArg("AddCache", "the cache")
	}
	d := &c.cache
	return c.add("AddCache", named{"cache", name}, func(ch chan<- prometheus.Metric) {
		st := cc.Stats()
		counter(ch, d.hits, st.Hits, name, "l1")
		counter(ch, d.hits, st.L2Hits, name, "l2")
		counter(ch, d.misses, st.Misses, name, "l1")
		counter(ch, d.misses, st.L2Misses, name, "l2")
		counter(ch, d.negativeHits, st.NegativeHits, name)
		counter(ch, d.staleServed, st.StaleServed, name)
		counter(ch, d.refreshes, st.EarlyRefreshes, name, "early")
		counter(ch, d.refreshes, st.StaleRefreshes, name, "stale")
		counter(ch, d.loads, st.Loads, name)
		counter(ch, d.loadErrors, st.LoadErrors, name)
		counter(ch, d.loadPanics, st.Panics, name)
		counter(ch, d.coalesced, st.Coalesced, name)
		counter(ch, d.l2Errors, st.L2Errors, name)
		counter(ch, d.l2Skipped, st.L2Skipped, name)
		stateSet(ch, d.l2Circuit, circuitStates, st.Circuit.String(), name)
		counter(ch, d.leasesWon, st.LeasesWon, name)
		counter(ch, d.leaseWaits, st.LeaseWaits, name)
		counter(ch, d.leaseBusy, st.LeaseBusy, name)
		counter(ch, d.leaseTimeouts, st.LeaseTimeouts, name)
		counter(ch, d.fillRefused, st.FillsRefused, name)
		counter(ch, d.codecErrors, st.CodecErrors, name)
		counter(ch, d.invalidations, st.Invalidations, name)
		gauge(ch, d.entries, float64(st.Entries), name)
		gauge(ch, d.pending, float64(st.PendingInvalidations), name)
		counter(ch, d.delayed, st.DelayedInvalidations, name)
		counter(ch, d.overflows, st.PendingOverflows, name)
		counter(ch, d.resubscribes, st.Resubscribes, name)
	})
}
