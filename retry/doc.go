// Package retry provides retries that do not turn an outage into a retry
// storm: jittered exponential backoff, Retry-After, a retry budget shared
// by the callers of a dependency, an http.RoundTripper, and hedged
// requests.
//
//	budget, _ := retry.NewBudget(retry.BudgetOptions{Ratio: 0.1}) // retries <= 10% of calls
//	r, err := retry.New(retry.Options{MaxAttempts: 3, Budget: budget})
//	err = r.Do(ctx, func(ctx context.Context) error { return callInventory(ctx) })
//	user, err := retry.DoValue(ctx, r, func(ctx context.Context) (User, error) { return fetch(ctx) })
//	client := &http.Client{Transport: &retry.Transport{Retrier: r}} // idempotent requests, Retry-After
//
// # Retrying
//
// A Retrier, from New(Options), runs a func(ctx) error with Do, or a
// func(ctx) (T, error) with DoValue; the package-level Do uses the
// defaults. Options{} means: at most 3 attempts, exponential backoff with
// full jitter (rand(0, min(10s, 100ms*2^n)), as defined in the AWS
// Architecture Blog's "Exponential Backoff And Jitter"), every error
// retried except Permanent ones, a Retry-After honoured up to 30s
// (MaxRetryAfter), no MaxElapsed, no timeouts, no budget. Backoff can be
// Exponential with FullJitter, EqualJitter, DecorrelatedJitter or
// NoJitter, Constant, or any Backoff (a pure func of the attempt, the
// previous wait and a random number).
//
// An attempt's error decides what happens next: Permanent(err) stops at
// once, and so does an error Options.Retryable rejects, both returned as
// they are; an AfterError asks for a longer wait, which Do honours up
// to Options.MaxRetryAfter: one asking for more ends the retries at once
// (ReasonRetryAfter) instead of sleeping, say, the hour a server's
// "Retry-After: 3600" asks for, or retrying before the server said it
// would answer. When Do gives up on
// a retryable error it returns an *ExhaustedError that matches
// ErrExhausted, says why (Reason) and after how many attempts, and unwraps
// to the last attempt's error, so errors.Is(err, io.EOF) still works.
//
// # The ctx
//
// Every wait selects on ctx.Done(), and Do never sleeps past the ctx
// deadline: when the next wait would end after it, Do returns at once
// (ReasonDeadline, which also matches context.DeadlineExceeded), leaving
// the caller the rest of its time. If ctx ends, Do returns the attempt's
// error as is when it is ctx's own cancellation, otherwise an
// *ExhaustedError with ReasonContext, which matches context.Cause(ctx)
// too (errors.Is(err, yourCause) for a ctx from context.WithCancelCause or
// WithTimeoutCause); either way errors.Is(err, ctx.Err()) holds. The
// caller's cancellation is never retried.
//
// # Timeouts
//
// Options.AttemptTimeout bounds each attempt and Options.Timeout the whole
// call (package timeout): an attempt that fails past its AttemptTimeout
// returns a *timeout.Error matching timeout.ErrAttempt, retried like any
// error; when the total Timeout ends the retries (it cuts the attempt in
// flight, or the next wait would end after it), Do returns a
// *timeout.Error matching timeout.ErrTotal, wrapping what Do would have
// returned. A deadline of the caller's ctx that comes first is the
// caller's: neither timeout claims it. Attempts run on the calling
// goroutine, so an attempt that ignores its ctx is waited for, never left
// running in a goroutine of its own (see package timeout). Transport
// applies both per try and per round trip, the response body included:
// they end when the body is read to its end or closed.
//
// # The budget
//
// Three layers that each make 3 attempts turn one failing request into 27
// at the bottom, just when the dependency is down or overloaded. A Budget
// (Finagle's RetryBudget, gRPC's retry throttling, the per-client retry
// budget of Google's SRE book) bounds retries to a share of the calls: each
// call deposits Ratio tokens (default 0.1), each retry withdraws one, a
// small floor (MinRetriesPerSecond, default 10) lets quiet clients retry,
// and MaxTokens caps what a healthy spell can bank. When the budget is
// empty, Do returns the original error at once (ReasonBudget, matching
// ErrBudgetExhausted). A healthy dependency never notices; a dead one sees
// about 1.1x the calls instead of 3x. Share one Budget per dependency
// among its callers.
//
// Nested retry loops are the other multiplier. Inside a Do whose Retrier
// has a Budget, attempts get a ctx that says so, and a Do nested in it
// (any Retrier with a Budget) deposits nothing: retries are paid for by
// the top-level calls only, so in practice only the outer layer retries
// while the inner ones live on their floor. Three nested layers with a
// Budget each send about 1.1x the top-level calls to a dead dependency
// (TestAmplification). The ctx mark does not cross processes: there, each
// service's budget bounds its own layer to 1+Ratio, so k layers of
// services stay under (1+Ratio)^k rather than 3^k.
//
// Across services, Transport marks each retry with an AttemptHeader
// ("X-Retry-Attempt: 2"), and a server behind Middleware marks the ctx of
// a request that is itself a retry (WithRetried): every Retrier's Do under
// it makes one attempt and returns its error as is (Stats.NotRetried), so
// a stack of services retries at one layer, the client's, as gRPC's
// pushback does: three services each making 3 attempts send the bottom 5
// requests instead of 9 (TestAttemptsAcrossServices), 1+2(k-1) rather
// than 3^(k-1) for k hops.
//
// # HTTP
//
// Transport is an http.RoundTripper that retries 429, 502, 503, 504 and
// connection errors, honours Retry-After (ParseRetryAfter) up to its
// Retrier's Options.MaxRetryAfter (the cap and the rule Do applies to a
// AfterError: a longer one ends the retries with that response),
// replays bodies through GetBody, and retries POST or
// PATCH only with an Idempotency-Key header or RetryNonIdempotent.
//
// # Pacing by the server's RateLimit fields
//
// Pacer is an http.RoundTripper that reads a server's RateLimit field
// (draft-ietf-httpapi-ratelimit-headers-10: "policy";r=<remaining>;t=<seconds>)
// and Retry-After, per host, and holds back the requests the server
// would refuse: with r=0 none before t, otherwise at most r more before t,
// and none before a 429's or 503's Retry-After. A held request waits up
// to Pacer.MaxWait (and never past its ctx deadline) or is not sent at
// all (*RateLimitedError, errors.Is ErrRateLimited), so a client of a
// limited API does not get the 429 in the first place. Put it under a
// Transport (Transport{Base: &Pacer{}}): retries are paced, and its
// refusals are not retried.
//
// # Hedging
//
// Hedge fires another attempt when the first has not answered after a
// delay and takes the first success, cancelling the others: for
// idempotent reads with a long latency tail. Hedges draw from a Budget
// like retries.
//
// # With a circuit breaker
//
// Put the breaker inside the retry loop, so each attempt asks it, and stop
// retrying when it is open (the breaker package's ErrOpen):
//
//	r, _ := retry.New(retry.Options{
//		Retryable: func(err error) bool { return !errors.Is(err, breaker.ErrOpen) },
//	})
//	err := r.Do(ctx, func(ctx context.Context) error { return br.Do(ctx, call) })
//
// # Observability
//
// Stats (Retrier) and BudgetStats (Budget) are snapshots of atomic
// counters, for the metrics package to read at scrape time; OnRetry sees
// every retry and the Logger every give-up (Debug).
package retry
