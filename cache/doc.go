// Package cache is a stampede-safe cache-aside: Get(ctx, key, loader)
// answers from an in-process, size-bounded L1 (W-TinyLFU, via otter) and
// calls loader on a miss.
//
//   - Concurrent misses of one key run the loader once; every caller waits
//     on its own ctx, and one giving up does not cancel the load for the
//     others. A loader panic becomes a *PanicError for every waiter.
//   - Past TTL a value is served stale for StaleFor while one background
//     refresh runs (stale-while-revalidate).
//   - XFetch probabilistic early refresh (Vattani et al., VLDB 2015): a hit
//     close to expiry refreshes in the background with a probability that
//     grows with the measured load time, so a hot key is refreshed about
//     once per TTL and its callers never wait.
//   - A loader's ErrNotFound is remembered for NegativeTTL; other errors are
//     returned and never cached.
//   - TTL jitter spreads the expiry of keys written together;
//     MaxConcurrentLoads caps loader calls so a burst of misses cannot
//     become a database stampede.
//
// Not in this package yet (see the project's issue): the Redis L2 store
// with cross-process leases, versioned namespaces, pub/sub L1 invalidation
// and GetMany.
package cache
