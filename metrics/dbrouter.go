package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/internal/added"
)

// tracerFamilies are the families of a pool's dbrouter.Tracer counts, the
// server being primary or replica.
func tracerFamilies(server string) []family[routerstats.TracerStats] {
	return []family[routerstats.TracerStats]{
		counter("scalekit_dbrouter_"+server+"_queries_total", "Queries the "+server+" pool's dbrouter.Tracer saw finish (the router's own checks excluded).", func(t routerstats.TracerStats) uint64 { return t.Queries }),
		counter("scalekit_dbrouter_"+server+"_query_errors_total", "Queries on the "+server+" pool that failed, by its Tracer.", func(t routerstats.TracerStats) uint64 { return t.Errors }),
		counter("scalekit_dbrouter_"+server+"_slow_queries_total", "Queries on the "+server+" pool at or over the Tracer's SlowThreshold.", func(t routerstats.TracerStats) uint64 { return t.Slow }),
		counter("scalekit_dbrouter_"+server+"_query_duration_seconds_total", "Total time of the queries on the "+server+" pool, by its Tracer.", func(t routerstats.TracerStats) float64 { return t.Duration.Seconds() }),
	}
}

// poolFamilies are the families of a pool's pgxpool.Stat, the server being
// primary or replica. The counts are int64 in pgxpool: a negative one (it
// never is) would read as 0.
func poolFamilies(server string) []family[routerstats.PoolStats] {
	return []family[routerstats.PoolStats]{
		gaugeBy("scalekit_dbrouter_"+server+"_pool_connections", "Connections of the "+server+" pool by state: acquired (in use), idle, constructing (being opened).", "state",
			with("acquired", func(p routerstats.PoolStats) int32 { return p.AcquiredConns }),
			with("idle", func(p routerstats.PoolStats) int32 { return p.IdleConns }),
			with("constructing", func(p routerstats.PoolStats) int32 { return p.ConstructingConns })),
		gauge("scalekit_dbrouter_"+server+"_pool_max_connections", "The "+server+" pool's size (MaxConns).", func(p routerstats.PoolStats) int32 { return p.MaxConns }),
		counter("scalekit_dbrouter_"+server+"_pool_acquires_total", "Connections the "+server+" pool handed out.", func(p routerstats.PoolStats) int64 { return max(p.Acquires, 0) }),
		counter("scalekit_dbrouter_"+server+"_pool_acquire_seconds_total", "Total time callers waited to acquire a connection of the "+server+" pool.", func(p routerstats.PoolStats) float64 { return p.AcquireDuration.Seconds() }),
		counter("scalekit_dbrouter_"+server+"_pool_empty_acquires_total", "Acquires that found no idle connection in the "+server+" pool and had to wait: a rising share of acquires_total is a pool too small for its load.", func(p routerstats.PoolStats) int64 { return max(p.EmptyAcquires, 0) }),
		counter("scalekit_dbrouter_"+server+"_pool_empty_acquire_wait_seconds_total", "Total time the "+server+" pool's empty acquires waited.", func(p routerstats.PoolStats) float64 { return p.EmptyAcquireWait.Seconds() }),
		counter("scalekit_dbrouter_"+server+"_pool_canceled_acquires_total", "Acquires of the "+server+" pool whose ctx ended while they waited.", func(p routerstats.PoolStats) int64 { return max(p.CanceledAcquires, 0) }),
	}
}

var dbrouterFamilies = []family[routerstats.Stats]{
	counter("scalekit_dbrouter_fallbacks_total", "Reads sent to the primary because every replica was ejected, or none had replayed the router's floor (its start or last Fence) yet.", func(s routerstats.Stats) uint64 { return s.Fallbacks }),
	counter("scalekit_dbrouter_token_primary_reads_total", "Reads sent to the primary because of their read-your-writes token: no healthy replica had replayed it (after TokenWait), or its write was less than Window ago.", func(s routerstats.Stats) uint64 { return s.TokenPrimary }),
	counter("scalekit_dbrouter_token_waits_total", "Reads that waited for a replica to replay their token and got one.", func(s routerstats.Stats) uint64 { return s.TokenWaits }),
	counterBy("scalekit_dbrouter_retries_total", "Reads that failed on a replica and ran again on the primary, by reason: replica_failed (server down, connection lost, recovery conflict; before the first row) or read_only (SQLSTATE 25006: the read writes, a routing bug).", "reason",
		with("replica_failed", func(s routerstats.Stats) uint64 { return s.ReplicaRetries }),
		with("read_only", func(s routerstats.Stats) uint64 { return s.ReadOnlyRetries })),
	counter("scalekit_dbrouter_no_replica_errors_total", "Reads refused with ErrNoReplica (every replica ejected, with NoFallback).", func(s routerstats.Stats) uint64 { return s.NoReplicaErrors }),
	counter("scalekit_dbrouter_forged_tokens_total", "Reads whose read-your-writes token was beyond anything the primary had written (forged): clamped to the primary's position.", func(s routerstats.Stats) uint64 { return s.ForgedTokens }),
	counter("scalekit_dbrouter_failovers_total", "Moves of the writes to another server (Options.Failover): a promoted replica, or back.", func(s routerstats.Stats) uint64 { return s.Failovers }),
	counter("scalekit_dbrouter_lost_tokens_total", "Reads whose token's write was past its timeline's switch point: lost in a failover; the read went to the primary.", func(s routerstats.Stats) uint64 { return s.LostTokens }),
	counter("scalekit_dbrouter_split_brain_checks_total", "Monitor checks that saw more than one server claim to be the primary (Options.Failover): writes go only to the latest timeline's.", func(s routerstats.Stats) uint64 { return s.SplitBrains }),
}

var primaryFamilies = []family[routerstats.PrimaryStats]{
	gauge("scalekit_dbrouter_primary_up", "1 when the monitor's last check of the primary succeeded, else 0.", func(p routerstats.PrimaryStats) float64 { return added.Boolf(p.Up) }),
	gauge("scalekit_dbrouter_primary_timeline", "The write server's timeline at the monitor's last reading (it rises with each promotion); 0 before one.", func(p routerstats.PrimaryStats) uint64 { return uint64(p.Timeline) }),
	gauge("scalekit_dbrouter_primary_wal_lsn_bytes", "The primary's pg_current_wal_lsn() at the last good check, as a byte position in the WAL; 0 before one.", func(p routerstats.PrimaryStats) routerstats.LSN { return p.LSN }),
	counterBy("scalekit_dbrouter_primary_calls_total", "Calls routed to the primary, by intent: read (Primary(ctx), a token, a fallback, a retry, or no replica configured) or write (Exec, CopyFrom, SendBatch, read-write transactions).", "intent",
		with("read", func(p routerstats.PrimaryStats) uint64 { return p.Reads }),
		with("write", func(p routerstats.PrimaryStats) uint64 { return p.Writes })),
	counterBy("scalekit_dbrouter_primary_checks_total", "The monitor's checks of the primary, by result: success, failure.", "result",
		with("success", func(p routerstats.PrimaryStats) uint64 { return succeeded(p.Checks, p.CheckFailures) }),
		with("failure", func(p routerstats.PrimaryStats) uint64 { return p.CheckFailures })),
	gauge("scalekit_dbrouter_primary_last_check_timestamp_seconds", "When the monitor last checked the primary, in Unix seconds; 0 before the first check.", func(p routerstats.PrimaryStats) float64 { return added.UnixSeconds(p.LastCheck) }),
}

var replicaFamilies = []family[routerstats.ReplicaStats]{
	gauge("scalekit_dbrouter_replica_healthy", "1 while reads may go to the replica, 0 while it is ejected (or has not joined yet).", func(r routerstats.ReplicaStats) float64 { return added.Boolf(r.Healthy) }),
	gauge("scalekit_dbrouter_replica_replay_lsn_bytes", "The replica's pg_last_wal_replay_lsn() at the last check or token poll, as a byte position in the WAL; 0 before one.", func(r routerstats.ReplicaStats) routerstats.LSN { return r.ReplayLSN }),
	gaugeFunc("scalekit_dbrouter_replica_lag_bytes", "Bytes of WAL the replica's replay was behind the primary at the monitor's last check; left out when that check could not measure it (either server unreachable).", nil,
		func(o out, r routerstats.ReplicaStats) {
			if r.LagKnown {
				o.send(float64(r.LagBytes))
			}
		}),
	gauge("scalekit_dbrouter_replica_in_flight", "The router's reads running on the replica now.", func(r routerstats.ReplicaStats) int64 { return r.InFlight }),
	counter("scalekit_dbrouter_replica_reads_total", "Reads routed to the replica.", func(r routerstats.ReplicaStats) uint64 { return r.Reads }),
	counter("scalekit_dbrouter_replica_failed_reads_total", "Reads that failed on the replica for want of the server (and ran again on the primary).", func(r routerstats.ReplicaStats) uint64 { return r.FailedReads }),
	counter("scalekit_dbrouter_replica_ejections_total", "Moves of the replica out of the healthy set.", func(r routerstats.ReplicaStats) uint64 { return r.Ejections }),
	counter("scalekit_dbrouter_replica_readmissions_total", "Moves of the replica back into the healthy set (its first join is not one).", func(r routerstats.ReplicaStats) uint64 { return r.Readmissions }),
	counterBy("scalekit_dbrouter_replica_checks_total", "The monitor's checks of the replica, by result: success, failure (a lagging replica's check succeeds).", "result",
		with("success", func(r routerstats.ReplicaStats) uint64 { return succeeded(r.Checks, r.CheckFailures) }),
		with("failure", func(r routerstats.ReplicaStats) uint64 { return r.CheckFailures })),
	gauge("scalekit_dbrouter_replica_last_check_timestamp_seconds", "When the monitor last checked the replica, in Unix seconds; 0 before the first check.", func(r routerstats.ReplicaStats) float64 { return added.UnixSeconds(r.LastCheck) }),
	counter("scalekit_dbrouter_replica_replay_regressions_total", "Readings of the replica's replay LSN lower than the one before: its URL reaches several servers (a load balancer), so reads carrying a token avoid it.", func(r routerstats.ReplicaStats) uint64 { return r.ReplayRegressions }),
}

// succeeded is the checks of all that did not fail.
func succeeded(all, failures uint64) uint64 { return all - min(failures, all) }

// dbrouterTables are a router's tables: its own, the primary's, each
// replica's (labelled replica), and each pool's and its Tracer's.
type dbrouterTables struct {
	router         table[routerstats.Stats]
	primary        table[routerstats.PrimaryStats]
	primaryQueries table[routerstats.TracerStats]
	primaryPool    table[routerstats.PoolStats]
	replica        table[routerstats.ReplicaStats]
	replicaQueries table[routerstats.TracerStats]
	replicaPool    table[routerstats.PoolStats]
}

func newDBRouterTables(b *builder) dbrouterTables {
	return dbrouterTables{
		router:         newTable(b, dbrouterFamilies),
		primary:        newTable(b, primaryFamilies),
		primaryQueries: newTable(b, tracerFamilies("primary")),
		primaryPool:    newTable(b, poolFamilies("primary")),
		replica:        newTable(b, replicaFamilies, "replica"),
		replicaQueries: newTable(b, tracerFamilies("replica"), "replica"),
		replicaPool:    newTable(b, poolFamilies("replica"), "replica"),
	}
}

// AddDBRouter reports the Stats of r, a *dbrouter.Router, under name: the router's fallbacks, token
// reads, forged tokens and retries; the primary's state, calls and checks; and per
// replica (the replica label, its name in Stats: Options.ReplicaNames or
// the pool's host:port) its health, WAL position and lag, reads, checks
// and replay regressions, and each pool's connections and acquires (pgxpool.Stat: a pool running dry
// shows as empty acquires and their wait). A replica's lag is left out while the monitor cannot measure it
// (0 would say it caught up). The query counts of a pool with a
// dbrouter.Tracer (Open installs one) are reported as
// scalekit_dbrouter_primary_queries_total and
// scalekit_dbrouter_replica_queries_total and their siblings, by the
// pool's role rather than the Tracer's Target; a pool without one has
// none.
//
// The free-text fields of Stats (LastError, Reason) are not metrics: the
// router logs them. It returns an error wrapping ErrInvalid if two
// replicas share a name (their series would collide: set ReplicaNames) or
// a name is not valid UTF-8.
func (c *Collector) AddDBRouter(name string, r interface{ Stats() routerstats.Stats }) error {
	if isNil(r) {
		return nilArg("AddDBRouter", "the *dbrouter.Router")
	}
	if err := added.CheckReplicaNames(r.Stats().Replicas); err != nil { // the names are fixed by New
		return fmt.Errorf("%w: AddDBRouter: %v", ErrInvalid, err)
	}
	t := &c.dbrouter
	return c.add("AddDBRouter", named{"dbrouter", name}, func(ch chan<- prometheus.Metric) {
		st := r.Stats()
		t.router.collect(ch, st, name)
		t.primary.collect(ch, st.Primary, name)
		if st.Primary.Queries.Target != "" { // the pool has a Tracer
			t.primaryQueries.collect(ch, st.Primary.Queries, name)
		}
		t.primaryPool.collect(ch, st.Primary.Pool, name)
		for _, rep := range st.Replicas {
			t.replica.collect(ch, rep, name, rep.Name)
			if rep.Queries.Target != "" {
				t.replicaQueries.collect(ch, rep.Queries, name, rep.Name)
			}
			t.replicaPool.collect(ch, rep.Pool, name, rep.Name)
		}
	})
}
