// Package ratelimitredis is the fleet-wide ratelimit.Limiter and
// ratelimit.ConcurrencyLimiter: state in Redis (standalone or Cluster),
// shared by every process that points at the same Redis and prefix.
//
//	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
//	lim, err := ratelimitredis.New(ratelimitredis.Options{Client: client, Limits: ratelimit.Policy{
//		{Name: "client", Rate: 100, Burst: 200}, // 100/s, bursts of 200, across the fleet
//	}})
//	d, err := lim.Allow(ctx, userID) // one round trip; no error while Redis is down (FailOpen)
//	mw, err := ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: lim}) // 429 + RateLimit headers
//
//	exports, err := ratelimitredis.NewConcurrency(ratelimitredis.ConcurrencyOptions{Client: client, Limit: 2})
//	release, err := exports.Acquire(ctx, tenantID) // at most 2 per tenant at once, fleet-wide
//	defer release()
//
// # How it works
//
// Limiter runs ratelimit's GCRA (the same math as ratelimit.Decide) in a
// Lua script: one EVALSHA per decision, whatever the number of limits in
// the policy, so "10/s burst 20 AND 1000/hour" is checked and counted
// atomically. The script reads Redis TIME, so the fleet's clocks do not
// matter (Options.Clock replaces it in tests), and computes in
// nanoseconds, exactly as ratelimit.Local does, so the two admit the same
// events (each time is a pair of µs and ns in the script, exact in Lua's
// doubles; the Decision itself is computed in Go by ratelimit.Decide).
// A key's state is one hash, {prefix:key}:limit, with a field per limit;
// it expires as soon as every limit is full again, so idle keys cost
// nothing. The braces are a hash tag: on Redis Cluster every key of one
// limiter key lives in one slot. go-redis's Script loads the script again
// by itself after a SCRIPT FLUSH, a restart or a failover (NOSCRIPT).
//
// Concurrency admits at most Limit holders per key across the fleet. A
// slot is a lease in a sorted set ({prefix:key}:inflight) scored by its
// expiry; a holder renews it every Lease/3 while it runs, and a holder that
// dies frees its slot when the lease runs out (30s by default). A refusal's
// RetryAfter is when a slot is expected to free, as ratelimit.Concurrency
// reports it: the key's moving average of hold durations (timed by each
// release, kept in {prefix:key}:hold for ten leases after the last
// release) over its live holders, bounded by the expiry of a lease whose
// holder stopped renewing it.
//
// # When Redis is down, slow or flapping
//
// Every round trip is bounded by Options.Timeout (100ms by default; New
// refuses a client that would ignore it, see Options.Client) and goes
// through a circuit breaker. While Redis fails, decisions come from
// Options.Fallback when set (say, a ratelimit.Local holding this instance's
// share of the limits), or from the failure mode: FailOpen (the default)
// admits, FailClosed denies with RetryAfter 1s. Either way AllowN returns
// no error, so the middleware serves the decision; Stats counts the
// failures and the degraded decisions. After 3 failures in a row the
// circuit opens and decisions stop trying Redis at all (no added latency,
// no connection storms) for 1s, growing to 10s while probes keep failing;
// the first probe that succeeds closes it. A caller whose own ctx ends
// first gets ctx's error, and that is not counted as a Redis failure.
package ratelimitredis
