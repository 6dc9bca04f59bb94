// Package idempotency makes retried requests and redelivered jobs safe:
// an Idempotency-Key middleware for HTTP (draft-ietf-httpapi-idempotency-
// key-header, with Stripe's semantics) and a Guard for job consumers.
//
//	mw, err := idempotency.NewHTTP(idempotency.HTTPOptions{
//		Store: store, // idempotencyredis or idempotencypg; nil: in-process MemoryStore
//		Scope: func(r *http.Request) string { return userID(r) }, // whose keys these are
//	})
//	http.Handle("POST /payments", mw.Middleware(payHandler)) // replays, 409s and 422s for you
//
//	guard, err := idempotency.NewGuard(idempotency.GuardOptions{Store: store})
//	_, err = guard.Do(ctx, "receipt:"+paymentID, func(ctx context.Context) ([]byte, error) {
//		return nil, sendReceipt(ctx) // at most once to completion, whatever the redeliveries
//	})
//
//	jobs, err := idempotency.NewWorker(idempotency.WorkerOptions{Guard: guard}) // keyed by job id
//	w, err := queue.NewWorker(queue.WorkerOptions{Backend: backend, Queues: queues,
//		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{jobs.Middleware}}) // every attempt through guard.Do
//
// # How it works
//
// The middleware keys a request by (caller scope, method, route,
// Idempotency-Key) and fingerprints it (method, path, chosen headers,
// body). The first request runs and its response (status, chosen headers,
// body up to a limit) is stored; a repeat with the same fingerprint gets
// the stored response with "Idempotent-Replayed: true" and the handler
// does not run; a repeat with another fingerprint gets 422; a repeat while
// the first runs gets 409 with Retry-After; a missing key where Required
// or a malformed one gets 400 saying what is wrong. Every such error is
// application/problem+json (RFC 9457) with a stable type URI per error
// (ProblemKeyMissing, ProblemKeyReused, ProblemRequestInFlight, ...), as
// in the draft's examples.
//
// The Idempotency-Key header is parsed as the draft defines it, a
// structured-field String (RFC 8941: "a key", printable ASCII in double
// quotes with \" and \\ as the only escapes, no parameters after it), and
// the bare form most clients send (printable ASCII without spaces, quotes
// or backslashes: a UUID without quotes) is accepted as the same key.
// Spaces around the value are ignored; a key has 1 to 255 characters.
//
// 5xx responses are not stored (the client may retry); below 500
// HTTPOptions.StoreStatus decides, by default storing every status
// but 408, 409, 425 and 429 (answers about the attempt: a client retrying
// after a 429 must run, not be replayed the 429). Records expire after TTL
// (24h).
//
// The caller scope is required: HTTPOptions.Scope returns the
// caller's identity, or HTTPOptions.Unscoped declares, in so many
// words, that all callers share one key space (and can read each other's
// stored responses by sending the same key and body).
//
// The running request holds a lease that a heartbeat renews. If its
// process dies, the lease expires and a retry may run the handler again:
// execution is at least once, the response exactly once. If the heartbeat
// finds the lease lost (the holder stalled, the record expired and another
// caller took the key over), the handler's ctx, or Guard.Do's fn's, is
// cancelled with cause ErrLeaseLost, so the work stops instead of running
// beside its successor. A handler or fn that panics releases its key
// before the panic goes on, so a retry (a redelivered job whose panic a
// queue worker recovered) runs again. For effects
// exactly once, commit them with the key's completion in one transaction:
// idempotencypg.Store.InTx (HTTP) and GuardTx (jobs).
//
// The Store's Begin checks fingerprint and state in one atomic step (a
// Lua script on Redis, INSERT ... ON CONFLICT on PostgreSQL), never with a
// separate read. MemoryStore serves one process; idempotencyredis and
// idempotencypg serve a fleet; idempotencytest is the conformance suite.
//
// # When the Store is down or slow
//
// The middleware answers 503 with Retry-After and does not run the
// handler, and Guard.Do returns ErrUnavailable: a layer that cannot tell
// whether a request already ran must not run it (fail closed). Each Store
// bounds its calls with a timeout, so a paused server costs a request at
// most that.
package idempotency
