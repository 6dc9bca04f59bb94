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
//	ds, err := lim.AllowMany(ctx, []string{userID, tenantID}, 1) // many keys, one round trip
//
//	// Options.Coalesce: concurrent Allow calls share round trips (exact);
//	// Options.Lease: a process spends leased events locally (bounded over-admission).
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
// # Batches, coalescing and leases
//
// One decision per round trip caps a process at what one script per call
// costs the server and the client (about 10-20k decisions/s on a 2-core
// machine shared with Redis). Three ways past it:
//
// AllowMany decides many keys in one round trip: one script decides them
// in order (a key named twice is decided twice, the second seeing the
// first), exactly as separate AllowN calls would. On a Cluster one script
// per master decides all of its keys, whatever their slots (Redis 7's
// allow-cross-slot-keys script flag; a node that no longer serves a key,
// after a slot moved, refuses the script before deciding anything, and
// those keys go again by slot through the Cluster client, which follows
// the redirection; before Redis 7, one script per slot).
//
// Options.Coalesce makes concurrent AllowN calls of one Limiter share
// round trips, with the same exact decisions. There is no linger timer:
// a call that finds fewer than MaxInFlight (2; on a Cluster 1 per
// master, each master queueing its own calls) round trips out goes at
// once, alone, as it would without coalescing, so an idle or lightly
// loaded process pays no added latency; calls that arrive while
// MaxInFlight are out queue, and the queue (up to MaxBatch, 128) leaves in
// one script as soon as a round trip returns. Under load, round trips
// carry as many calls as arrived during one, and the server's and the
// client's CPU per decision fall several-fold. A queued call waits at
// most Timeout from when it queued: its batch's deadline is its oldest
// caller's queue time plus Timeout; a failed batch degrades each of its
// calls (counted as one error), and a caller whose ctx ends while queued
// is dropped from the batch before it is sent.
//
// Options.Lease trades exactness for throughput: AllowN takes up to Lease
// events of its key from Redis in one round trip (only as many as fit:
// near the limit leases shrink to one event) and spends them in the
// process until they run out or LeaseTTL (1s) passes. A denial of one
// event is held in the process until a lease's worth of events is back
// (Lease intervals, at most half the burst's refill time; RetryAfter says
// so), so a saturated key also costs a round trip per lease rather than
// per call. Events are counted in Redis
// when leased, so the total never exceeds what Redis admitted, but they
// may be spent later: over any window W the fleet admits at most
//
//	Burst + Rate x W + Processes x (Lease - 1)
//
// events per key, where an exact limiter admits Burst + Rate x W. Pick
// Lease so that Processes x (Lease - 1) is a small share of Rate x W for
// the windows you care about (4 processes with Lease 16 against 5,000/s
// over 2s: 60 events, 0.6%). Events leased and not spent before LeaseTTL
// are lost (Stats.LeaseExpired), at most Processes x (Lease - 1) per key
// per LeaseTTL. Decisions from a lease report Remaining and ResetAfter as
// the process alone would see them. Calls with n above Lease decide
// exactly, in a round trip of their own.
//
// Stats counts RoundTrips, Batches and Batched (mean batch size), and
// the leases' events, and package metrics exports them.
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
