// Package routerstats holds the snapshot types of package dbrouter (Stats
// and the WAL position LSN) without dbrouter's pgx dependency, so that
// collectors such as package metrics can read a Router's state without
// compiling pgx. dbrouter re-exports every type here under the same name;
// users of dbrouter need not import this package.
package routerstats

import (
	"fmt"
	"time"
)

// LSN is a position in PostgreSQL's write-ahead log (the pg_lsn type, "16/B374D848"
// in text). Positions of a primary and of its streaming replicas are comparable:
// a replica whose replayed LSN is at least a commit's LSN shows that commit.
type LSN uint64

// String is the pg_lsn text form, as PostgreSQL prints it.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF)
}

// Stats is a snapshot of a Router's state and counters.
type Stats struct {
	// Primary is the primary's state.
	Primary PrimaryStats
	// Replicas are the replicas' states, in Options.Replicas order.
	Replicas []ReplicaStats
	// Fallbacks counts reads sent to the primary because every replica was
	// ejected, or no healthy one had replayed the router's floor (its
	// start, or the last Fence) yet.
	Fallbacks uint64
	// TokenPrimary counts reads sent to the primary because of their token:
	// no healthy replica had replayed it (after TokenWait), or its write
	// was less than Window ago.
	TokenPrimary uint64
	// TokenWaits counts reads that waited for a replica to replay their
	// token and got one.
	TokenWaits uint64
	// ReplicaRetries counts reads that failed on a replica before their
	// first row (server down, connection lost, recovery conflict) and ran
	// again on the primary.
	ReplicaRetries uint64
	// ReadOnlyRetries counts reads a replica refused with SQLSTATE 25006
	// (they write: routing bugs, logged) and that ran again on the primary.
	ReadOnlyRetries uint64
	// NoReplicaErrors counts reads refused with ErrNoReplica (NoFallback).
	NoReplicaErrors uint64
	// ForgedTokens counts reads whose token's LSN was beyond anything the
	// primary had written (see Options.TokenMargin): clamped, not trusted;
	// with ConsistencyWindow, whose token's time was more than Window in
	// the future: ignored.
	ForgedTokens uint64
	// Failovers counts moves of the writes to another server
	// (Options.Failover): a promoted replica, or back.
	Failovers uint64
	// LostTokens counts reads whose token's write was past its timeline's
	// switch point: lost in a failover, so the read went to the primary.
	LostTokens uint64
	// SplitBrains counts the monitor's checks that saw more than one
	// server claim to be the primary (Options.Failover).
	SplitBrains uint64
}

// PrimaryStats is the primary's part of Stats.
type PrimaryStats struct {
	// Server is the write server: "primary" (Options.Primary), or after a
	// failover the promoted replica's name.
	Server string
	// Timeline is the write server's timeline at the monitor's last
	// reading; 0 before one.
	Timeline uint32
	// Up is whether the last check succeeded (it answered, not in
	// recovery, not read-only).
	Up bool
	// LSN is pg_current_wal_lsn() at the last good check.
	LSN LSN
	// Reads counts reads routed to the primary (by intent, token or
	// fallback); Writes counts Exec, CopyFrom, SendBatch and read-write
	// transactions.
	Reads, Writes uint64
	// Checks and CheckFailures count the monitor's checks.
	Checks, CheckFailures uint64
	// LastCheck is when the monitor last checked; LastError is the last
	// check's error, "" when it succeeded.
	LastCheck time.Time
	LastError string
	// Queries are the counts of the primary pool's Tracer, if it has one.
	Queries TracerStats
	// Pool is the primary pool's state (pgxpool.Stat).
	Pool PoolStats
}

// ReplicaStats is one replica's part of Stats.
type ReplicaStats struct {
	// Name is from Options.ReplicaNames or the pool's host:port.
	Name string
	// Healthy is whether reads may go to the replica; Reason says why not
	// (or why its last observation was bad).
	Healthy bool
	Reason  string
	// ReplayLSN is pg_last_wal_replay_lsn() at the last check or poll.
	ReplayLSN LSN
	// LagBytes is how far replay was behind the primary's WAL at the last
	// check; LagKnown is false when that check could not tell.
	LagBytes int64
	LagKnown bool
	// InFlight counts the router's reads running on the replica now.
	InFlight int64
	// Reads counts reads routed to the replica; FailedReads those that
	// failed for want of the server (and ran again on the primary).
	Reads, FailedReads uint64
	// Ejections and Readmissions count moves out of and back into the
	// healthy set.
	Ejections, Readmissions uint64
	// Checks and CheckFailures count the monitor's checks.
	Checks, CheckFailures uint64
	// LastCheck is when the monitor last checked; LastError is the last
	// failure's error.
	LastCheck time.Time
	LastError string
	// Queries are the counts of the replica pool's Tracer, if it has one.
	Queries TracerStats
	// Pool is the replica pool's state (pgxpool.Stat).
	Pool PoolStats
	// ReplayRegressions counts readings of the replica's replay LSN lower
	// than the one before (with no failure between): the URL reaches more
	// than one server (a load balancer, PgBouncer, a reader endpoint), so
	// its LSN bounds nothing. After the first, reads carrying a token no
	// longer go to it (reads without one still do).
	ReplayRegressions uint64
}

// TracerStats counts what a Tracer saw.
type TracerStats struct {
	// Target is TracerOptions.Target; "" when the pool has no Tracer.
	Target string
	// Queries, Errors and Slow count finished queries, those that failed,
	// and those at or over SlowThreshold.
	Queries, Errors, Slow uint64
	// Duration is the queries' total time.
	Duration time.Duration
}

// PoolStats is a connection pool's state, from pgxpool.Stat: what shows a
// pool running dry before its queries time out.
type PoolStats struct {
	// MaxConns is the pool's size; TotalConns the connections open now, of
	// which AcquiredConns are in use, IdleConns free and ConstructingConns
	// being opened.
	MaxConns, TotalConns, AcquiredConns, IdleConns, ConstructingConns int32
	// Acquires counts connections handed out; AcquireDuration is their
	// total wait.
	Acquires        int64
	AcquireDuration time.Duration
	// EmptyAcquires counts acquires that found no idle connection and had
	// to wait (for a release or a new connection); EmptyAcquireWait is
	// their total wait. A rising share of empty acquires is a pool too
	// small for its load.
	EmptyAcquires    int64
	EmptyAcquireWait time.Duration
	// CanceledAcquires counts acquires whose ctx ended while they waited.
	CanceledAcquires int64
	// NewConns counts connections opened; MaxLifetimeDestroys and
	// MaxIdleDestroys those closed for age and for idleness.
	NewConns, MaxLifetimeDestroys, MaxIdleDestroys int64
}
