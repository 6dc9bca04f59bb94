// Package policy composes the resilience policies into one pipeline: a
// Policy is anything with Do(ctx, fn) error — *breaker.Breaker,
// *retry.Retrier, *timeout.Timeout, *bulkhead.Bulkhead,
// *throttle.Throttler and *slo.Shedder are, and Limit, Concurrency and
// Adaptive adapt the ratelimit limiters — and Compose nests them, the
// first outermost.
//
//	total, _ := timeout.New(timeout.Options{Timeout: 5 * time.Second, Kind: timeout.Total})
//	attempt, _ := timeout.New(timeout.Options{Timeout: time.Second, Kind: timeout.Attempt})
//	r, _ := retry.New(retry.Options{MaxAttempts: 3, Retryable: policy.Retryable})
//	br, _ := breaker.New(breaker.Options{Name: "inventory"})
//	p := policy.Compose(policy.Limit(lim, "inventory"), total, r, br, attempt) // the standard order
//	err := p.Do(ctx, func(ctx context.Context) error { return inventory.Reserve(ctx, item) })
//
// # The standard order
//
// Polly, resilience4j and failsafe-go users compose policies in one order,
// outermost first, and Compose expects it:
//
//  1. rate limit and load shedding (Limit, Concurrency, Adaptive, a
//     *bulkhead.Bulkhead, a *throttle.Throttler, an *slo.Shedder): a call
//     refused here costs nothing downstream, and is never retried;
//  2. total timeout (a *timeout.Timeout of Kind Total): bounds the whole
//     call, retries and waits included, and ends the retries;
//  3. retry (a *retry.Retrier): each attempt goes through what follows;
//  4. circuit breaker (a *breaker.Breaker): each attempt asks it, and
//     Retryable stops the retries when it is open;
//  5. attempt timeout (a *timeout.Timeout of Kind Attempt): bounds one
//     attempt; an attempt it cuts is a failure the breaker counts and the
//     retry retries.
//
// Compose applies the policies in the order given, and leaves out nil
// ones; it does not reorder them, since the same kind of policy may
// belong at two places (a timeout, total or per attempt). Its test
// checks the order's promises: an attempt cut by the attempt timeout is
// retried, and the total timeout ends the retries.
//
// Retryable is the retry.Options.Retryable that does not retry what
// retrying cannot help: an open breaker, a full bulkhead, a rate limit, a
// local throttle (the dependency was not even called).
//
// A Policy must not call fn after its Do returned, nor keep it (nor
// leave a call of it running). A pipeline of the package's own policies
// (breaker, retry, timeout, bulkhead, throttle, slo.Shedder and the
// limiter adapters here) reuses the closures it hands them from one call
// to the next, so a composed call allocates nothing of its own; a
// pipeline holding any other Policy (a Func, a type of yours) makes them
// afresh on every call, so even a policy that breaks the rule never runs
// another call's fn.
package policy
