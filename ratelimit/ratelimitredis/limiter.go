package ratelimitredis

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/ratelimitx"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// The GCRA scripts keep each limit's theoretical arrival time (TAT) in
// nanoseconds, the precision of ratelimit.Local, so both backends admit
// exactly the same events: a limit's interval is Period/Rate truncated to
// whole nanoseconds on both (1µs would truncate 300k/s to 333k/s and
// 700k/s to 1M/s).
//
// Lua numbers are doubles, exact for integers up to 2^53, and Unix
// nanoseconds are past that (2^53ns is 104 days). So a time or duration in
// the scripts is a pair (µs, ns) with 0 <= ns < 1000: the µs part of a
// Unix time is about 1.8e15 and a tolerance is at most 100 years
// (ratelimit caps Burst*Interval), 3.2e15µs, so every sum the scripts form
// stays below 2^53 and the arithmetic (add, subtract with borrow, compare)
// is exact. The scripts only decide and write; the Decision (remaining,
// reset-after, retry-after) is computed in Go by ratelimit.Decide from
// each limit's TAT relative to now, exact in int64 nanoseconds, so it is
// the very Decision Local would make.
//
// A stored TAT is the decimal µs, followed by "." and three digits of ns
// when those are not 0: "1767225600100000" or "1767225600103333.333". A
// TAT of whole µs (no fraction) reads as that many µs, and a reader that
// takes the whole string as a number (Lua's tonumber) reads the
// fractional form off by under 1µs, so state written in either form needs
// no migration.

// ttlSlackMS is how much longer (ms) keys live when Options.Clock is set
// (see ttlSlackLua).
const ttlSlackMS = "60000"

// ttlSlackLua defines ttlslack, added to every TTL when the caller passed
// the time in ARGV[1] (Options.Clock; -1: Redis TIME): its clock may run
// slower than Redis's, whose TTLs are real time (a test's fake clock),
// and a key that expired early would forget its admissions or free
// leases still held. A key past its TTL is a full bucket (no lease), so
// keeping it longer changes no decision. gcra1Script writes it inline.
const ttlSlackLua = `
local ttlslack = 0
if tonumber(ARGV[1]) >= 0 then ttlslack = ` + ttlSlackMS + ` end
`

// gcraLib is the arithmetic the GCRA scripts share, after serverclock.Lua
// (now_us_ns reads the time arguments).
const gcraLib = serverclock.Lua + ttlSlackLua + `
local function readtat(v)
  if not v then return 0, 0 end
  local us, ns = string.match(v, '^(%d+)%.(%d%d%d)$')
  if us then return tonumber(us), tonumber(ns) end
  return math.floor(tonumber(v) or 0), 0
end
local function fmttat(us, ns)
  if ns == 0 then return string.format('%.0f', us) end
  return string.format('%.0f.%03d', us, ns)
end
-- limit returns the limit's TAT relative to now (0 when past), as Decide
-- sees it, and that plus n intervals, and whether n events fit in its
-- tolerance: d + n*T <= tau. a is the limit's first argument: n*T (µs, ns)
-- then tau (µs, ns).
local function limit(v, nowus, nowns, a)
  local us, ns = readtat(v)
  us, ns = us - nowus, ns - nowns
  if ns < 0 then us, ns = us - 1, ns + 1000 end
  if us < 0 then us, ns = 0, 0 end
  local aus, ans = us + tonumber(ARGV[a]), ns + tonumber(ARGV[a + 1])
  if ans >= 1000 then aus, ans = aus + 1, ans - 1000 end
  local tus, tns = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  return us, ns, aus, ans, aus < tus or (aus == tus and ans <= tns)
end
-- absolute returns now + (us, ns) in the stored form.
local function absolute(nowus, nowns, us, ns)
  us, ns = nowus + us, nowns + ns
  if ns >= 1000 then us, ns = us + 1, ns - 1000 end
  return fmttat(us, ns)
end
-- ttlms is (us, ns) rounded up to whole milliseconds, at least 1.
local function ttlms(us, ns)
  if ns > 0 then us = us + 1 end
  return math.max(1, math.ceil(us / 1000)) + ttlslack
end
`

// gcraScript is ratelimit.Decide's admission rule in Lua over one hash per
// limiter key, a field per limit holding its TAT.
//
// KEYS[1]: the hash. ARGV: now µs and ns (-1 and 0: read Redis TIME), then
// per limit: field, n*interval µs and ns, tolerance (burst*interval) µs and
// ns. Reply: {allowed (0/1), then per limit its TAT minus now, floored at
// 0, as µs and ns}, before the events. A denial writes nothing; an
// admission writes every limit and sets the hash to expire when its last
// limit is full again.
var gcraScript = redis.NewScript(gcraLib + `
local nowus, nowns = now_us_ns(ARGV[1], ARGV[2])
local nl = (#ARGV - 2) / 5
local fields = {}
for i = 1, nl do fields[i] = ARGV[5 * i - 2] end
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local reply, set = {1}, {}
local ttlus, ttlns = 0, 0
for i = 1, nl do
  local us, ns, aus, ans, fits = limit(stored[i], nowus, nowns, 5 * i - 1)
  reply[2 * i], reply[2 * i + 1] = us, ns
  if not fits then reply[1] = 0 end
  set[2 * i - 1], set[2 * i] = fields[i], absolute(nowus, nowns, aus, ans)
  if aus > ttlus or (aus == ttlus and ans > ttlns) then ttlus, ttlns = aus, ans end
end
if reply[1] == 1 then
  redis.call('HSET', KEYS[1], unpack(set))
  redis.call('PEXPIRE', KEYS[1], ttlms(ttlus, ttlns))
end
return reply
`)

// gcra1Script is gcraScript for a policy of one limit: the TAT is a plain
// string key, read with GET and written with one SET PX, a command fewer
// per decision. KEYS[1]: the key. ARGV and reply: as gcraScript's. It is
// the hot path, so it is gcraLib written out inline (no closures, a plain
// find instead of a pattern); TestAgreesWithLocal and TestStateFormat
// check both scripts. Its first lines are serverclock.Lua's now_us_ns
// written out too: prepending serverclock.Lua defines three closures per
// call, which measured 7.65µs of Redis CPU per call against 7.10µs inline
// (INFO commandstats, 11 alternating runs of 100k calls).
var gcra1Script = redis.NewScript(`
local nowus, nowns = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttlslack = ` + ttlSlackMS + `
if nowus < 0 then
  ttlslack = 0
  local t = redis.call('TIME')
  nowus, nowns = tonumber(t[1]) * 1000000 + tonumber(t[2]), 0
end
local K, A, tu, tn = KEYS[1], 4, tonumber(ARGV[6]), tonumber(ARGV[7])
` + gcra1Decide + `
return {ok, us, ns}
`)

// gcra1Decide is the one-limit decision for one key, written out (no
// function: it is the hot path) for the two scripts that run it,
// gcra1Script and gcraManyScript's one-limit loop. It reads the key K, now
// (nowus, nowns), n*interval at ARGV[A] and ARGV[A+1] (µs, ns) and the
// tolerance (tu, tn); it sets ok (0/1) and the TAT minus now (us, ns),
// and writes the new TAT when ok.
const gcra1Decide = `
local v = redis.call('GET', K)
local us, ns = 0, 0
if v then
  local dot = string.find(v, '.', 1, true)
  if dot then
    us, ns = tonumber(string.sub(v, 1, dot - 1)) or 0, tonumber(string.sub(v, dot + 1)) or 0
  else
    us = math.floor(tonumber(v) or 0)
  end
end
us, ns = us - nowus, ns - nowns
if ns < 0 then us, ns = us - 1, ns + 1000 end
if us < 0 then us, ns = 0, 0 end
local aus, ans = us + tonumber(ARGV[A]), ns + tonumber(ARGV[A + 1])
if ans >= 1000 then aus, ans = aus + 1, ans - 1000 end
local ok = 0
if aus < tu or (aus == tu and ans <= tn) then
  ok = 1
  local wus, wns = nowus + aus, nowns + ans
  if wns >= 1000 then wus, wns = wus + 1, wns - 1000 end
  local w
  if wns == 0 then w = string.format('%.0f', wus) else w = string.format('%.0f.%03d', wus, wns) end
  if ans > 0 then aus = aus + 1 end
  redis.call('SET', K, w, 'PX', math.max(1, math.ceil(aus / 1000)) + ttlslack)
end
`

// Options configures New. Client and Limits are required.
type Options struct {
	// Client is the Redis to decide on: a *redis.Client, *redis.ClusterClient
	// (every key of one limiter key shares a hash tag, so several limits are
	// checked in one slot) or any UniversalClient. Its options must have
	// ContextTimeoutEnabled (or a ReadTimeout no longer than Timeout), or
	// New refuses it: otherwise a paused Redis holds every request for the
	// client's ReadTimeout.
	Client redis.UniversalClient
	// Limits is the policy every key gets. Decisions are computed in
	// nanoseconds, as ratelimit.Local computes them, so both admit the
	// same events. Each limit's interval (Period/Rate) must be at least
	// 1µs: a single Redis key serves far fewer than a million decisions a
	// second, so a faster limit could never be reached.
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
	// Clock replaces the system clock (see package clock); nil is the
	// server's clock (Redis TIME), so the fleet's clocks do not matter.
	// With a Clock, keys live a minute longer than their limits need
	// (Redis expires them by its own clock, which a test's clock may
	// trail).
	Clock clock.Clock
	// Logger receives Redis failures (Debug) and circuit changes. Default:
	// discard.
	Logger *slog.Logger
	// Coalesce sends the decisions that concurrent AllowN calls of this
	// Limiter ask for at once in one round trip. A call that finds fewer
	// than MaxInFlight round trips out goes at once, alone (no timer, no
	// added latency when idle); calls arriving while MaxInFlight are out
	// queue and leave together, up to MaxBatch in one script, as soon as
	// one returns. Decisions are exactly those of separate calls, in the
	// order the calls queued; each call waits at most Timeout from when it
	// queued, then gets the degraded decision. Default: false (one round
	// trip per call).
	Coalesce bool
	// MaxBatch bounds the decisions one coalesced round trip carries.
	// Default: DefaultMaxBatch (128). Used with Coalesce.
	MaxBatch int
	// MaxInFlight bounds the coalesced round trips out at once; on a
	// *redis.ClusterClient, per master (each master has its own queue).
	// Default: DefaultMaxInFlight (2); on a Cluster
	// DefaultClusterMaxInFlight (1 per master). Used with Coalesce.
	MaxInFlight int
	// Lease turns on token leases: AllowN of at most Lease events takes up
	// to Lease events of its key from Redis in one round trip (as many as
	// fit, fewer near the limit) and spends them in this process until
	// they run out or LeaseTTL passes. Decisions from a lease cost no round
	// trip; the price is that events are counted in Redis when leased,
	// not when spent, so over any window the fleet admits at most
	// Processes x (Lease - 1) events per key more than the exact limit
	// (burst + rate x window), and up to that many leased events may go
	// unspent (Stats.LeaseExpired). A denial is held in the process until
	// Lease events are back (at most half the burst's refill time), and
	// its RetryAfter says so. Keep Lease x Processes a small share
	// of what a key may do in a window. Between 0 (off, the default: every
	// decision exact) and 1,000,000; not with Coalesce.
	Lease int
	// LeaseTTL is how long leased events may be spent after they were
	// taken. Default: DefaultLeaseTTL (1s). Used with Lease.
	LeaseTTL time.Duration
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
	iv       []int64 // per limit: interval in ns
	args     []any   // per limit: field, n*interval µs and ns for n = 1, tolerance µs and ns
	script   *redis.Script
	suffix   string
	binding  ratelimit.Limit
	maxBurst int // the smallest Burst: the most one call may ask for
	fallback ratelimit.Limiter

	co *coalescer // nil without Options.Coalesce
	ls *leaser    // nil without Options.Lease

	allowed, denied, trips, batches, batched atomic.Uint64
	// perSlot: the Cluster's nodes cannot run gcraNodeScript (Redis
	// before 7), so batches go by hash slot.
	perSlot atomic.Bool
}

// New returns a Limiter, or an error naming the option to fix.
func New(o Options) (*Limiter, error) {
	p, err := o.Limits.Normalize()
	if err != nil {
		return nil, fmt.Errorf("ratelimitredis: Options: %w", err)
	}
	l := &Limiter{p: p, fallback: o.Fallback, binding: p[0], maxBurst: p.MaxBurst(), script: gcraScript, suffix: "limit"}
	if len(p) == 1 {
		l.script, l.suffix = gcra1Script, "gcra"
	}
	for i, lim := range p {
		iv := int64(lim.Interval())
		if iv < int64(time.Microsecond) {
			return nil, fmt.Errorf("%w: Options.Limits[%d]: Rate %d per %v is more than one event per microsecond, more than one Redis key can serve", ratelimit.ErrInvalid, i, lim.Rate, lim.Period)
		}
		tau := iv * int64(lim.Burst) // at most 100 years: Normalize checked
		l.iv = append(l.iv, iv)
		l.args = append(l.args, lim.Name, iv/1000, iv%1000, tau/1000, tau%1000)
		if lim.Burst < l.binding.Burst {
			l.binding = lim
		}
	}
	l.b, err = newBackend(backendOptions{client: o.Client, prefix: o.Prefix, timeout: o.Timeout, mode: o.Failure,
		br: o.Breaker, log: o.Logger, clk: o.Clock, name: "Options"})
	if err != nil {
		return nil, err
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
		if _, ok := o.Client.(*redis.ClusterClient); ok {
			o.MaxInFlight = DefaultClusterMaxInFlight
		}
	}
	if o.MaxBatch < 1 || o.MaxBatch > 10_000 {
		return nil, fmt.Errorf("%w: Options.MaxBatch must be between 1 and 10000, got %d", ratelimit.ErrInvalid, o.MaxBatch)
	}
	if o.MaxInFlight < 1 {
		return nil, fmt.Errorf("%w: Options.MaxInFlight must be >= 1, got %d", ratelimit.ErrInvalid, o.MaxInFlight)
	}
	if o.Lease < 0 || o.Lease > 1_000_000 {
		return nil, fmt.Errorf("%w: Options.Lease must be between 0 (off) and 1000000, got %d", ratelimit.ErrInvalid, o.Lease)
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.LeaseTTL < 0 {
		return nil, fmt.Errorf("%w: Options.LeaseTTL must be > 0, got %v", ratelimit.ErrInvalid, o.LeaseTTL)
	}
	if o.Lease > 0 && o.Coalesce {
		return nil, fmt.Errorf("%w: Options.Lease and Options.Coalesce cannot both be set: leases already take a round trip per Lease events", ratelimit.ErrInvalid)
	}
	if o.Coalesce {
		l.co = newCoalescer(l, o.MaxBatch, o.MaxInFlight)
	}
	if o.Lease > 0 {
		l.ls = &leaser{l: l, size: o.Lease, ttl: o.LeaseTTL, clk: o.Clock, seed: maphash.MakeSeed()}
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
	if err := ratelimitx.CheckArgs(ratelimit.ErrInvalid, l.maxBurst, key, n); err != nil {
		return ratelimit.Decision{}, err
	}
	if l.co != nil {
		return l.co.allow(ctx, key, n)
	}
	if l.ls != nil && n <= l.ls.size {
		return l.ls.allow(ctx, key, n)
	}
	return l.allowDirect(ctx, key, n)
}

// allowDirect decides for one call in a round trip of its own.
func (l *Limiter) allowDirect(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	nowUS, nowNS := serverclock.MicrosNanos(l.b.clk)
	argv := l.argv(n, nowUS, nowNS)
	var d ratelimit.Decision
	err := l.b.run(ctx, func(ctx context.Context) error {
		l.trips.Add(1)
		vals, err := l.script.Run(ctx, l.b.client, []string{l.b.key(key, l.suffix)}, argv...).Slice()
		if err != nil {
			return err
		}
		d, err = l.decision(vals, n)
		return err
	})
	if err == nil {
		l.count(d)
		return d, nil
	}
	if !unavailable(ctx, err) {
		return ratelimit.Decision{}, ctx.Err()
	}
	return l.degraded(ctx, key, n, err)
}

// argv is the arguments of l.script deciding n events at now.
func (l *Limiter) argv(n int, nowUS, nowNS int64) []any {
	argv := make([]any, 0, 2+len(l.args))
	argv = append(argv, nowUS, nowNS)
	argv = append(argv, l.args...)
	if n > 1 {
		for i, iv := range l.iv {
			argv[2+5*i+1], argv[2+5*i+2] = int64(n)*iv/1000, int64(n)*iv%1000
		}
	}
	return argv
}

// decision makes the Decision from the script's reply: ratelimit.Decide
// at time 0 over each limit's TAT relative to now, which is exactly the
// Decision ratelimit.Local makes (GCRA depends only on TAT - now).
func (l *Limiter) decision(vals []any, n int) (ratelimit.Decision, error) {
	if len(vals) != 1+2*len(l.p) {
		return ratelimit.Decision{}, fmt.Errorf("ratelimitredis: script reply has %d elements, want %d", len(vals), 1+2*len(l.p))
	}
	var buf [8]int64
	tats := buf[:0]
	for i := range l.p {
		us, err := asInt64(vals, 1+2*i)
		if err != nil {
			return ratelimit.Decision{}, err
		}
		ns, err := asInt64(vals, 2+2*i)
		if err != nil {
			return ratelimit.Decision{}, err
		}
		tats = append(tats, us*1000+ns)
	}
	allowed, err := asInt64(vals, 0)
	if err != nil {
		return ratelimit.Decision{}, err
	}
	d := ratelimit.Decide(0, l.p, tats, n)
	if d.Allowed != (allowed == 1) {
		return ratelimit.Decision{}, fmt.Errorf("ratelimitredis: script admitted %d, Decide says %v: the script and this package differ", allowed, d.Allowed)
	}
	return d, nil
}

// degraded decides while Redis is unavailable.
func (l *Limiter) degraded(ctx context.Context, key string, n int, cause error) (ratelimit.Decision, error) {
	return l.decideInstead(ctx, key, n, l.b.degrade(ctx, key, cause, l.fallback != nil))
}

// degradedOne decides for one key of a batch whose failure fail counted.
func (l *Limiter) degradedOne(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	return l.decideInstead(ctx, key, n, l.b.instead(l.fallback != nil))
}

// decideInstead is the decision made without Redis, by who.
func (l *Limiter) decideInstead(ctx context.Context, key string, n int, who degradedBy) (ratelimit.Decision, error) {
	switch who {
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

// Stats is a snapshot of a Limiter's counters (ratelimit.RemoteStats, so
// that metrics collectors need not import this package).
type Stats = ratelimit.RemoteStats

// Stats returns a snapshot of the counters.
func (l *Limiter) Stats() Stats {
	st := Stats{Allowed: l.allowed.Load(), Denied: l.denied.Load(), RoundTrips: l.trips.Load(), Batches: l.batches.Load(),
		Batched: l.batched.Load(), Errors: l.b.errors.Load(), Skipped: l.b.skipped.Load(), FailOpen: l.b.failOpen.Load(), FailClosed: l.b.failClosed.Load(), Fallbacks: l.b.fallbacks.Load(), Circuit: l.b.br.State()}
	if l.ls != nil {
		st.Leases, st.Leased, st.LeaseSpent, st.LeaseExpired = l.ls.leases.Load(), l.ls.leased.Load(), l.ls.spent.Load(), l.ls.expired.Load()
	}
	return st
}
