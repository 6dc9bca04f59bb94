// Package dbrouter routes pgx calls between a PostgreSQL primary and its
// streaming replicas, with health checks, lag awareness and
// read-your-writes by WAL position (LSN).
//
//	db, err := dbrouter.Open(ctx, primaryURL, []string{replicaURL}, dbrouter.Options{})
//	defer db.Close()
//	row := db.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", id) // a healthy replica
//	_, err = db.Exec(ctx, "UPDATE users SET name = $1 WHERE id = $2", name, id) // the primary
//	tokens, err := dbrouter.NewHTTP(dbrouter.HTTPOptions{Router: db}) // the user's next reads see their write
//	http.ListenAndServe(addr, tokens.Middleware(mux))
//
// # How it works
//
// A Router offers the pgx query surface (Query, QueryRow, Exec, SendBatch,
// Begin, BeginTx, CopyFrom), so code written against Querier takes the
// router, a *pgxpool.Pool, a pgx.Tx or a *pgx.Conn. ReadBatch, its own,
// sends a batch of reads to one replica in one round trip.
//
// # Routing by intent
//
// The router never reads SQL. Exec, CopyFrom, SendBatch, Begin and
// read-write BeginTx go to the primary, and so does everything in those
// transactions. Query, QueryRow, ReadBatch and read-only BeginTx (AccessMode
// ReadOnly, not Serializable, which a hot standby refuses) go to a healthy replica,
// picked by Options.Balance (least reads in flight through the router, or
// round-robin), unless the ctx says otherwise: Primary(ctx) sends reads to
// the primary, and a token (below) restricts them to replicas that have
// replayed a write. A replica that answers SQLSTATE 25006 (a "read" that
// writes) has the statement run once more on the primary, and the routing
// bug is logged at Error and counted in Stats.ReadOnlyRetries.
//
// # The monitor
//
// One goroutine checks every Options.Interval (1s), each server on a
// connection of its own (so a replica pool saturated by slow reads is not
// mistaken for a dead server), all servers at once, each bounded by
// Options.CheckTimeout, one query reading each server's role and
// position: pg_is_in_recovery(), transaction_read_only, its timeline, and
// pg_current_wal_lsn() on the primary, pg_last_wal_replay_lsn() on each
// replica. Lag is
// the difference in bytes of WAL, not replay timestamps (an idle replica
// that is fully caught up reports a growing time lag). A replica is
// ejected after Options.EjectAfter (2) bad observations in a row: a failed
// check, lag over Options.MaxLagBytes (16 MiB), not in recovery (promoted),
// or a read that failed for want of the server. It comes back after
// Options.ReadmitAfter (3) good checks in a row, each with lag at most
// Options.ReadmitLagBytes (MaxLagBytes/2): the two thresholds and the two
// counts are the hysteresis that keeps a replica at the edge from
// flapping. On readmission after a failure its pool is Reset, so no
// connection broken by the outage serves a read. A replica that has never
// been healthy (down when New ran) joins on its first good check.
//
// # Start-up and migrations: the floor
//
// No replica takes reads before it has replayed the primary's WAL insert
// position at the router's start (its first good check of the primary):
// a replica still replaying the migrations that ran before the service
// started would answer "relation does not exist". New gives replicas that
// are behind it up to CheckTimeout to catch up; until one has, reads go to
// the primary (counted as Fallbacks; ErrNoReplica with NoFallback). For
// migrations run after New, call Router.Fence: it raises the floor to the
// primary's position then. Router.Ready reports ErrNotReady while a
// replica that answers its checks has not replayed the floor (or the
// primary has never answered): use it in the readiness probe, so traffic
// arrives only once replicas can serve it. A replica that is down or
// ejected (lag past MaxLagBytes) does not hold readiness back.
// Ejections, readmissions and primary outages are logged and counted in
// Stats. Close stops the monitor.
//
// # Read-your-writes
//
// After a write, Router.WriteToken returns a Token: the primary's
// pg_current_wal_insert_lsn() and timeline (one round trip). The insert position, not
// the flush or write position: with synchronous_commit off a commit returns
// before its WAL is flushed, so only the insert position surely covers it
// (the tests show a flush-position token letting stale reads through).
// WithToken(ctx, tok) makes reads go only to replicas whose replayed LSN,
// as the monitor last read it, is at least the token's: no round trip per
// read. When none has, the read polls the most advanced replica for up to
// Options.TokenWait (0 by default), then goes to the primary. A token that
// ends exactly on a WAL page boundary is only reached when more WAL
// follows (at worst ~15s on an idle server, when the background writer
// logs a standby snapshot); until then such reads go to the primary.
//
// A token's LSN comes from the client (a cookie or a header) and can be
// forged: one more than Options.TokenMargin past the highest primary
// position the router knows is checked against the primary's insert
// position (one round trip, shared by concurrent reads), and one beyond
// anything written is clamped to that position and counted in
// Stats.ForgedTokens, so a forged LSN cannot pin its client's reads to the
// primary. With ConsistencyWindow, a token time more than Window in the
// future is forged the same way: it constrains nothing, and is counted.
//
// WithSession does this by itself: writes through the router on the
// session's ctx advance its token, reads on it carry the token, and the
// primary's LSN is read once, when first needed after any number of
// writes. HTTP.Middleware gives each HTTP request a session that starts
// from the token the client sent (a cookie or a header) and returns the
// new token after a write, so a user reads their own writes on the next
// request too. ConsistencyWindow is the simpler Rails-style alternative:
// reads carrying a token go to the primary for Options.Window (5s) after
// the write, with no LSN at all.
//
// # One replica URL, one server
//
// LSN routing is only sound when each replica URL reaches one server. A
// "replica" that is a load balancer over several standbys (PgBouncer over
// a pool of standbys, HAProxy, a cloud reader endpoint) reports the replay
// position of whichever standby answered the check, while a read may land
// on another, further behind: a token read can then be stale. Give the
// router each standby's own URL. The router detects this where it can: a
// replay LSN lower than the one read before (by the monitor's check, or a
// TokenWait poll, with no failed check in between: a restarted standby
// replays from an earlier point) cannot come from one server. The first is
// logged at Warn, each is counted in ReplicaStats.ReplayRegressions, and
// from then on reads carrying a token do not go to that replica (reads
// without one still do). Detection is not guaranteed: a balancer that
// keeps the monitor's single connection on one standby, or standbys that
// happen to be in step, show nothing.
//
// # When a server is down, slow or flapping
//
// Replica down: reads on it fail with connection errors; each such read
// (one that failed before its first row) runs again on the primary, so the
// caller sees no error, and counts as a bad observation, so the replica is
// ejected within EjectAfter failed reads or checks. A statement inside a
// read-only transaction on it is not retried (the transaction is gone);
// begin it again. While every replica is ejected, reads go to the primary
// (Stats.Fallbacks), or fail with ErrNoReplica with Options.NoFallback.
// When the replica is back, it rejoins after ReadmitAfter good checks.
//
// Replica slow or hung: the monitor's check times out after CheckTimeout
// and counts as bad, so a hung replica is ejected after EjectAfter checks;
// reads already on it wait as long as their ctx allows (the router adds no
// timeout of its own: set one on the ctx). A replica falling behind is
// ejected by lag, and token reads avoid it as soon as it is behind their
// token.
//
// Replica flapping: each ejection needs EjectAfter bad observations in a
// row and each readmission ReadmitAfter good checks in a row under the
// lower lag threshold, so a replica flapping faster than that stays out,
// and reads stay on the others or on the primary.
//
// Primary down or slow, without Options.Failover: the router does not
// move the writes. Writes and
// read-write transactions fail (or wait) with the pool's errors, bounded by
// the caller's ctx; reads without a token keep going to healthy replicas
// (lag cannot be measured, so replicas are not ejected for it); reads that
// must go to the primary (Primary(ctx), an unreached token, no healthy
// replica) fail. WriteToken and the session's LSN read fail; a session
// then sends its user's reads to the primary rather than risk a stale one
// (with HTTP.Middleware, until the cookie expires).
// The outage and the recovery are logged.
//
// # Failover
//
// With Options.Failover (what pgx's target_session_attrs=read-write and
// hasql give) every configured server, Primary and each replica, is a
// candidate for the primary: the monitor's check reads each one's
// pg_is_in_recovery(), transaction_read_only and timeline. The router
// promotes nothing (a cluster manager or an operator's pg_ctl promote
// does); it follows.
//
// Detection: writes move to a promoted replica (answering, not in
// recovery, not read-only) at the first check that sees it while the
// write server is unreachable, in recovery or read-only: within Interval
// (1s) of the promotion, sooner while writes fail, as a write that fails
// for want of the server (a connection error, a shutdown, SQLSTATE 25006)
// asks for a check at once (at most one per Interval/4). The tests
// measure 0.06 to 0.4s from pg_ctl promote to the first write acknowledged
// through the router, with the default Interval. Until then writes fail
// with the pool's errors and are not retried (a write whose connection
// broke may have committed): the caller retries. The failover is logged
// and counted (Stats.Failovers); Stats.Primary names the write server and
// its timeline; PrimaryPool returns its pool. The promoted replica leaves
// the read set at once; the old primary takes no reads or writes even
// when it comes back as a standby.
//
// What is lost: with asynchronous replication, whatever the old primary
// committed but had not streamed to the promoted replica before the
// promotion (the writes past the switch point). A fast shutdown of the old
// primary first streams everything (the tests lose 0 acknowledged
// writes); a crash or a partition can lose the tail. Nothing brings those
// writes back (synchronous replication prevents it); the router makes sure
// no read carrying their token is served as fresh (below).
//
// What is refused: an old primary that comes back writable without being
// demoted (a split brain: two servers claim to be the primary) is never
// written to. Of several writable servers the one on the latest timeline
// takes the writes (a promotion always starts a new timeline; the old
// primary's writes since the fork are not in its history), and a server on
// an earlier timeline than the write server's is never chosen, even while
// the write server is unreachable: writes then fail rather than land on a
// dead history. Two writable servers on one timeline (not a promotion: a
// misconfiguration) leave the writes where they were. Each check that
// sees more than one primary is counted in Stats.SplitBrains and the
// first of a run is logged at Error: fence or demote the old primary. The
// router picks rather than refuses all writes because the latest timeline
// is where the cluster manager and the other clients write; refusing would
// turn a fencing mistake into an outage, and the loser's writes are lost
// either way.
//
// Timelines in tokens: WriteToken and sessions record the write server's
// timeline with its LSN, in the same round trip (the timeline of the WAL
// file of pg_current_wal_insert_lsn(); not pg_control_checkpoint(), whose
// timeline is the last checkpoint's, the old one until the checkpoint a
// promotion requests is done). A token of the write server's timeline, or
// without one (made before tokens carried it), is compared by LSN as
// before. A token of an earlier timeline is satisfied by a server that
// replayed its LSN only if that LSN is at or before the timeline's switch
// point, which the router reads when it sees a new timeline: from the
// history file (pg_read_file, for superusers, pg_read_server_files or an
// explicit grant), else, when it watched the promotion, from the promoted
// server's pg_last_wal_replay_lsn(), which stays at the last record
// replayed, where the new timeline forked (the tests check that the two
// agree). Without either, tokens of earlier timelines go to the primary. A
// token past its switch point marks a write the failover lost: its reads
// go to the primary (the newest data there is; the write is gone), are
// counted in Stats.LostTokens, and the first after each timeline change is
// logged at Warn. A replica on an earlier timeline that replayed past its
// switch point (it followed the old primary after the fork) is ejected as
// diverged until rebuilt; a replica's timeline is its WAL receiver's
// (pg_stat_wal_receiver, visible with pg_read_all_stats; unknown, it is
// not judged). Timelines are tracked without Failover too, for a Primary
// URL that follows the primary (a virtual IP, a DNS name).
//
// # Observability
//
// Stats returns a snapshot: per replica its health and the reason, replayed
// LSN, lag, reads in flight, routed and failed reads, ejections; the
// primary's state; fallbacks, token-forced primary reads, waits and
// retries. Tracer is a pgx.QueryTracer (and BatchTracer: each statement of
// a batch counts as a query) that counts queries per target and logs slow
// ones; Open installs one on each pool it makes, composed by
// pgx's multitracer with any tracer Options.ConfigurePool set (otelpgx,
// say), never replacing it, and Stats includes the counts of any pool whose
// ConnConfig.Tracer is a *Tracer or a multitracer holding one.
//
// Options.RouteTracer (a dbrouter.RouteTracer) is told of every routing
// decision, the primary or which replica and why (RouteReason), with the
// statement's ctx before it reaches the pool; the otel module's
// dbrouterotel sets it on the query span of otelpgx.
package dbrouter
