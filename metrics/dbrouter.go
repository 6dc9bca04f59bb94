package metrics

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
)

// tracerDescs are the families of a pool's dbrouter.Tracer counts.
type tracerDescs struct {
	queries, errors, slow, duration *prometheus.Desc
}

func newTracerDescs(b *builder, server string, labels ...string) tracerDescs {
	p := "scalekit_dbrouter_" + server + "_"
	return tracerDescs{
		queries:  b.desc(p+"queries_total", "Queries the "+server+" pool's dbrouter.Tracer saw finish (the router's own checks excluded).", labels...),
		errors:   b.desc(p+"query_errors_total", "Queries on the "+server+" pool that failed, by its Tracer.", labels...),
		slow:     b.desc(p+"slow_queries_total", "Queries on the "+server+" pool at or over the Tracer's SlowThreshold.", labels...),
		duration: b.desc(p+"query_duration_seconds_total", "Total time of the queries on the "+server+" pool, by its Tracer.", labels...),
	}
}

// collect sends t's counts, or nothing when the pool has no Tracer.
func (d *tracerDescs) collect(ch chan<- prometheus.Metric, t routerstats.TracerStats, labels ...string) {
	if t.Target == "" {
		return
	}
	counter(ch, d.queries, t.Queries, labels...)
	counter(ch, d.errors, t.Errors, labels...)
	counter(ch, d.slow, t.Slow, labels...)
	emit(ch, d.duration, prometheus.CounterValue, t.Duration.Seconds(), labels...)
}

// poolDescs are the families of a pool's pgxpool.Stat.
type poolDescs struct {
	conns, maxConns, acquires, acquireSeconds, emptyAcquires, emptyWaitSeconds, canceled *prometheus.Desc
}

func newPoolDescs(b *builder, server string, labels ...string) poolDescs {
	p := "scalekit_dbrouter_" + server + "_pool_"
	return poolDescs{
		conns:            b.desc(p+"connections", "Connections of the "+server+" pool by state: acquired (in use), idle, constructing (being opened).", append(slices.Clip(labels), "state")...),
		maxConns:         b.desc(p+"max_connections", "The "+server+" pool's size (MaxConns).", labels...),
		acquires:         b.desc(p+"acquires_total", "Connections the "+server+" pool handed out.", labels...),
		acquireSeconds:   b.desc(p+"acquire_seconds_total", "Total time callers waited to acquire a connection of the "+server+" pool.", labels...),
		emptyAcquires:    b.desc(p+"empty_acquires_total", "Acquires that found no idle connection in the "+server+" pool and had to wait: a rising share of acquires_total is a pool too small for its load.", labels...),
		emptyWaitSeconds: b.desc(p+"empty_acquire_wait_seconds_total", "Total time the "+server+" pool's empty acquires waited.", labels...),
		canceled:         b.desc(p+"canceled_acquires_total", "Acquires of the "+server+" pool whose ctx ended while they waited.", labels...),
	}
}

func (d *poolDescs) collect(ch chan<- prometheus.Metric, p routerstats.PoolStats, labels ...string) {
	labels = slices.Clip(labels)
	gauge(ch, d.conns, float64(p.AcquiredConns), append(labels, "acquired")...)
	gauge(ch, d.conns, float64(p.IdleConns), append(labels, "idle")...)
	gauge(ch, d.conns, float64(p.ConstructingConns), append(labels, "constructing")...)
	gauge(ch, d.maxConns, float64(p.MaxConns), labels...)
	counter(ch, d.acquires, uint64(max(p.Acquires, 0)), labels...)
	emit(ch, d.acquireSeconds, prometheus.CounterValue, p.AcquireDuration.Seconds(), labels...)
	counter(ch, d.emptyAcquires, uint64(max(p.EmptyAcquires, 0)), labels...)
	emit(ch, d.emptyWaitSeconds, prometheus.CounterValue, p.EmptyAcquireWait.Seconds(), labels...)
	counter(ch, d.canceled, uint64(max(p.CanceledAcquires, 0)), labels...)
}

type dbrouterDescs struct {
	fallbacks, tokenPrimary, tokenWaits, retries, noReplica, forged *prometheus.Desc

	primaryUp, primaryLSN, primaryCalls, primaryChecks, primaryLastCheck *prometheus.Desc
	primaryQueries                                                       tracerDescs
	primaryPool                                                          poolDescs

	replicaHealthy, replicaLSN, replicaLag, replicaInFlight                 *prometheus.Desc
	replicaReads, replicaFailedReads, replicaEjections, replicaReadmissions *prometheus.Desc
	replicaChecks, replicaLastCheck, replicaRegressions                     *prometheus.Desc
	replicaQueries                                                          tracerDescs
	replicaPool                                                             poolDescs
}

func newDBRouterDescs(b *builder) dbrouterDescs {
	return dbrouterDescs{
		fallbacks:    b.desc("scalekit_dbrouter_fallbacks_total", "Reads sent to the primary because every replica was ejected, or none had replayed the router's floor (its start or last Fence) yet."),
		tokenPrimary: b.desc("scalekit_dbrouter_token_primary_reads_total", "Reads sent to the primary because of their read-your-writes token: no healthy replica had replayed it (after TokenWait), or its write was less than Window ago."),
		tokenWaits:   b.desc("scalekit_dbrouter_token_waits_total", "Reads that waited for a replica to replay their token and got one."),
		retries:      b.desc("scalekit_dbrouter_retries_total", "Reads that failed on a replica and ran again on the primary, by reason: replica_failed (server down, connection lost, recovery conflict; before the first row) or read_only (SQLSTATE 25006: the read writes, a routing bug).", "reason"),
		noReplica:    b.desc("scalekit_dbrouter_no_replica_errors_total", "Reads refused with ErrNoReplica (every replica ejected, with NoFallback)."),
		forged:       b.desc("scalekit_dbrouter_forged_tokens_total", "Reads whose read-your-writes token was beyond anything the primary had written (forged): clamped to the primary's position."),

		primaryUp:        b.desc("scalekit_dbrouter_primary_up", "1 when the monitor's last check of the primary succeeded, else 0."),
		primaryLSN:       b.desc("scalekit_dbrouter_primary_wal_lsn_bytes", "The primary's pg_current_wal_lsn() at the last good check, as a byte position in the WAL; 0 before one."),
		primaryCalls:     b.desc("scalekit_dbrouter_primary_calls_total", "Calls routed to the primary, by intent: read (Primary(ctx), a token, a fallback, a retry, or no replica configured) or write (Exec, CopyFrom, SendBatch, read-write transactions).", "intent"),
		primaryChecks:    b.desc("scalekit_dbrouter_primary_checks_total", "The monitor's checks of the primary, by result: success, failure.", "result"),
		primaryLastCheck: b.desc("scalekit_dbrouter_primary_last_check_timestamp_seconds", "When the monitor last checked the primary, in Unix seconds; 0 before the first check."),
		primaryQueries:   newTracerDescs(b, "primary"),
		primaryPool:      newPoolDescs(b, "primary"),

		replicaHealthy:      b.desc("scalekit_dbrouter_replica_healthy", "1 while reads may go to the replica, 0 while it is ejected (or has not joined yet).", "replica"),
		replicaLSN:          b.desc("scalekit_dbrouter_replica_replay_lsn_bytes", "The replica's pg_last_wal_replay_lsn() at the last check or token poll, as a byte position in the WAL; 0 before one.", "replica"),
		replicaLag:          b.desc("scalekit_dbrouter_replica_lag_bytes", "Bytes of WAL the replica's replay was behind the primary at the monitor's last check; left out when that check could not measure it (either server unreachable).", "replica"),
		replicaInFlight:     b.desc("scalekit_dbrouter_replica_in_flight", "The router's reads running on the replica now.", "replica"),
		replicaReads:        b.desc("scalekit_dbrouter_replica_reads_total", "Reads routed to the replica.", "replica"),
		replicaFailedReads:  b.desc("scalekit_dbrouter_replica_failed_reads_total", "Reads that failed on the replica for want of the server (and ran again on the primary).", "replica"),
		replicaEjections:    b.desc("scalekit_dbrouter_replica_ejections_total", "Moves of the replica out of the healthy set.", "replica"),
		replicaReadmissions: b.desc("scalekit_dbrouter_replica_readmissions_total", "Moves of the replica back into the healthy set (its first join is not one).", "replica"),
		replicaChecks:       b.desc("scalekit_dbrouter_replica_checks_total", "The monitor's checks of the replica, by result: success, failure (a lagging replica's check succeeds).", "replica", "result"),
		replicaLastCheck:    b.desc("scalekit_dbrouter_replica_last_check_timestamp_seconds", "When the monitor last checked the replica, in Unix seconds; 0 before the first check.", "replica"),
		replicaRegressions:  b.desc("scalekit_dbrouter_replica_replay_regressions_total", "Readings of the replica's replay LSN lower than the one before: its URL reaches several servers (a load balancer), so reads carrying a token avoid it.", "replica"),
		replicaQueries:      newTracerDescs(b, "replica", "replica"),
		replicaPool:         newPoolDescs(b, "replica", "replica"),
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
	seen := map[string]int{}
	for i, rep := range r.Stats().Replicas { // the names are fixed by New
		if !utf8.ValidString(rep.Name) {
			return fmt.Errorf("%w: AddDBRouter: replica %d's name %q is not valid UTF-8", ErrInvalid, i, rep.Name)
		}
		if j, dup := seen[rep.Name]; dup {
			return fmt.Errorf("%w: AddDBRouter: replicas %d and %d are both named %q; name them with dbrouter.Options.ReplicaNames", ErrInvalid, j, i, rep.Name)
		}
		seen[rep.Name] = i
	}
	d := &c.dbrouter
	return c.add("AddDBRouter", named{"dbrouter", name}, func(ch chan<- prometheus.Metric) {
		st := r.Stats()
		counter(ch, d.fallbacks, st.Fallbacks, name)
		counter(ch, d.tokenPrimary, st.TokenPrimary, name)
		counter(ch, d.tokenWaits, st.TokenWaits, name)
		counter(ch, d.retries, st.ReplicaRetries, name, "replica_failed")
		counter(ch, d.retries, st.ReadOnlyRetries, name, "read_only")
		counter(ch, d.noReplica, st.NoReplicaErrors, name)
		counter(ch, d.forged, st.ForgedTokens, name)

		p := st.Primary
		gauge(ch, d.primaryUp, boolf(p.Up), name)
		gauge(ch, d.primaryLSN, float64(p.LSN), name)
		counter(ch, d.primaryCalls, p.Reads, name, "read")
		counter(ch, d.primaryCalls, p.Writes, name, "write")
		checks(ch, d.primaryChecks, p.Checks, p.CheckFailures, name)
		gauge(ch, d.primaryLastCheck, unixSeconds(p.LastCheck), name)
		d.primaryQueries.collect(ch, p.Queries, name)
		d.primaryPool.collect(ch, p.Pool, name)

		for _, rep := range st.Replicas {
			n := rep.Name
			gauge(ch, d.replicaHealthy, boolf(rep.Healthy), name, n)
			gauge(ch, d.replicaLSN, float64(rep.ReplayLSN), name, n)
			if rep.LagKnown {
				gauge(ch, d.replicaLag, float64(rep.LagBytes), name, n)
			}
			gauge(ch, d.replicaInFlight, float64(rep.InFlight), name, n)
			counter(ch, d.replicaReads, rep.Reads, name, n)
			counter(ch, d.replicaFailedReads, rep.FailedReads, name, n)
			counter(ch, d.replicaEjections, rep.Ejections, name, n)
			counter(ch, d.replicaReadmissions, rep.Readmissions, name, n)
			checks(ch, d.replicaChecks, rep.Checks, rep.CheckFailures, name, n)
			gauge(ch, d.replicaLastCheck, unixSeconds(rep.LastCheck), name, n)
			counter(ch, d.replicaRegressions, rep.ReplayRegressions, name, n)
			d.replicaQueries.collect(ch, rep.Queries, name, n)
			d.replicaPool.collect(ch, rep.Pool, name, n)
		}
	})
}

// checks sends a check counter split by result, the last label.
func checks(ch chan<- prometheus.Metric, d *prometheus.Desc, all, failures uint64, labels ...string) {
	labels = slices.Clip(labels)
	counter(ch, d, all-min(failures, all), append(labels, "success")...)
	counter(ch, d, failures, append(labels, "failure")...)
}
