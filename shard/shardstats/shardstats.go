// Package shardstats holds the snapshot type of package shard (Stats)
// without shard's dependency on dbrouter and pgx, so that collectors such
// as package metrics can read a shard.Router's state without compiling
// pgx. shard re-exports Stats under the same name; users of shard need not
// import this package.
//
//	var st shardstats.Stats = router.Stats() // router is a *shard.Router
//	fmt.Println(st.MapVersion, st.MapRefused)
package shardstats

// Stats is a snapshot of a shard.Router's counters.
type Stats struct {
	// VirtualShards and Clusters are the configured counts.
	VirtualShards, Clusters int
	// MapVersion is the installed map's version.
	MapVersion int64
	// MapSwaps counts maps installed by SetMap; MapRefused counts maps it
	// refused (stale or invalid).
	MapSwaps, MapRefused int64
	// NoShardKey counts For and ForContext calls refused for want of a key.
	NoShardKey int64

	// FanOuts counts fan-outs (Each, Gather, GatherSorted) that ran;
	// FanOutsFailed those in which at least one cluster failed.
	FanOuts, FanOutsFailed int64
	// FanOut sums every cluster's fan-out counters; shard.Router's
	// FanOutStats has them per cluster.
	FanOut FanOutStats
}

// FanOutStats are a cluster's fan-out counters (or their sum over the
// clusters).
type FanOutStats struct {
	// Calls counts the calls made on the cluster; Errors those that failed
	// or never started (the fan-out's ctx ended first), Timeouts those of
	// Errors that ran past EachOptions.Timeout.
	Calls, Errors, Timeouts int64
}
