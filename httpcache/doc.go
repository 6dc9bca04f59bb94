// Package httpcache makes HTTP responses say exactly how long they may be
// cached, from the application's own cache state: Cache-Control, Expires
// and Age derived from a cache entry's fresh and stale instants,
// conditional requests (ETag, Last-Modified, 304, 412) per RFC 9110, and
// surrogate keys with purgers, so an edge cache (a CDN, Varnish) holds a
// response as long as the application's cache holds its value and drops
// it when the data changes.
//
//	u, info, err := users.GetInfo(ctx, id, loadUser) // cache.Cache: the value and its instants
//	httpcache.Policy{BrowserMaxAge: 10 * time.Second}.Write(w.Header(), info, time.Now())
//	// -> Cache-Control: public, max-age=10, s-maxage=<freshness left>, stale-while-revalidate=<stale window>
//	if httpcache.Conditional(w, r, httpcache.Validators{ETag: httpcache.VersionETag(u.Version)}) {
//		return // 304 Not Modified (or 412 for a failed If-Match): no body
//	}
//
// # Freshness
//
// Control is one response's policy, written by Control.Write as
// Cache-Control (public or private, no-store, no-cache, max-age,
// s-maxage, stale-while-revalidate, stale-if-error, immutable), Date,
// Expires and Age, all consistent: Expires - Date is exactly max-age - Age,
// in whole seconds rounded down. Policy derives a Control from a
// cache.Info (cache.Cache.GetInfo, Namespace.GetInfo): a value that stops
// being fresh in 12 s gets max-age=12 (or s-maxage=12 with a
// BrowserMaxAge cap for browsers, which cannot be purged), and its stale
// window (cache.Options.StaleFor) becomes stale-while-revalidate; a value
// already stale gets max-age=0 and what is left of the window. The
// zero Info of a failed load gives no-store.
//
// # Conditional requests
//
// VersionETag (a row version) and HashETag (a body's SHA-256) make strong
// tags; Weaken marks a body transformed after tagging. Check evaluates
// If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since in
// the order of RFC 9110 section 13.2.2 (strong comparison for If-Match,
// weak for If-None-Match, GET and HEAD answered 304, other methods 412).
// Conditional writes the validators and the 304 or 412: a 304 keeps
// Cache-Control, Expires, Date, ETag and Vary, drops the representation's
// metadata and has no body.
//
// # Surrogate keys and purges
//
// Keys.Middleware (NewKeys) gives each request a set of keys: the handler,
// and anything it calls with the request's ctx, adds to it with AddKeys
// ("user:1", "posts"), and the middleware writes them as one field before
// the header goes out: Surrogate-Key (Fastly, Varnish with
// scalekittest.VarnishVCL), Cache-Tag (Cloudflare) or xkey. When the data
// changes, a Purger removes every cached response tagged with a key:
// HTTPPurger (NewHTTPPurger) sends a POST or PURGE with the keys in a
// field or a JSON body, split into batches, each through a breaker and a
// retrier paid for by a retry budget, so a dead CDN costs callers
// nothing but a fast error; NewVarnishPurger configures one for Varnish's
// xkey module (hard or soft purges).
//
// Purges that cannot be lost go through the queue: enqueue PurgeArgs as a
// PurgeKind job in the transaction that changes the data (queuepg's
// EnqueueTx) and run them with HandlePurges. The purge then commits
// exactly when the data does, and is delivered at least once, retried
// with the queue's backoff and dead letters while the edge is down.
package httpcache
