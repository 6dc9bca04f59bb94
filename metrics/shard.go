package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/shard/shardstats"
)

var shardFamilies = []family[shardstats.Stats]{
	gauge("scalekit_shard_virtual_shards", "Virtual shards keys hash to (Options.VirtualShards).", func(s shardstats.Stats) int { return s.VirtualShards }),
	gauge("scalekit_shard_clusters", "Clusters the router knows (Options.Clusters), holding virtual shards or not.", func(s shardstats.Stats) int { return s.Clusters }),
	gauge("scalekit_shard_map_version", "Version of the shard map in use: routers of one fleet that disagree are mid-rollout.", func(s shardstats.Stats) int64 { return s.MapVersion }),
	counter("scalekit_shard_map_swaps_total", "Shard maps SetMap installed.", func(s shardstats.Stats) int64 { return s.MapSwaps }),
	counter("scalekit_shard_maps_refused_total", "Shard maps SetMap refused: stale (a version not newer than the one in use) or invalid.", func(s shardstats.Stats) int64 { return s.MapRefused }),
	counter("scalekit_shard_no_key_total", "For and ForContext calls refused with ErrNoShardKey (no shard key: a routing bug in the caller).", func(s shardstats.Stats) int64 { return s.NoShardKey }),
	counter("scalekit_shard_fanouts_total", "Fan-outs over clusters (Each, Gather, GatherSorted) that ran.", func(s shardstats.Stats) int64 { return s.FanOuts }),
	counter("scalekit_shard_fanouts_failed_total", "Fan-outs in which at least one cluster's call failed.", func(s shardstats.Stats) int64 { return s.FanOutsFailed }),
}

// shardCluster is one cluster's share of the map in use and its fan-out
// counters.
type shardCluster struct {
	vshards int
	fan     shardstats.FanOutStats
}

var shardClusterFamilies = []family[shardCluster]{
	gauge("scalekit_shard_cluster_vshards", "Virtual shards the map in use assigns to the cluster (0 for a cluster holding none).", func(c shardCluster) int { return c.vshards }),
	counter("scalekit_shard_cluster_fanout_calls_total", "Fan-out calls made on the cluster.", func(c shardCluster) int64 { return c.fan.Calls }),
	counter("scalekit_shard_cluster_fanout_errors_total", "Fan-out calls on the cluster that failed or never started (the fan-out's ctx ended first).", func(c shardCluster) int64 { return c.fan.Errors }),
	counter("scalekit_shard_cluster_fanout_timeouts_total", "Fan-out calls on the cluster that ran past EachOptions.Timeout (also counted as errors).", func(c shardCluster) int64 { return c.fan.Timeouts }),
}

// shardFanOut is the optional per-cluster fan-out method of a
// *shard.Router.
type shardFanOut interface {
	FanOutStats() map[string]shardstats.FanOutStats
}

// shardTables are a shard router's tables: its own and each cluster's
// (labelled cluster), and a map store's.
type shardTables struct {
	router  table[shardstats.Stats]
	cluster table[shardCluster]
	store   table[shardstats.StoreStats]
}

func newShardTables(b *builder) shardTables {
	return shardTables{
		router:  newTable(b, shardFamilies),
		cluster: newTable(b, shardClusterFamilies, "cluster"),
		store:   newTable(b, shardStoreFamilies),
	}
}

// AddShard reports r's Stats under name: its map's version, the maps
// SetMap installed and refused, the calls refused for want of a key, and
// per cluster (the cluster label, its name in Options.Clusters) the
// virtual shards the map in use assigns it, and its fan-out calls, errors
// and timeouts (with the fan-outs in all). The clusters' own routers are
// not included: add each with AddDBRouter.
//
// r is a *shard.Router: the parameter names only its methods, so that
// package metrics does not compile dbrouter and pgx.
func (c *Collector) AddShard(name string, r interface {
	Stats() shardstats.Stats
	VShards() map[string]int
}) error {
	if isNil(r) {
		return nilArg("AddShard", "the *shard.Router")
	}
	t := &c.shard
	return c.add("AddShard", named{"shard", name}, func(ch chan<- prometheus.Metric) {
		t.router.collect(ch, r.Stats(), name)
		var fan map[string]shardstats.FanOutStats
		if f, ok := r.(shardFanOut); ok {
			fan = f.FanOutStats()
		}
		for cl, n := range r.VShards() {
			t.cluster.collect(ch, shardCluster{vshards: n, fan: fan[cl]}, name, cl)
		}
	})
}

var shardStoreFamilies = []family[shardstats.StoreStats]{
	counter("scalekit_shard_store_notifications_total", "Map change notifications (LISTEN/NOTIFY) the store's Watch received.", func(s shardstats.StoreStats) int64 { return s.Notifications }),
	counter("scalekit_shard_store_polls_total", "Re-reads of the stored map for want of a notification within PollInterval.", func(s shardstats.StoreStats) int64 { return s.Polls }),
	counter("scalekit_shard_store_reconnects_total", "Reconnects of Watch's LISTEN connection to the config database.", func(s shardstats.StoreStats) int64 { return s.Reconnects }),
	counter("scalekit_shard_store_retried_writes_total", "Writes Do ran again on a virtual shard's new cluster after the old cluster's fence refused them.", func(s shardstats.StoreStats) int64 { return s.Retried }),
	counter("scalekit_shard_store_moves_total", "Virtual shard moves finished by Movers on the store.", func(s shardstats.StoreStats) int64 { return s.Moves }),
	gauge("scalekit_shard_store_last_move_fence_seconds", "How long the last finished move fenced writes to its virtual shard (the write pause); 0 before any.", func(s shardstats.StoreStats) float64 { return s.LastFence.Seconds() }),
}

// AddShardStore reports s's Stats under name: the notifications, polls
// and reconnects of its Watch, the writes its Do retried after a move's
// fence refused them, and the moves finished with the last one's fence.
//
// s is a *shard.MapStore: the parameter names only its method, so that
// package metrics does not compile pgx.
func (c *Collector) AddShardStore(name string, s interface{ Stats() shardstats.StoreStats }) error {
	if isNil(s) {
		return nilArg("AddShardStore", "the *shard.MapStore")
	}
	t := &c.shard.store
	return c.add("AddShardStore", named{"shard store", name}, func(ch chan<- prometheus.Metric) {
		t.collect(ch, s.Stats(), name)
	})
}
