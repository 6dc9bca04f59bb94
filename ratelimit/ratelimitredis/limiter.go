package ratelimitredis

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// gcraScript is ratelimit.Decide in Lua, over one hash per limiter key (a
// field per limit holding its theoretical arrival time), in microseconds:
// Lua numbers are doubles, exact for integers up to 2^53, and Unix
// microseconds stay below that for another 200 years.
//
// KEYS[1]: the hash. ARGV: now (Unix µs, or -1 to read Redis TIME), n, then
// per limit: field, interval (µs), burst. Reply: {allowed (0/1), index of
// the binding limit (1-based), remaining, reset-after (µs), retry-after
// (µs)}. A denial writes nothing; an admission writes every limit and sets
// the hash to expire when its last limit is full again.
var gcraScript = redis.NewScript(`
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local n = tonumber(ARGV[2])
local nl = (#ARGV - 2) / 3
local fields = {}
for i = 1, nl do fields[i] = ARGV[3 * i] end
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local tats = {}
local ok = true
local worst, di, drem, dreset = -1, 0, 0, 0
local bleft, bi, breset = -1, 0, 0
for i = 1, nl do
  local t = tonumber(ARGV[3 * i + 1])
  local tau = t * tonumber(ARGV[3 * i + 2])
  local tat = tonumber(stored[i]) or 0
  if tat < now then tat = now end
  local newtat = tat + n * t
  tats[i] = newtat
  local allowat = newtat - tau
  if now < allowat then
    ok = false
    if allowat - now > worst then
      worst = allowat - now
      di = i
      drem = math.max(0, math.floor((now + tau - tat) / t))
      dreset = tat - now
    end
  else
    local left = math.floor((now + tau - newtat) / t)
    if bleft < 0 or left < bleft then
      bleft, bi, breset = left, i, newtat - now
    end
  end
end
if not ok then return {0, di, drem, dreset, worst} end
local set = {}
local ttl = 0
for i = 1, nl do
  set[2 * i - 1] = fields[i]
  set[2 * i] = string.format('%.0f', tats[i])
  ttl = math.max(ttl, tats[i] - now)
end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(ttl / 1000)))
return {1, bi, bleft, breset, 0}
`)

// gcra1Script is gcraScript for a policy of one limit: the arrival time is
// a plain string key, read with GET and written with one SET PX, a command
// fewer per decision. KEYS[1]: the key. ARGV: now, n, field (unused),
// interval, burst.
var gcra1Script = redis.NewScript(`
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local n = tonumber(ARGV[2])
local t = tonumber(ARGV[4])
local tau = t * tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1])) or 0
if tat < now then tat = now end
local newtat = tat + n * t
local allowat = newtat - tau
if now < allowat then
  return {0, 1, math.max(0, math.floor((now + tau - tat) / t)), tat - now, allowat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', newtat), 'PX', math.max(1, math.ceil((newtat - now) / 1000)))
return {1, 1, math.floor((now + tau - newtat) / t), newtat - now, 0}
`)

// Options configures New. Client and Limits are required.
type Options struct {
	// Client is the Redis to decide on: a *redis.Client, *redis.ClusterClient
	// (every key of one limiter key shares a hash tag, so several limits are
	// checked in one slot) or any UniversalClient. Its options must have
	// ContextTimeoutEnabled (or a ReadTimeout no longer than Timeout), or
	// New refuses it: otherwise a paused Redis holds every request for the
	// client's ReadTimeout.
	Client redis.UniversalClient
	// Limits is the policy every key gets. Each limit's interval
	// (Period/Rate) must be at least 1µs, the Redis limiter's resolution.
	Limits ratelimit.Policy
	// Prefix starts every Redis key: {Prefix:key}:limit. Default:
	// "ratelimit". Limiters with different policies need different
	// prefixes unless their limit names differ.
	Prefix string
	// Timeout bounds one decision's round trip. Default: DefaultTimeout
	// (100ms).
	Timeout time.Duration
	// Failure is what to decide while Redis is unavailable. Default:
	// FailOpen.
	Failure FailureMode
	// Fallback, when set, decides instead of Failure while Redis is
	// unavailable: typically a ratelimit.Local with this instance's share
	// of the fleet's limits. Default: none.
	Fallback ratelimit.Limiter
	// Breaker is the circuit around Redis: once it opens, decisions skip
	// Redis (no latency, no connection attempts) until it probes again.
	// Default: opens after 3 consecutive failures, for 1s growing to 10s
	// while probes fail.
	Breaker *breaker.Breaker
	// Now is the clock. Default: nil, Redis TIME, so the fleet's clocks do
	// not matter. Set it for simulated time in tests.
	Now func() time.Time
	// Logger receives Redis failures (Debug) and circuit changes. Default:
	// discard.
	Logger *slog.Logger
}

// Limiter is a ratelimit.Limiter whose state lives in Redis, shared by
// every process that uses the same Redis, prefix and policy. Each decision
// is one EVALSHA (the script is loaded again by itself after a SCRIPT
// FLUSH or a failover). A policy of several limits keeps a hash per key
// ({prefix:key}:limit, a field per limit); a policy of one limit a plain
// string ({prefix:key}:gcra), a command fewer per decision. It is safe for
// concurrent use.
type Limiter struct {
	b        *backend
	p        ratelimit.Policy
	args     []any // per limit: field, interval µs, burst
	script   *redis.Script
	suffix   string
	binding  ratelimit.Limit
	fallback ratelimit.Limiter

	allowed, denied atomic.Uint64
}

// New returns a Limiter, or an error naming the option to fix.
func New(o Options) (*Limiter, error) {
	p, err := o.Limits.Normalize()
	if err != nil {
		return nil, fmt.Errorf("ratelimitredis: Options: %w", err)
	}
	l := &Limiter{p: p, fallback: o.Fallback, binding: p[0], script: gcraScript, suffix: "limit"}
	if len(p) == 1 {
		l.script, l.suffix = gcra1Script, "gcra"
	}
	for i, lim := range p {
		iv := lim.Interval() / time.Microsecond
		if iv < 1 {
			return nil, fmt.Errorf("%w: Options.Limits[%d]: Rate %d per %v is more than one event per microsecond, the Redis limiter's resolution", ratelimit.ErrInvalid, i, lim.Rate, lim.Period)
		}
		l.args = append(l.args, lim.Name, int64(iv), lim.Burst)
		if lim.Burst < l.binding.Burst {
			l.binding = lim
		}
	}
	l.b, err = newBackend(backendOptions{client: o.Client, prefix: o.Prefix, timeout: o.Timeout, mode: o.Failure,
		br: o.Breaker, log: o.Logger, now: o.Now, name: "Options"})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Policy is the normalized policy (for the middleware's RateLimit-Policy
// header).
func (l *Limiter) Policy() ratelimit.Policy { return l.p }

// Allow is AllowN(ctx, key, 1).
func (l *Limiter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN decides for n events of key in one round trip. While Redis is
// unavailable it returns Options.Fallback's decision, or with no fallback
// an admission (FailOpen) or a denial with RetryAfter 1s (FailClosed), and
// no error: the outage is counted in Stats and logged. It returns an error
// for bad arguments (ratelimit.ErrInvalid) and ctx's error when ctx ends
// first.
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	if err := ratelimit.CheckArgs(l.p, key, n); err != nil {
		return ratelimit.Decision{}, err
	}
	argv := make([]any, 0, 2+len(l.args))
	argv = append(argv, l.b.nowArg(), n)
	argv = append(argv, l.args...)
	var d ratelimit.Decision
	err := l.b.run(ctx, func(ctx context.Context) error {
		vals, err := l.script.Run(ctx, l.b.client, []string{l.b.key(key, l.suffix)}, argv...).Slice()
		if err != nil {
			return err
		}
		d, err = l.decision(vals)
		return err
	})
	if err == nil {
		if d.Allowed {
			l.allowed.Add(1)
		} else {
			l.denied.Add(1)
		}
		return d, nil
	}
	if !unavailable(ctx, err) {
		return ratelimit.Decision{}, ctx.Err()
	}
	return l.degraded(ctx, key, n, err)
}

func (l *Limiter) decision(vals []any) (ratelimit.Decision, error) {
	var v [5]int64
	for i := range v {
		var err error
		if v[i], err = asInt64(vals, i); err != nil {
			return ratelimit.Decision{}, err
		}
	}
	if v[1] < 1 || int(v[1]) > len(l.p) {
		return ratelimit.Decision{}, fmt.Errorf("ratelimitredis: script reply names limit %d of %d", v[1], len(l.p))
	}
	return ratelimit.Decision{
		Allowed:    v[0] == 1,
		Limit:      l.p[v[1]-1],
		Remaining:  int(v[2]),
		ResetAfter: time.Duration(v[3]) * time.Microsecond,
		RetryAfter: time.Duration(v[4]) * time.Microsecond,
	}, nil
}

// degraded decides while Redis is unavailable.
func (l *Limiter) degraded(ctx context.Context, key string, n int, cause error) (ratelimit.Decision, error) {
	switch l.b.degrade(ctx, key, cause, l.fallback != nil) {
	case byFallback:
		return l.fallback.AllowN(ctx, key, n)
	case byFailClosed:
		return ratelimit.Decision{Limit: l.binding, RetryAfter: time.Second}, nil
	}
	return ratelimit.Decision{Allowed: true, Limit: l.binding, Remaining: l.binding.Burst - n}, nil
}

// Wait blocks until one event for key is admitted; see ratelimit.Wait.
func (l *Limiter) Wait(ctx context.Context, key string) (ratelimit.Decision, error) {
	return ratelimit.Wait(ctx, l, key, 1)
}

// Stats is a snapshot of a Limiter's counters.
type Stats struct {
	// Allowed and Denied count decisions Redis made.
	Allowed, Denied uint64
	// Errors counts failed round trips; Skipped the decisions the open
	// circuit kept away from Redis.
	Errors, Skipped uint64
	// FailOpen and FailClosed count decisions made by the failure mode,
	// Fallbacks those handed to Options.Fallback.
	FailOpen, FailClosed, Fallbacks uint64
	// Circuit is the breaker's state.
	Circuit breaker.State
}

// Stats returns a snapshot of the counters.
func (l *Limiter) Stats() Stats {
	return Stats{Allowed: l.allowed.Load(), Denied: l.denied.Load(), Errors: l.b.errors.Load(), Skipped: l.b.skipped.Load(),
		FailOpen: l.b.failOpen.Load(), FailClosed: l.b.failClosed.Load(), Fallbacks: l.b.fallbacks.Load(), Circuit: l.b.br.State()}
}
