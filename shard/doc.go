// Package shard spreads rows, and so writes, over several PostgreSQL
// clusters (each a primary with replicas, a dbrouter.Router) by a shard key,
// through a versioned map of virtual shards.
//
//	a, _ := dbrouter.Open(ctx, primaryA, []string{replicaA}, dbrouter.Options{})
//	b, _ := dbrouter.Open(ctx, primaryB, []string{replicaB}, dbrouter.Options{})
//	m, _ := shard.LoadMap("shards.json") // or shard.EvenMap(1, 1024, "a", "b")
//	db, err := shard.New(shard.Options{Map: m, Clusters: map[string]*dbrouter.Router{"a": a, "b": b}})
//	rt, err := db.For(shard.Int64(userID)) // the user's cluster and virtual shard
//	_, err = rt.Router.Exec(ctx, "INSERT INTO posts (user_id, body) VALUES ($1, $2)", userID, body)
//	row := rt.Router.QueryRow(rt.Context(ctx), "SELECT count(*) FROM posts WHERE user_id = $1", userID) // its replica (tokens, floors)
//	ctx = shard.WithKey(ctx, shard.String(tenant)) // or carry the key down...
//	rt, err = db.ForContext(ctx)                    // ...ErrNoShardKey if none was set
//	err = db.SetMap(newMap) // a newer version, installed atomically
//
// The example service runs on two clusters with "-shards 2"
// (examples/service/shards.go): users and their posts by user ID, the
// HTTP middleware's tokens, a feed merged with GatherSorted, and the jobs
// written with a user in its cluster's queue.
//
// # Virtual shards
//
// A key never maps to a cluster directly ("id % clusters" moves almost
// every key when a cluster is added). It hashes to one of a fixed number of
// virtual shards (Options.VirtualShards, 1024 by default: choose it once),
// and the map assigns each virtual shard to a cluster; adding a cluster
// means moving some virtual shards to it, each a small, known set of rows.
//
// The hash is xxHash64 (seed 0) of the key's bytes (an int64's 8
// big-endian bytes, a string's bytes, a UUID's 16 bytes), modulo the number
// of virtual shards. It is part of the stored data's layout and never
// changes; the tests pin it. Go's map hash, seeded per process, is never
// used.
//
// # The map
//
// A Map has a Version and names a cluster for every virtual shard. New
// checks that every virtual shard is assigned and every named cluster is
// given (a cluster may hold none, as a spare). SetMap swaps in a newer map
// atomically (calls of For see the old map or the new one, never a mix)
// and refuses a map whose version is not greater, so a late or repeated
// update never rolls routing back. Maps are read from JSON (LoadMap,
// ParseMap) as ranges of virtual shards per cluster.
//
// # Routing
//
// For(key) returns a Route: the cluster's dbrouter.Router (writes go to its
// primary, reads to its replicas, with read-your-writes tokens of that
// cluster), its name, the key's virtual shard and the map version. It
// takes no lock and allocates nothing (13-27 ns, BenchmarkShardRoute). A
// call without a key (the zero Key, or ForContext on a ctx WithKey never
// touched) returns ErrNoShardKey: there is no default cluster to fall back
// to.
//
// # Read-your-writes per cluster
//
// A dbrouter session belongs to one cluster, so a request that touches
// several carries one token per cluster. Router.WithSessions(ctx, tokens)
// puts a per-request set of sessions in ctx, one per cluster, each made
// on first use from the cluster's token; Route.Context(ctx) returns the
// ctx for the route's cluster, carrying its session:
//
//	rt, err := db.For(shard.Int64(userID))
//	ctx := rt.Context(req.Context()) // this cluster's session, if the request has sessions
//	_, err = rt.Router.Exec(ctx, "INSERT ...")     // advances this cluster's token
//	row := rt.Router.QueryRow(ctx, "SELECT ...")   // sees the write: primary or a caught-up replica
//
// A write advances only its cluster's token, so the same user's reads on
// other clusters still go to any replica. Every Route.Context of one
// cluster in the request shares its session (the returned ctx takes
// dbrouter's value from the session and everything else, deadline and
// cancellation included, from the ctx given: apply dbrouter.Primary or
// WithToken to it afterwards). Each gives its calls the cluster's ctx
// itself. Router.SessionTokens returns the set at the end (one round trip
// to each written cluster's primary for its position).
//
// HTTP.Middleware (NewHTTP, HTTPOptions mirroring dbrouter's) does this
// for HTTP: the tokens travel in one header (X-Shard-Tokens) and/or
// cookie (shard_tokens) value, "a=16/B374D848@1767225600123&b=...", names
// and tokens percent-escaped (Tokens, ParseTokens). Parsing is strict: a
// value over MaxTokensLen (4096 bytes) is ignored whole, a malformed
// entry or one naming an unknown cluster is ignored alone, header and
// cookie are merged. A response after a write carries the merged set:
// the tokens received, each written cluster's advanced. At most
// HTTPOptions.MaxTokens (8) clusters are kept: of more, the tokens every
// replica of their cluster has replayed go first (they hold no read
// back), then the oldest by token time. A user whose pending token for a
// cluster was dropped may read there from a replica that has not
// replayed that write, stale by at most that replica's lag (which
// dbrouter bounds with MaxLagBytes): only a user writing on more than
// MaxTokens clusters before their replicas catch up (seconds).
//
// # Fan-out
//
// Each(ctx, EachOptions, fn) calls fn once per cluster (every cluster,
// EachOptions.Clusters, or the clusters holding EachOptions.Keys, each
// told which keys are its: Target.Keys), at most Concurrency at a time,
// each call's ctx bounded by Timeout and carrying the cluster's session.
// It waits for every call. When some fail it returns an *EachError: one
// *ClusterError per failed cluster with its name, errors.Is and errors.As
// looking into each (ErrClusterTimeout for a call that ran past Timeout,
// ErrNotRun for one the caller's ctx ended before it started); the other
// clusters' calls stand. Gather collects a value per cluster and returns
// the successful clusters' values with the error; GatherSorted merges
// each cluster's ORDER BY ... LIMIT page (Merge: a stable k-way merge,
// at most limit rows), checks each page is sorted, and returns the merge
// of the clusters that answered with the error: not the true page when a
// cluster is missing, which the error says. Go methods cannot have type
// parameters, so Gather, GatherSorted and Merge are functions taking the
// Router. Each adds about 4 µs to its calls and GatherSorted of a
// 50-row page about 16 µs (BenchmarkEachOverhead): a fan-out over 3
// clusters takes 1.03-1.11x the slowest cluster's query alone for a query
// that waits (5 ms; clusters on their own machines), more when the clusters' queries compete for the same
// CPU, as on a loaded 2-core test host (BenchmarkFanOut).
// Stats counts fan-outs; FanOutStats counts each cluster's calls, errors
// and timeouts (metrics and otel AddShard export both).
//
// # Failover
//
// Each cluster is a dbrouter.Router: with dbrouter.Options.Failover its
// writes follow a promoted replica and its tokens carry the timeline (see
// dbrouter's "Failover"). SetMap moves no data: install a map that changes
// a virtual shard's cluster only once its rows are there and writes to it
// are stopped, which is what a Mover does (below).
//
// # The map in PostgreSQL
//
// A MapStore (OpenPGMap, then Migrate once) keeps every version of the
// map as a row of a small table on a config database and announces each
// new one with NOTIFY on a channel named like the table:
//
//	store, _ := shard.OpenPGMap(ctx, configPool, shard.StoreOptions{})
//	_ = store.Migrate(ctx)
//	go store.Watch(ctx, db)   // db follows every published version
//	next := db.Map(); next.Version++; next.Assign[17] = "c"
//	err := store.Publish(ctx, next) // ErrVersionConflict unless current+1
//
// Publish is a compare-and-set in one transaction: the version must be the
// current one + 1, and of concurrent publishers of a version exactly one
// wins (the version is the table's primary key). Watch holds a connection
// in LISTEN and installs each notified version within milliseconds; it
// also re-reads the current map every StoreOptions.PollInterval (5s by
// default) in case a notification was lost, and after losing its
// connection (the config database restarted) it reconnects with a growing
// pause of up to PollInterval and re-reads the current map at once, since
// the notifications sent meanwhile were missed. Until then Routers keep
// the map they have. A stored map a Router refuses (a cluster it does not
// know) is logged and skipped. LoadMap and static maps remain for tests
// and small setups.
//
// # Moving a virtual shard
//
// A Mover moves one virtual shard from cluster A to cluster B while
// traffic runs, and Move returns once A holds none of its rows:
//
//	mv, _ := shard.NewMover(shard.MoverOptions{Store: store, Router: db,
//	    ConnStrings: map[string]string{"a": "host=pg-a dbname=app ..."},
//	    Tables: []shard.Table{{Name: "posts", KeyColumns: []string{"user_id"}}}})
//	_ = mv.Migrate(ctx)                  // once: the fence on every cluster
//	res, err := mv.Move(ctx, 17, "b")    // resumes an unfinished move of 17
//	err = store.Do(ctx, db, key, write)  // a write the fence refused runs again on b
//
// Requirements. Every sharded table stores its row's virtual shard
// (Route.VShard, filled in by the application: PostgreSQL cannot compute
// xxHash64) in an indexed int column, "vshard" by default, which its
// replica identity includes (PRIMARY KEY (id, vshard), or a unique index
// with REPLICA IDENTITY USING INDEX, or REPLICA IDENTITY FULL): a
// row-filtered publication needs it to replicate updates and deletes.
// The tables exist on every cluster. Sources run PostgreSQL 15 or later
// with wal_level=logical, and the mover connects as a user that may
// create publications and subscriptions (a superuser, or on PostgreSQL 16
// pg_create_subscription). Migrate checks the tables and installs, on
// every cluster, a BEFORE INSERT OR UPDATE OR DELETE trigger on each
// (its cost: an advisory lock and a primary-key lookup per written row,
// plus a row lock outside READ COMMITTED).
//
// The steps, each saved in the config database (table <map table>_move)
// once done and each safe to repeat, so Move resumes after a crash of the
// mover at any point (TestMoveResumesAfterKill SIGKILLs it at each one):
//
//  1. prepared: the fence is installed on A and B; B's fence for the
//     virtual shard (left by an earlier move away from B) is lifted and
//     rows of it B may hold from a failed attempt are deleted.
//  2. subscribed: a publication on A of the virtual shard's rows
//     (FOR TABLE t WHERE (vshard = N)) and a subscription on B with
//     copy_data: B copies the rows, then streams every later change.
//  3. copied: B's subscription reports every table synchronised.
//  4. fenced: writes to the virtual shard are refused on A from now on.
//     In one transaction on A the mover takes an advisory lock that
//     waits for the writes in flight (each fenced write holds its shared
//     form until commit), inserts the fence row and a marker row. The
//     trigger raises SQLSTATE SKM01 (AsMoved, ErrMoved) for any row of a
//     fenced virtual shard, whatever map the writer had. A REPEATABLE
//     READ or SERIALIZABLE transaction whose snapshot predates the fence
//     cannot see it: its write fails with a serialization error (40001,
//     retry the transaction) since the trigger locks the fence row
//     (FOR SHARE) in those isolation levels.
//  5. caught_up: the marker row arrived on B, so every write A accepted
//     has been applied on B (changes apply in commit order).
//  6. flipped: the next map version, with the virtual shard on B, is
//     published (the Watchers install it within milliseconds). It
//     carries B's WAL insert position, read after the catch-up, as the
//     virtual shard's read floor (Map.Floors, Route.Floor).
//  7. done: subscription, publication and slot dropped; the virtual
//     shard's rows deleted on A.
//
// The write pause is the time from step 4 to the Routers' new map (the
// fence to the flip, MoveResult.Fenced): a write to the moving virtual
// shard is refused by A meanwhile and MapStore.Do runs it again on B once
// the map says so. In eight runs of TestMoveUnderTraffic on a 2-core host
// under a load of 13 to 21, the fence held 10 to 39ms (median 29ms), and
// the moved virtual shard's p99 write latency during the move was 34 to
// 70ms against 15 to 61ms before it (at most 36ms more; other virtual
// shards unaffected). Reads are not paused: until the flip they go to A,
// which has every row.
//
// Reads after the flip. B's replicas may not have replayed the rows B's
// primary received by the copy and catch-up, and a user who wrote on A
// carries a token of A only. The read floor closes this: Route.Context
// applies the moved virtual shard's floor (dbrouter.WithToken, with or
// without sessions), so its reads go only to B's replicas that have
// replayed the floor, else to B's primary; a fan-out's Target carries the
// floors of its cluster's virtual shards merged. Once every replica has
// passed the floor it costs nothing, and the next move drops it from the
// map. Route reads through Route.Context for this guarantee: a read of a
// moved virtual shard on rt.Router with a ctx that did not pass through
// it may miss rows on a lagging replica (TestMoveFloorReadsTarget pauses
// B's replica across a move and reads the moved rows).
//
// The fence on A stays after the move, so a Router that missed the new
// map is refused there (and retries on B through Do) instead of writing
// rows nobody reads; it is lifted when the virtual shard moves back to A
// (step 1 of that move). Limits: the fence sees writes by their rows, so
// TRUNCATE, and writes run with session_replication_role = replica, pass
// it; a move that fails between steps 4 and 6 leaves the virtual shard's
// writes refused until Move is called again, unless it is the catch-up
// that timed out (MoverOptions.CatchUpTimeout, 5s): then the Mover lifts
// the fence and takes the move back to step 3; a map that moves a
// virtual shard by hand (SetMap, Publish) must drop its floor, which is a
// position on the cluster it names; the rows are deleted from A in one
// statement per table.
package shard
