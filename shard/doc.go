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
//	row := rt.Router.QueryRow(ctx, "SELECT count(*) FROM posts WHERE user_id = $1", userID) // its replica
//	ctx = shard.WithKey(ctx, shard.String(tenant)) // or carry the key down...
//	rt, err = db.ForContext(ctx)                    // ...ErrNoShardKey if none was set
//	err = db.SetMap(newMap) // a newer version, installed atomically
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
// # Not yet
//
// This is the first part of the design: moving a virtual shard between
// clusters while traffic runs, fan-out queries over clusters, a map stored
// in PostgreSQL with change notification, per-shard tokens in the HTTP
// middleware and failover handling are not built. SetMap moves no data:
// install a map that changes a virtual shard's cluster only once its rows
// are there and writes to it are stopped.
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
package shard
