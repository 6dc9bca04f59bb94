// Package ratelimitx is what package ratelimit's own limiters share beyond
// its public API: the argument check every Limiter of the module makes and
// the RetryAfter every ConcurrencyLimiter of the module reports, so that
// ratelimit and ratelimitredis answer alike.
package ratelimitx

import (
	"fmt"
	"time"
)

// CheckArgs validates the arguments of an AllowN call against a policy
// whose smallest Burst is maxBurst, with the errors every Limiter of the
// module returns, each wrapping invalid (ratelimit.ErrInvalid, passed in
// since this package cannot import ratelimit).
func CheckArgs(invalid error, maxBurst int, key string, n int) error {
	if key == "" {
		return fmt.Errorf("%w: key must not be empty", invalid)
	}
	if n < 1 {
		return fmt.Errorf("%w: n must be >= 1, got %d", invalid, n)
	}
	if n > maxBurst {
		return fmt.Errorf("%w: n = %d can never be admitted: the smallest Burst is %d", invalid, n, maxBurst)
	}
	return nil
}

// ConcurrencyRetryHint is the RetryAfter a ConcurrencyLimiter of the
// module reports for a key whose slots are all held before any slot has
// been released and timed: with nothing measured, a short hint, 100ms.
const ConcurrencyRetryHint = 100 * time.Millisecond

// ConcurrencyRetryAfter is the RetryAfter every ConcurrencyLimiter of the
// module reports when all slots of a key are held: the expected time until
// one of them frees. With holders holding a slot meanHold on average (a
// moving average of the holds released lately: each new hold weighs 1/8)
// and releasing independently, one of holders frees in about
// meanHold/holders. It is at least 1ms, so refused callers that retry at
// once do not spin, and ConcurrencyRetryHint when nothing was measured
// yet (meanHold <= 0) or holders < 1. A limiter whose slots can outlive a
// dead holder bounds it further by when such a slot surely frees
// (ratelimitredis: a lease that stopped being renewed frees at its
// expiry).
func ConcurrencyRetryAfter(meanHold time.Duration, holders int) time.Duration {
	if meanHold <= 0 || holders < 1 {
		return ConcurrencyRetryHint
	}
	return max(time.Millisecond, meanHold/time.Duration(holders))
}

// NextMeanHold folds one measured hold into the moving average of hold
// durations that ConcurrencyRetryAfter takes: (7*mean + hold) / 8, or hold
// itself as the first measurement (mean <= 0). Every ConcurrencyLimiter of
// the module averages with it, so they report the same RetryAfter for the
// same holds.
func NextMeanHold(mean, hold time.Duration) time.Duration {
	hold = max(hold, 0)
	if mean <= 0 {
		return max(hold, 1)
	}
	return max((7*mean+hold)/8, 1)
}
