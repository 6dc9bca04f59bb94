package ratelimitredis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/ratelimitx"
	"github.com/scalekit-go/scalekit/internal/renew"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/internal/token"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// The concurrency slots of a key are a sorted set of lease tokens scored by
// their expiry (Unix µs). Expired leases are dropped before counting, so a
// holder that died frees its slot when its lease runs out.
//
// A refusal's RetryAfter is what a client should really wait, not when the
// oldest lease expires (Lease away for a live holder, which renews it):
//   - a lease whose expiry is more than Lease/2 away was renewed within
//     the last Lease/2 (holders renew every Lease/3): its holder is live
//     and frees the slot when done. The key's moving average of hold
//     durations ({prefix:key}:hold, µs, updated by every release) gives
//     ratelimitx.ConcurrencyRetryAfter(mean, live holders): the expected
//     wait until one of them is done, or ratelimitx.ConcurrencyRetryHint
//     before any hold was timed;
//   - a lease that missed its renewals belongs to a holder that is likely
//     dead: it frees when it expires.
// RetryAfter is the earlier of the two: ConcurrencyRetryAfter bounded by
// the oldest lease's expiry, or that expiry alone when no lease is live.
// ratelimit.Concurrency reports the same ConcurrencyRetryAfter (its
// holders cannot die).

// acquireScript: KEYS[1] the set, KEYS[2] the mean hold. ARGV: now (µs,
// -1: TIME), lease (µs), limit, token. Reply: {acquired (0/1), held, then
// when refused: µs until the oldest lease expires, the live leases (expiry
// more than Lease/2 away), the mean hold in µs (0: none timed yet)}.
var acquireScript = redis.NewScript(serverclock.Lua + ttlSlackLua + `
local now = now_us(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local live = redis.call('ZCOUNT', KEYS[1], string.format('(%.0f', now + math.floor(tonumber(ARGV[2]) / 2)), '+inf')
  local mean = tonumber(redis.call('GET', KEYS[2])) or 0
  return {0, held, tonumber(first[2]) - now, live, mean}
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[4])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)) + ttlslack)
return {1, held + 1, 0}
`)

// renewScript: KEYS[1] the set. ARGV: now, lease, token. Reply: 1 when the
// lease was still held and now runs until now+lease, 0 when it was lost.
var renewScript = redis.NewScript(serverclock.Lua + ttlSlackLua + `
local now = now_us(ARGV[1])
local score = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not score then return 0 end
if tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], ARGV[3])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now + tonumber(ARGV[2])), ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)) + ttlslack)
return 1
`)

// releaseScript: KEYS[1] the set, KEYS[2] the mean hold. ARGV: token, the
// hold in µs, the mean's TTL in ms. It drops the lease and, when the lease
// was still held, folds the hold into the key's mean as
// ratelimitx.NextMeanHold does: floor((7*mean + hold) / 8). Reply: 1 when
// the lease was held.
var releaseScript = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local hold = math.max(0, tonumber(ARGV[2]))
local mean = tonumber(redis.call('GET', KEYS[2]))
if mean and mean > 0 then mean = math.floor((7 * mean + hold) / 8) else mean = hold end
redis.call('SET', KEYS[2], string.format('%.0f', math.max(1, mean)), 'PX', ARGV[3])
return 1
`)

// holdTTL is how long a key's mean hold outlives its last release: ten
// leases, so a key in steady use keeps its history and an idle one
// leaves nothing behind for long.
const holdTTL = 10

// ConcurrencyOptions configures NewConcurrency. Client and Limit are
// required.
type ConcurrencyOptions struct {
	// Client is the Redis holding the leases; see Options.Client.
	Client redis.UniversalClient
	// Limit is the most holders one key may have at once across every
	// process; >= 1.
	Limit int
	// Prefix starts every Redis key: {Prefix:key}:inflight. Default:
	// "ratelimit".
	Prefix string
	// Lease is how long a slot stays held without its holder renewing it.
	// Holders renew every Lease/3 while they run, so only a holder that
	// died (or lost Redis for a whole Lease) lets its slot go. Default:
	// 30s; at least 30ms.
	Lease time.Duration
	// Timeout bounds one round trip. Default: DefaultTimeout (100ms).
	Timeout time.Duration
	// Failure is what Acquire decides while Redis is unavailable. Default:
	// FailOpen (a slot is granted and not counted anywhere).
	Failure FailureMode
	// Fallback, when set, decides instead of Failure while Redis is
	// unavailable: typically a ratelimit.Concurrency with this instance's
	// share of Limit.
	Fallback ratelimit.ConcurrencyLimiter
	// Breaker is the circuit around Redis; see Options.Breaker.
	Breaker *breaker.Breaker
	// Clock replaces the system clock (see package clock); nil is the
	// server's clock (Redis TIME). It scores the leases. With a Clock,
	// keys live a minute longer than their leases need (Redis expires
	// them by its own clock, which a test's clock may trail).
	Clock clock.Clock
	// Logger receives Redis failures (Debug), lost leases (Warn) and
	// circuit changes. Default: discard.
	Logger *slog.Logger
}

// Concurrency is a ratelimit.ConcurrencyLimiter across processes: at most
// Limit holders per key, each holding a lease in Redis that it renews while
// it runs and that expires if it dies. It is safe for concurrent use.
type Concurrency struct {
	b        *backend
	limit    int
	lease    time.Duration
	fallback ratelimit.ConcurrencyLimiter

	mu     sync.Mutex
	held   map[*lease]struct{}
	closed bool

	acquired, rejected, released, renewals, lost atomic.Uint64
}

type lease struct {
	c     *Concurrency
	key   string // the Redis key
	hold  string // the key of the mean hold
	start time.Time
	token string
	rn    *renew.Renewer // nil when acquired after Close
	done  atomic.Bool
}

// NewConcurrency returns a Concurrency limiter, or an error naming the
// option to fix.
func NewConcurrency(o ConcurrencyOptions) (*Concurrency, error) {
	if o.Limit < 1 {
		return nil, fmt.Errorf("%w: ConcurrencyOptions.Limit must be >= 1, got %d", ratelimit.ErrInvalid, o.Limit)
	}
	if o.Lease == 0 {
		o.Lease = 30 * time.Second
	}
	if o.Lease < 30*time.Millisecond {
		return nil, fmt.Errorf("%w: ConcurrencyOptions.Lease must be >= 30ms, got %v", ratelimit.ErrInvalid, o.Lease)
	}
	b, err := newBackend(backendOptions{client: o.Client, prefix: o.Prefix, timeout: o.Timeout, mode: o.Failure,
		br: o.Breaker, log: o.Logger, clk: o.Clock, name: "ConcurrencyOptions"})
	if err != nil {
		return nil, err
	}
	return &Concurrency{b: b, limit: o.Limit, lease: o.Lease, fallback: o.Fallback, held: map[*lease]struct{}{}}, nil
}

// Acquire takes a slot for key in one round trip, or returns a
// *ratelimit.LimitedError (errors.Is ratelimit.ErrLimited) at once when
// every slot is held; its RetryAfter is when a slot is expected to free:
// the key's mean hold over its live holders (at least 1ms; 100ms before
// any hold was timed), bounded by the oldest lease's expiry, as
// ratelimit.Concurrency reports it (see the package doc). release gives the slot back and times the hold (one
// more round trip, bounded by Timeout); calling it more than once is
// harmless.
//
// While Redis is unavailable it asks Options.Fallback, or grants a slot
// that is counted nowhere (FailOpen) or refuses with RetryAfter 1s
// (FailClosed). It returns ctx's error when ctx ends first.
func (c *Concurrency) Acquire(ctx context.Context, key string) (release func(), err error) {
	if key == "" {
		return nil, fmt.Errorf("%w: key must not be empty", ratelimit.ErrInvalid)
	}
	l := &lease{c: c, key: c.b.key(key, "inflight"), hold: c.b.key(key, "hold"), token: token.New()}
	var (
		got                      bool
		held, oldest, live, mean int64
	)
	err = c.b.run(ctx, func(ctx context.Context) error {
		vals, err := acquireScript.Run(ctx, c.b.client, []string{l.key, l.hold}, serverclock.Micros(c.b.clk), c.lease.Microseconds(), c.limit, l.token).Slice()
		if err != nil {
			return err
		}
		var ok int64
		if ok, err = asInt64(vals, 0); err != nil {
			return err
		}
		if held, err = asInt64(vals, 1); err != nil {
			return err
		}
		if got = ok == 1; got {
			return nil
		}
		if oldest, err = asInt64(vals, 2); err != nil {
			return err
		}
		if live, err = asInt64(vals, 3); err != nil {
			return err
		}
		mean, err = asInt64(vals, 4)
		return err
	})
	if err != nil {
		if !unavailable(ctx, err) {
			return nil, ctx.Err()
		}
		return c.degraded(ctx, key, err)
	}
	if !got {
		c.rejected.Add(1)
		retry := time.Duration(oldest) * time.Microsecond
		if live > 0 {
			retry = min(retry, ratelimitx.ConcurrencyRetryAfter(time.Duration(mean)*time.Microsecond, int(live)))
		}
		return nil, c.limited(key, int(held), retry)
	}
	l.start = c.now()
	c.acquired.Add(1)
	c.mu.Lock()
	if !c.closed {
		c.held[l] = struct{}{}
		l.rn = renew.Start(c.lease/3, l.renew)
	}
	c.mu.Unlock()
	return l.release, nil
}

func (c *Concurrency) limited(key string, held int, retry time.Duration) error {
	return &ratelimit.LimitedError{Key: key, Decision: ratelimit.Decision{
		Limit:      ratelimit.Limit{Name: "concurrency", Rate: c.limit, Burst: c.limit},
		Remaining:  max(0, c.limit-held),
		RetryAfter: max(0, retry),
	}}
}

func (c *Concurrency) degraded(ctx context.Context, key string, cause error) (func(), error) {
	switch c.b.degrade(ctx, key, cause, c.fallback != nil) {
	case byFallback:
		return c.fallback.Acquire(ctx, key)
	case byFailClosed:
		return nil, c.limited(key, c.limit, time.Second)
	}
	return func() {}, nil
}

// renew extends the lease every Lease/3 (package renew); it reports false
// once the lease is lost, which ends the renewals.
func (l *lease) renew() bool {
	c := l.c
	var ok int64
	err := c.b.run(context.Background(), func(ctx context.Context) error {
		var err error
		ok, err = renewScript.Run(ctx, c.b.client, []string{l.key}, serverclock.Micros(c.b.clk), c.lease.Microseconds(), l.token).Int64()
		return err
	})
	switch {
	case err != nil:
		c.b.log.LogAttrs(context.Background(), slog.LevelDebug, "ratelimitredis: lease renewal failed", slog.String("key", l.key), slog.Any("error", err))
	case ok == 0:
		c.lost.Add(1)
		c.b.log.LogAttrs(context.Background(), slog.LevelWarn, "ratelimitredis: lease lost: its slot may be taken by another holder", slog.String("key", l.key))
		c.drop(l)
		return false
	default:
		c.renewals.Add(1)
	}
	return true
}

func (l *lease) release() {
	if l.done.Swap(true) {
		return
	}
	c := l.c
	c.drop(l)
	l.rn.Stop()
	c.released.Add(1)
	hold := c.now().Sub(l.start)
	ctx, cancel := context.WithTimeout(context.Background(), c.b.timeout)
	defer cancel()
	if err := releaseScript.Run(ctx, c.b.client, []string{l.key, l.hold}, l.token, hold.Microseconds(), c.holdTTL().Milliseconds()).Err(); err != nil {
		// The lease runs out by itself.
		c.b.log.LogAttrs(ctx, slog.LevelDebug, "ratelimitredis: release failed, the lease will expire", slog.String("key", l.key), slog.Any("error", err))
	}
}

// now times holds: Options.Clock, or time.Now (monotonic) when Redis TIME
// scores the leases.
func (c *Concurrency) now() time.Time { return clock.Now(c.b.clk) }

// holdTTL is how long the key's mean hold lives after a release: holdTTL
// leases, and a minute more with Options.Clock set (see ttlSlackLua).
func (c *Concurrency) holdTTL() time.Duration {
	if c.b.clk != nil {
		return holdTTL*c.lease + time.Minute
	}
	return holdTTL * c.lease
}

// drop takes l out of the held set.
func (c *Concurrency) drop(l *lease) {
	c.mu.Lock()
	delete(c.held, l)
	c.mu.Unlock()
}

// Close stops renewing the leases still held (they expire within Lease,
// as if this process had died) and makes later acquisitions unrenewed.
// Release the slots first for a clean stop.
func (c *Concurrency) Close() error {
	c.mu.Lock()
	c.closed = true
	held := make([]*lease, 0, len(c.held))
	for l := range c.held {
		held = append(held, l)
		delete(c.held, l)
	}
	c.mu.Unlock()
	for _, l := range held {
		l.rn.Stop()
	}
	return nil
}

// ConcurrencyStats is a snapshot of a Concurrency limiter's counters
// (ratelimit.RemoteConcurrencyStats).
type ConcurrencyStats = ratelimit.RemoteConcurrencyStats

// Stats returns a snapshot of the counters.
func (c *Concurrency) Stats() ConcurrencyStats {
	c.mu.Lock()
	held := len(c.held)
	c.mu.Unlock()
	return ConcurrencyStats{Acquired: c.acquired.Load(), Rejected: c.rejected.Load(), Released: c.released.Load(),
		Renewals: c.renewals.Load(), Lost: c.lost.Load(), Errors: c.b.errors.Load(), Skipped: c.b.skipped.Load(),
		FailOpen: c.b.failOpen.Load(), FailClosed: c.b.failClosed.Load(), Fallbacks: c.b.fallbacks.Load(), Held: held, Circuit: c.b.br.State()}
}
