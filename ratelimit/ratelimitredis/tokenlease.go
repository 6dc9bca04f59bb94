package ratelimitredis

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// DefaultLeaseTTL is Options.LeaseTTL's default.
const DefaultLeaseTTL = time.Second

// gcraLeaseScript takes up to want events of a key at once (a lease),
// and at least need: the most that fit in every limit of the policy, as
// that many separate admissions would. With fewer than need fitting it is
// a denial and writes nothing.
//
// KEYS[1]: the key (a string for one limit, a hash for several, as
// gcra1Script and gcraScript keep it). ARGV: now µs and ns (as
// gcraScript), want, need, the number of limits nl, then per limit its
// field, interval µs and ns, tolerance µs and ns. Reply: {events taken
// (0: denied), then per limit its TAT minus now, floored at 0, as µs and
// ns}, before the events.
var gcraLeaseScript = redis.NewScript(gcraLib + `
local nowus, nowns = now_us_ns(ARGV[1], ARGV[2])
local m, need, nl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local fields = {}
for i = 1, nl do fields[i] = ARGV[1 + 5 * i] end
local stored
if nl == 1 then stored = {redis.call('GET', KEYS[1])} else stored = redis.call('HMGET', KEYS[1], unpack(fields)) end
local reply, lim = {0}, {}
-- after returns d + c intervals of limit l as (µs, ns) and whether it is
-- within the tolerance: exact, as c*ns stays far below 2^53 (c <= want).
local function after(l, c)
  local p = c * l.ivns
  local aus, ans = l.us + c * l.ivus + math.floor(p / 1000), l.ns + p % 1000
  if ans >= 1000 then aus, ans = aus + 1, ans - 1000 end
  return aus < l.tus or (aus == l.tus and ans <= l.tns), aus, ans
end
for i = 1, nl do
  local a = 1 + 5 * i
  local us, ns = readtat(stored[i])
  us, ns = us - nowus, ns - nowns
  if ns < 0 then us, ns = us - 1, ns + 1000 end
  if us < 0 then us, ns = 0, 0 end
  reply[2 * i], reply[2 * i + 1] = us, ns
  local l = {us = us, ns = ns, ivus = tonumber(ARGV[a + 1]), ivns = tonumber(ARGV[a + 2]), tus = tonumber(ARGV[a + 3]), tns = tonumber(ARGV[a + 4])}
  lim[i] = l
  -- an estimate within one of the count that fits, then made exact
  local k = math.floor(((l.tus - us) * 1000 + (l.tns - ns)) / (l.ivus * 1000 + l.ivns))
  if k > m then k = m end
  if k < 0 then k = 0 end
  while k > 0 and not after(l, k) do k = k - 1 end
  while k < m and after(l, k + 1) do k = k + 1 end
  m = k
end
if m < need then return reply end
reply[1] = m
local set, ttlus, ttlns = {}, 0, 0
for i = 1, nl do
  local _, aus, ans = after(lim[i], m)
  set[2 * i - 1], set[2 * i] = fields[i], absolute(nowus, nowns, aus, ans)
  if aus > ttlus or (aus == ttlus and ans > ttlns) then ttlus, ttlns = aus, ans end
end
if nl == 1 then
  redis.call('SET', KEYS[1], set[2], 'PX', ttlms(ttlus, ttlns))
else
  redis.call('HSET', KEYS[1], unpack(set))
  redis.call('PEXPIRE', KEYS[1], ttlms(ttlus, ttlns))
end
return reply
`)

// leaseShards spreads the leases over this many locks.
const leaseShards = 64

// leaser holds this process's leases (Options.Lease): per key, the events
// taken from Redis and not spent yet.
type leaser struct {
	l    *Limiter
	size int           // Options.Lease
	ttl  time.Duration // Options.LeaseTTL
	clk  clock.Clock   // nil: the system clock
	seed maphash.Seed

	shards [leaseShards]leaseShard

	leases, leased, spent, expired atomic.Uint64
}

type leaseShard struct {
	mu    sync.Mutex
	m     map[string]*tokenLease
	swept int // len(m) after the last sweep: the next runs at twice that
}

// tokenLease is one key's events in hand. tats are the policy's TATs as this
// process alone would see them, relative to at (the lease's time, in
// local ns): ratelimit.Decide over them makes each spend's Decision.
type tokenLease struct {
	at, until   int64 // local clock, ns
	stock       int   // events left to spend
	tats        []int64
	deniedUntil int64  // a denial of one event holds until then
	fetch       *fetch // the lease being taken, if any
}

// fetch is a lease being taken: done is closed once it is in, with err
// set when Redis could not give it (its waiters then decide as the taker
// did, without a round trip each).
type fetch struct {
	done chan struct{}
	err  error
}

func (s *leaser) now() int64 { return clock.Now(s.clk).UnixNano() }

// allow decides for n events of key: from the key's lease while it has
// them, else by taking a new lease (one round trip, one per key at a time
// in this process; concurrent callers of the key wait for it).
func (s *leaser) allow(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	sh := &s.shards[maphash.String(s.seed, key)%leaseShards]
	for {
		sh.mu.Lock()
		now := s.now()
		e := sh.m[key]
		if e != nil && e.fetch != nil {
			f := e.fetch
			sh.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return ratelimit.Decision{}, ctx.Err()
			}
			if f.err != nil { // counted once, by the taker
				return s.l.degradedOne(ctx, key, n)
			}
			continue
		}
		if e != nil && now < e.until && e.stock >= n {
			e.stock -= n
			d := ratelimit.Decide(max(0, now-e.at), s.l.p, e.tats, n)
			sh.mu.Unlock()
			s.spent.Add(uint64(n))
			s.l.allowed.Add(1)
			return d, nil
		}
		if e != nil && now < e.deniedUntil {
			// A denial of one event is held (see hold): nothing frees a
			// GCRA limit before its RetryAfter, and until a lease's worth
			// has come back a round trip would bring back little.
			var buf [8]int64
			d := ratelimit.Decide(max(0, now-e.at), s.l.p, append(buf[:0], e.tats...), n) // a copy: a held denial moves nothing
			d.Allowed, d.Remaining, d.RetryAfter = false, 0, max(d.RetryAfter, time.Duration(e.deniedUntil-now))
			sh.mu.Unlock()
			s.l.denied.Add(1)
			return d, nil
		}
		if e == nil {
			e = &tokenLease{}
			if sh.m == nil {
				sh.m = map[string]*tokenLease{}
			}
			sh.m[key] = e
			s.sweep(sh, now)
		}
		if e.stock > 0 {
			s.expired.Add(uint64(e.stock))
			e.stock = 0
		}
		f := &fetch{done: make(chan struct{})}
		e.fetch = f
		sh.mu.Unlock()
		d, m, tats, err := s.take(ctx, key, n)
		sh.mu.Lock()
		e.fetch = nil
		if unavailable(ctx, err) {
			f.err = err
		}
		close(f.done)
		if err == nil {
			e.at, e.tats = now, tats
			if d.Allowed {
				e.stock, e.until, e.deniedUntil = m-n, now+int64(s.ttl), 0
			} else if n == 1 {
				d.RetryAfter = s.hold(d)
				e.deniedUntil = now + int64(d.RetryAfter)
			}
		}
		sh.mu.Unlock()
		if err == nil {
			s.l.count(d)
			return d, nil
		}
		if !unavailable(ctx, err) {
			return ratelimit.Decision{}, ctx.Err()
		}
		return s.l.degraded(ctx, key, n, err)
	}
}

// hold is how long this process keeps denying a key after Redis denied
// it one event: until Lease events have come back (so a saturated key
// costs a round trip per lease, not per interval), but never more than
// half the time the key takes to refill its burst (so no event a lease
// could take is lost to a full bucket), and never less than RetryAfter.
func (s *leaser) hold(d ratelimit.Decision) time.Duration {
	h := d.RetryAfter + time.Duration(s.size-1)*d.Limit.Interval()
	return max(d.RetryAfter, min(h, d.ResetAfter/2))
}

// sweep drops the leases of a shard that have nothing left to give once
// the shard has doubled since the last sweep, so keys seen once do not
// stay. Called with sh.mu held.
func (s *leaser) sweep(sh *leaseShard, now int64) {
	if len(sh.m) < 2*max(sh.swept, 64) {
		return
	}
	for k, e := range sh.m {
		if e.fetch == nil && now >= e.until && now >= e.deniedUntil {
			if e.stock > 0 {
				s.expired.Add(uint64(e.stock))
			}
			delete(sh.m, k)
		}
	}
	sh.swept = len(sh.m)
}

// take asks Redis for a lease of up to size events of key, at least n,
// and returns the Decision for the caller's n, the events taken (n of
// them for the caller) and the TATs after the caller's n, relative to
// now.
func (s *leaser) take(ctx context.Context, key string, n int) (ratelimit.Decision, int, []int64, error) {
	l := s.l
	nowUS, nowNS := serverclock.MicrosNanos(l.b.clk)
	argv := make([]any, 0, 5+len(l.args))
	argv = append(argv, nowUS, nowNS, max(s.size, n), n, len(l.p))
	for i, iv := range l.iv {
		a := l.args[5*i:]
		argv = append(argv, a[0], iv/1000, iv%1000, a[3], a[4])
	}
	var (
		d    ratelimit.Decision
		m    int64
		tats []int64
	)
	err := l.b.run(ctx, func(ctx context.Context) error {
		l.trips.Add(1)
		s.leases.Add(1)
		vals, err := gcraLeaseScript.Run(ctx, l.b.client, []string{l.b.key(key, l.suffix)}, argv...).Slice()
		if err != nil {
			return err
		}
		if len(vals) != 1+2*len(l.p) {
			return fmt.Errorf("ratelimitredis: lease script reply has %d elements, want %d", len(vals), 1+2*len(l.p))
		}
		if m, err = asInt64(vals, 0); err != nil {
			return err
		}
		tats = make([]int64, len(l.p))
		for i := range l.p {
			us, err := asInt64(vals, 1+2*i)
			if err != nil {
				return err
			}
			ns, err := asInt64(vals, 2+2*i)
			if err != nil {
				return err
			}
			tats[i] = us*1000 + ns
		}
		d = ratelimit.Decide(0, l.p, tats, n)
		if d.Allowed != (m > 0) {
			return fmt.Errorf("ratelimitredis: lease script took %d, Decide says %v: the script and this package differ", m, d.Allowed)
		}
		return nil
	})
	if err == nil && m > 0 {
		s.leased.Add(uint64(m))
		s.spent.Add(uint64(n))
	}
	return d, int(m), tats, err
}
