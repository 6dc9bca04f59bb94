// Package retry retries calls without turning an outage into a retry storm.
//
// A Retrier makes up to MaxAttempts attempts with Backoff between them
// (exponential with full, equal or decorrelated jitter as defined in the AWS
// Architecture Blog, constant, or your own), honours a server's Retry-After
// (RetryAfterError, Transport), and stops on a Permanent error or one
// Retryable rejects. Waits select on ctx and never sleep past its deadline:
// when the next attempt would come after it, Do gives up at once. A give-up
// is an *ExhaustedError that matches ErrExhausted and unwraps to the last
// attempt's error.
//
// The Budget is what keeps 3 layers x 3 attempts from becoming 27x load on a
// failing dependency: a token bucket where each top-level call deposits
// Ratio (10%) and each retry withdraws one, with a small per-second floor.
// A retry loop running inside another one (seen through its ctx) earns no
// tokens, so nested layers cannot multiply one request; with a budget per
// layer the bottom sees about 1.13x the top-level calls instead of 27x.
//
// Hedge fires a second attempt after a delay and takes the first success,
// for idempotent reads with a long latency tail.
//
// With a breaker: retry.Do(ctx, func(ctx context.Context) error { return
// br.Do(ctx, call) }) retries only while the breaker lets calls through; make
// the breaker's open error Permanent (or not Retryable) to stop at once.
package retry
