// Package ratelimit decides, per key, whether events may happen: token
// buckets expressed as GCRA (one timestamp per key and limit), several
// limits checked together atomically, in process (Local) or across a fleet
// on Redis (package ratelimitredis), plus HTTP middleware that answers 429
// with Retry-After and the IETF RateLimit headers.
//
//	lim, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{
//		{Name: "client", Rate: 100, Burst: 200}, // 100/s, bursts of 200
//	}}) // ratelimitredis.New(...) for one limit across a fleet
//	d, err := lim.Allow(ctx, userID)
//	if !d.Allowed { retryIn := d.RetryAfter; ... }
//
//	rl, err := ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: lim}) // 429 + RateLimit headers
//	http.ListenAndServe(addr, rl.Middleware(mux))
//
// # How it works
//
// A Limit is Rate events per Period with bursts of up to Burst; a Policy is
// several Limits that must all admit an event (10/s burst 20 AND 1000/hour).
// Every Limiter returns a Decision: allowed or not, the binding limit, how
// many events remain, when the bucket is full again and when to retry.
// Decide is the pure GCRA step every Limiter uses, with time as a parameter.
//
// Package ratelimittest is the conformance suite every Limiter and
// ConcurrencyLimiter here passes (Local, Concurrency, and ratelimitredis on
// Redis standalone and Cluster): exact admission counts over simulated
// time.
//
// HTTP: the middleware of NewHTTP answers 429 with the fields of
// draft-ietf-httpapi-ratelimit-headers-10. RateLimit-Policy announces each
// Limit as a quota q per window w whole seconds with q/w exactly the rate
// and q covering the burst (2000/s burst 4000 is q=4000;w=2, 5 per 100ms is
// q=50;w=1; see Limit.Quota), so the remaining count r in the RateLimit
// field never exceeds q. RateLimit's t is the time until more quota is
// available (one more event), left out when the bucket is full; on a 429,
// Retry-After is never earlier than t.
//
// Keys: ClientIP and NewClientIP key by client address, IPv6 by its /64 by
// default (one site can rotate through a /64), believing X-Forwarded-For or
// the RFC 7239 Forwarded header only from trusted proxies and taking the
// rightmost hop that is not one. Header keys by a header's value. Every key
// the middleware passes to a Limiter is at most MaxKeyLen bytes: longer
// ones are replaced by their SHA-256 (BoundKey), never truncated.
//
// Adaptive is a load-shedding in-flight limit (AIMD) that raises its limit
// only while at least half of it is in use, so it follows demand; its
// Middleware answers 503 over the limit.
//
// Bad arguments (an empty key, n < 1, n above the smallest burst, a zero
// rate) return errors wrapping ErrInvalid that name what to fix; denials
// that must be errors (Wait, middleware) are *LimitedError, matching
// ErrLimited.
package ratelimit
