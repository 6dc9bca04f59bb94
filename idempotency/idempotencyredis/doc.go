// Package idempotencyredis is an idempotency.Store on Redis (standalone,
// Sentinel or Cluster), shared by every instance of a fleet: a retry that
// lands on another instance is replayed, not run again.
//
//	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
//	store, err := idempotencyredis.New(idempotencyredis.Options{Client: client})
//	mw, err := idempotency.NewHTTP(idempotency.HTTPOptions{
//		Store: store,
//		Scope: func(r *http.Request) string { return userID(r) }, // whose keys these are
//	})
//	http.Handle("POST /orders", mw.Middleware(orders)) // a replay costs one round trip
//
//	guard, err := idempotency.NewGuard(idempotency.GuardOptions{Store: store}) // for job consumers
//
// # How it works
//
// Each key is one hash at {prefix:key} holding the fingerprint, the state,
// the lease token and deadline and the stored result, with a TTL. Begin,
// Complete, Release and Extend are each one Lua script, so the fingerprint
// and lease checks are atomic with the write: a replay costs one round
// trip, a first request two (Begin and Complete). The scripts read Redis
// TIME, so the fleet's clocks do not matter (Options.Clock replaces it in
// tests).
//
// # When Redis is down or slow
//
// Every call returns an error once Redis is down or slower than
// Options.Timeout; the middleware then answers 503 and the Guard returns
// ErrUnavailable: an idempotency layer that cannot tell whether a request
// ran must not run it (fail closed). Without persistence a Redis restart
// forgets every key (a retry after it runs again); use AOF or an RDB
// schedule that matches your TTL, or idempotencypg, when that matters.
package idempotencyredis
