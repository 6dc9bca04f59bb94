// Package cache is a stampede-safe cache-aside: Get(ctx, key, loader)
// answers from an in-process, size-bounded L1 (W-TinyLFU, via otter), then
// from an optional L2 Store shared by every instance (cacheredis on Redis,
// or MemoryStore), and calls loader on a miss.
//
//	users, err := cache.New[User](cache.Options{TTL: time.Minute,
//		Store: redisStore}) // cacheredis.New(...); nil: in-process only
//	if err != nil { ... }
//	defer users.Close()
//	u, err := users.Get(ctx, id, func(ctx context.Context, id string) (User, error) {
//		return repo.User(ctx, id) // runs once per key across the fleet on a miss
//	})
//	if errors.Is(err, cache.ErrNotFound) { ... } // remembered for NegativeTTL
//	err = users.Set(ctx, id, updated) // every instance's L1 copy is dropped
//
// # How it works
//
//   - Concurrent misses of one key run the loader once per process; every
//     caller waits on its own ctx, and one giving up does not cancel the
//     load for the others. A loader panic becomes a *PanicError, with the
//     loader's stack, for every waiter.
//   - Across processes, a miss in the Store takes the key's fill lease (a
//     SET NX PX with a token on Redis): one instance loads, the others
//     wait for its fill, or take the lease over when its holder dies. A
//     fill carries the lease token and Set and Delete void the lease, so a
//     slow load that read the old row cannot write it back. 8 instances x
//     100 goroutines on one expired key run the loader once (cachetest).
//   - Past TTL a value is served stale for StaleFor while one background
//     refresh runs (stale-while-revalidate), one for the whole fleet. A
//     miss that finds a stale value in the Store (another instance wrote
//     it) is served it at once in the same way, while the refresh runs.
//   - XFetch probabilistic early refresh (Vattani et al., VLDB 2015): a hit
//     close to expiry refreshes in the background with a probability that
//     grows with the measured load time, never more than EarlyWindow (5%)
//     of TTL before expiry, so a hot key is refreshed about once per TTL
//     by one instance for the whole fleet (an instance whose refresh finds
//     a newer value in the Store takes it) and its callers never wait.
//   - A loader's ErrNotFound is remembered for NegativeTTL; other errors
//     are returned and never cached.
//   - TTL jitter spreads the expiry of keys written together;
//     MaxConcurrentLoads caps loader calls so a burst of misses (or a
//     Store outage) cannot become a database stampede.
//   - Get and GetMany run one protocol, over a set of keys; Get is its
//     one-key case. GetMany reads the L1 for every key, the Store for the
//     rest in one round trip, takes their leases in one, and loads what
//     is missing with one BatchLoader call; each of its keys is served,
//     refreshed (stale or early), waited for, loaded, failed or
//     remembered as missing exactly as a Get of that key would be, with
//     the same Stats (cachetest checks it on every Store). A key a
//     BatchLoader leaves out of its result is ErrNotFound. GetManyInto
//     is GetMany answering into slices the caller owns (aligned with the
//     keys, with a found flag each) instead of a new map: a page all in
//     the L1 allocates nothing and costs less than a Get per key.
//   - Namespaces: Namespace("user") keys are "user:v<N>:<id>";
//     Invalidate is one INCR that retires every key of the namespace on
//     every instance. For one entity, Delete does the same job: it voids
//     the fill lease, so a racing load cannot bring the old value back.
//   - L1 coherence: Set, Delete and Invalidate publish a message on the
//     Store; every instance drops its L1 copy. Messages published while a
//     subscription reconnects are lost: a Store that reports its
//     reconnects (ReconnectSubscriber; cacheredis does) makes every
//     instance drop its whole L1 then, and in any case an L1 copy is
//     trusted for at most L1TTL (default TTL/10) before the Store is read
//     again. With a Store whose server invalidates the copies itself (a
//     Tracker: cacheredis with Options.Tracking, Redis CLIENT TRACKING),
//     every change of a Store key reaches every instance, including
//     writes by other programs, expiries and evictions; a copy is kept
//     for its whole freshness, and the L1 is dropped when that feed is
//     lost and again when it is back.
//
// # When the Store is down, slow or flapping
//
// Store calls go through a circuit breaker (Options.Breaker). While the
// Store fails the cache serves from L1 and the loader (under
// MaxConcurrentLoads), without waiting for leases; once the breaker opens,
// requests do not touch the Store at all, so a dead Redis adds no
// per-request timeout. The breaker probes and closes when the Store
// answers again; Set and Delete return the Store's error (the L1 is
// updated regardless), and their invalidation is not lost: the key is
// kept (up to MaxPendingInvalidations, 10,000 by default) and, when the
// Store answers again, deleted from it and published, so no instance
// keeps the old value. Past the bound the kept keys collapse into a flush
// of every instance's L1 and a bump of every namespace this instance uses
// (plain keys written meanwhile keep their Store copy until its TTL);
// Stats.PendingInvalidations and PendingOverflows show it. cacheredis
// bounds each call by its Timeout.
//
// Stats counts hits and misses per tier, loads, coalesced waiters, early
// and stale refreshes, lease waits and contention, refused fills, Store
// errors and skipped calls.
//
// # Tracing
//
// Options.Tracer (a cache.Tracer: TraceHit, TraceLoadStart,
// TraceLoadEnd with data structs) is told of L1 hits and of each Get or
// GetMany that waits, with where each key's answer came from (the Store,
// a stale Store value, this instance's loader under a lease or not,
// another instance's fill) and whether it waited on a lease; the otel
// module's Tracer.Cache makes spans of it. No Tracer costs one nil check.
package cache
