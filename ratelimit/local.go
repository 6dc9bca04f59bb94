package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/ratelimitx"
)

// LocalOptions configures NewLocal. Only Limits is required.
type LocalOptions struct {
	// Limits is the policy every key gets; required.
	Limits Policy
	// MaxKeys caps the keys held in memory. When the limiter is full, a
	// new key looks at up to 16 held keys of its shard, from a random
	// place: those whose buckets are full again are dropped, which changes
	// nothing (such a key behaves exactly like a new one); when none of
	// them is, the one nearest to full is evicted early, counted in
	// Stats.Evicted, and may burst again by what it had used. A new key
	// costs that bounded look, never a sweep of its shard, however many
	// new keys arrive. The cap is exact but for a shard with no key to
	// evict, which may go over by one key per insert until another
	// shard's insert or sweep makes room. Default: 1,000,000.
	MaxKeys int
	// Shards is the number of independently locked partitions of the key
	// space, rounded up to a power of two, 1 to 4096. Default: 64.
	Shards int
	// SweepInterval is how often a shard drops its full keys when a new key
	// arrives. Default: 1m.
	SweepInterval time.Duration
	// Clock replaces the system clock (see package clock); nil is the real
	// time, read through the monotonic clock, so wall clock steps change
	// nothing. A clock that goes backwards is clamped: each shard decides
	// with the latest time it has already used whenever Clock reads
	// earlier, so until Clock catches up no tokens are refilled, and none
	// are given back or taken twice. The same clamp covers a goroutine
	// that read the time and then waited for a shard's lock.
	Clock clock.Clock
}

// Local is an in-process Limiter: per-key GCRA state in a sharded map with
// bounded memory. Deciding for a key already held takes one shard lock and
// allocates nothing. Time never runs backwards for a shard: a reading
// older than the latest one the shard used is taken as that latest one
// (see LocalOptions.Clock). It is safe for concurrent use.
type Local struct {
	p        Policy
	iv       []int64 // each limit's interval in ns
	tau      []int64 // each limit's tolerance, iv[i] * Burst
	nl       int
	clk      clock.Clock // nil: base + time.Since(base)
	base     time.Time
	maxBurst int // the smallest Burst: the most one call may ask for
	seed     maphash.Seed
	shards   []localShard
	mask     uint64
	maxKeys  int64
	keys     atomic.Int64 // keys held, across shards (changed on insert/remove only)
	sweepNS  int64

	evicted, swept atomic.Uint64
}

type localShard struct {
	// What a decision for a held key touches, in the shard's first two
	// cache lines (a shard is 192 bytes, TestShardLayout): no line a
	// decision writes is shared with another shard.
	mu      sync.Mutex
	lastNow int64 // the latest time a decision in this shard used
	// Counted under mu: no shared atomic on the hot path.
	allowed, denied uint64
	idx             []localEntry // key hash -> slot, open addressing (see find)
	keys            []string     // slot -> its key, "" for a free slot
	tats            []int64      // slot i holds tats[i*nl : (i+1)*nl]

	free      []int32
	held      int // keys held: entries in idx
	lastSweep int64
	scanned   uint64   // keys looked at by sweeps and makeRoom (tests)
	_         [40]byte // to 192 bytes
}

// localEntry is a held key's entry in its shard's table: the key's hash
// (the one that chose the shard, so a key is hashed once per decision) and
// its slot plus one; slot1 == 0 is an empty entry.
type localEntry struct {
	h     uint64
	slot1 int32
}

// NewLocal returns a Local limiter for opts.Limits, or an error naming the
// option to fix.
func NewLocal(opts LocalOptions) (*Local, error) {
	p, err := opts.Limits.Normalize()
	if err != nil {
		return nil, err
	}
	if opts.MaxKeys == 0 {
		opts.MaxKeys = 1_000_000
	}
	if opts.MaxKeys < 1 {
		return nil, fmt.Errorf("%w: LocalOptions.MaxKeys must be >= 1, got %d", ErrInvalid, opts.MaxKeys)
	}
	if opts.Shards == 0 {
		opts.Shards = 64
	}
	if opts.Shards < 1 || opts.Shards > 4096 {
		return nil, fmt.Errorf("%w: LocalOptions.Shards must be 1..4096, got %d", ErrInvalid, opts.Shards)
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = time.Minute
	}
	if opts.SweepInterval < 0 {
		return nil, fmt.Errorf("%w: LocalOptions.SweepInterval must be > 0, got %v", ErrInvalid, opts.SweepInterval)
	}
	n := 1 << bits.Len(uint(opts.Shards-1))
	n = min(n, opts.MaxKeys) // every shard can hold at least one key
	for n&(n-1) != 0 {
		n &= n - 1
	}
	l := &Local{
		p: p, nl: len(p), clk: opts.Clock, base: time.Now(), maxBurst: p.MaxBurst(), seed: maphash.MakeSeed(),
		shards: make([]localShard, n), mask: uint64(n - 1),
		maxKeys: int64(opts.MaxKeys), sweepNS: int64(opts.SweepInterval),
	}
	for _, lim := range p {
		l.iv = append(l.iv, int64(lim.Interval()))
		l.tau = append(l.tau, int64(lim.Interval())*int64(lim.Burst))
	}
	return l, nil
}

// nowNS is the time in Unix ns. Without an injected clock it reads only the
// monotonic clock (time.Since), cheaper than time.Now and immune to wall
// clock steps.
func (l *Local) nowNS() int64 {
	if l.clk != nil {
		return l.clk.Now().UnixNano()
	}
	return l.base.UnixNano() + int64(time.Since(l.base))
}

// Policy returns the normalized limits the limiter enforces.
func (l *Local) Policy() Policy { return l.p }

// Allow is AllowN(ctx, key, 1).
func (l *Local) Allow(ctx context.Context, key string) (Decision, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN reports whether n events for key may happen now and counts them if
// so. It never blocks and never fails except on bad arguments.
func (l *Local) AllowN(_ context.Context, key string, n int) (d Decision, err error) {
	if key == "" || n < 1 || n > l.maxBurst {
		return Decision{}, ratelimitx.CheckArgs(ErrInvalid, l.maxBurst, key, n)
	}
	if l.nl > maxInlineLimits {
		return l.allowLocked(key, n), nil
	}
	now := l.nowNS()
	h := maphash.String(l.seed, key)
	s := &l.shards[h&l.mask]
	// The shard lock covers only the admission test and the arrival times'
	// update; the Decision is built after unlocking, from the times read
	// (prev) and the time used, so it is the one decide returns under the
	// lock.
	var buf [maxInlineLimits]int64
	prev := buf[:l.nl]
	s.mu.Lock()
	// A time read before the lock is stale by however long this goroutine
	// waited for it; deciding with it would deny wrongly, or admit against
	// an old arrival time. Never decide with a time older than one this
	// shard has already used.
	now = max(now, s.lastNow)
	s.lastNow = now
	var ok bool
	if i, found := s.find(h, key); found {
		slot := s.tats[int(i)*l.nl : (int(i)+1)*l.nl]
		copy(prev, slot)
		if ok = admits(now, l.iv, l.tau, slot, n); ok {
			advance(now, l.iv, slot, n)
		}
	} else if ok = admits(now, l.iv, l.tau, prev, n); ok {
		advance(now, l.iv, l.insert(s, h, key, now), n)
	}
	if ok {
		s.allowed++
	} else {
		s.denied++
	}
	s.mu.Unlock()
	decision(&d, now, l.p, l.iv, prev, n)
	return d, nil
}

// maxInlineLimits is the most limits a policy may have for AllowN to copy
// a key's arrival times to the stack and build its Decision outside the
// shard lock; a longer policy decides under the lock (allowLocked).
const maxInlineLimits = 8

// allowLocked is AllowN (arguments checked) for a policy of more than
// maxInlineLimits limits: the whole decision under the shard lock.
func (l *Local) allowLocked(key string, n int) Decision {
	now := l.nowNS()
	h := maphash.String(l.seed, key)
	s := &l.shards[h&l.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	now = max(now, s.lastNow) // as in AllowN
	s.lastNow = now
	var d Decision
	if i, ok := s.find(h, key); ok {
		d = decide(now, l.p, l.iv, s.tats[int(i)*l.nl:(int(i)+1)*l.nl], n)
	} else if d = decide(now, l.p, l.iv, make([]int64, l.nl), n); d.Allowed {
		advance(now, l.iv, l.insert(s, h, key, now), n)
	}
	if d.Allowed {
		s.allowed++
	} else {
		s.denied++
	}
	return d
}

// Wait blocks until an event for key is admitted, failing fast with a
// *LimitedError when that would be after ctx's deadline (see Wait).
func (l *Local) Wait(ctx context.Context, key string) (Decision, error) {
	return Wait(ctx, l, key, 1)
}

// insert adds key, of hash h, to s (locked) and returns its zeroed slot.
func (l *Local) insert(s *localShard, h uint64, key string, now int64) []int64 {
	if now-s.lastSweep >= l.sweepNS {
		l.sweep(s, now)
	}
	// Reserve the new key's place under the cap: inserts in other shards
	// race for it, so it is taken with a compare-and-swap, making room in
	// this shard (each makeRoom drops at least one key) until it is there.
	for reserved := false; !reserved; {
		switch k := l.keys.Load(); {
		case k < l.maxKeys:
			reserved = l.keys.CompareAndSwap(k, k+1)
		case s.held == 0: // nothing here to evict: over the cap by one (see MaxKeys)
			l.keys.Add(1)
			reserved = true
		default:
			l.makeRoom(s, now)
		}
	}
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		i = int32(len(s.keys))
		s.tats = append(s.tats, make([]int64, l.nl)...)
		s.keys = append(s.keys, "")
	}
	// Clone: the caller's key may share memory with something large.
	s.keys[i] = strings.Clone(key)
	s.add(h, i)
	slot := s.tats[int(i)*l.nl : (int(i)+1)*l.nl]
	clear(slot)
	return slot
}

// sweep drops the keys of s (locked) whose every arrival time has passed:
// their buckets are full, so forgetting them changes no decision.
func (l *Local) sweep(s *localShard, now int64) {
	s.lastSweep = now
	for i, k := range s.keys {
		if k == "" {
			continue
		}
		s.scanned++
		if l.latest(s, int32(i)) <= now {
			l.drop(s, int32(i), &l.swept)
		}
	}
}

// fullSample is how many held keys of its shard a new key looks at when
// the limiter is full (makeRoom): a bounded cost per new key, where a
// sweep of the shard would cost O(MaxKeys/Shards) and, under a flood of
// new keys, hold the shard's lock for that long on every one.
const fullSample = 16

// makeRoom, the limiter being full, looks at up to fullSample keys of s
// (locked), from a random slot on: it drops those whose buckets
// are full (lossless, counted in Swept) and, when none of them is,
// evicts the one whose bucket is nearest to full (counted in Evicted: it
// may burst again, by the least of the keys seen). With no key in s it
// evicts nothing: the limiter goes over MaxKeys by this key until another
// shard's insert or sweep makes room.
func (l *Local) makeRoom(s *localShard, now int64) {
	var (
		victim    int32 = -1
		victimTAT int64
		seen      int
		dropped   bool
	)
	ns := len(s.keys)
	if s.held == 0 {
		return
	}
	start := rand.IntN(ns)
	for j := range ns {
		i := int32((start + j) % ns)
		if s.keys[i] == "" {
			continue
		}
		s.scanned++
		if t := l.latest(s, i); t <= now {
			l.drop(s, i, &l.swept)
			dropped = true
		} else if victim < 0 || t < victimTAT {
			victim, victimTAT = i, t
		}
		if seen++; seen == fullSample {
			break
		}
	}
	if !dropped && victim >= 0 {
		l.drop(s, victim, &l.evicted)
	}
}

// latest is the latest arrival time of slot i's limits: its bucket is
// full from then on.
func (l *Local) latest(s *localShard, i int32) int64 {
	var t int64
	for _, tat := range s.tats[int(i)*l.nl : (int(i)+1)*l.nl] {
		t = max(t, tat)
	}
	return t
}

// drop removes the key of slot i from s (locked), counted in c.
func (l *Local) drop(s *localShard, i int32, c *atomic.Uint64) {
	s.remove(maphash.String(l.seed, s.keys[i]), i)
	s.keys[i] = ""
	s.free = append(s.free, i)
	l.keys.Add(-1)
	c.Add(1)
}

// LocalStats is a snapshot of a Local limiter's counters.
type LocalStats struct {
	// Allowed and Denied count decisions.
	Allowed, Denied uint64
	// Keys is how many keys are held now.
	Keys int
	// Swept counts keys dropped because their buckets were full (lossless).
	Swept uint64
	// Evicted counts active keys dropped because MaxKeys was reached.
	Evicted uint64
}

// Stats returns a snapshot of the counters. It takes each shard's lock
// briefly.
func (l *Local) Stats() LocalStats {
	st := LocalStats{Swept: l.swept.Load(), Evicted: l.evicted.Load()}
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		st.Keys += s.held
		st.Allowed += s.allowed
		st.Denied += s.denied
		s.mu.Unlock()
	}
	return st
}

// find returns the slot of key, of hash h, in s (locked). The table is
// open addressing with linear probing from h's high half (the low bits
// chose the shard), at most 3/4 full, so a probe ends at an empty entry.
func (s *localShard) find(h uint64, key string) (int32, bool) {
	if len(s.idx) == 0 {
		return 0, false
	}
	m := uint64(len(s.idx) - 1)
	for p := h >> 32 & m; ; p = (p + 1) & m {
		e := s.idx[p]
		if e.slot1 == 0 {
			return 0, false
		}
		if e.h == h && s.keys[e.slot1-1] == key {
			return e.slot1 - 1, true
		}
	}
}

// add enters slot i, of a key of hash h not held yet, in s's table
// (locked), doubling the table first if it would be over 3/4 full.
func (s *localShard) add(h uint64, i int32) {
	if (s.held+1)*4 > len(s.idx)*3 {
		old := s.idx
		s.idx = make([]localEntry, max(8, 2*len(old)))
		for _, e := range old {
			if e.slot1 != 0 {
				s.place(e)
			}
		}
	}
	s.place(localEntry{h: h, slot1: i + 1})
	s.held++
}

// place puts e in the first empty entry of its probe sequence.
func (s *localShard) place(e localEntry) {
	m := uint64(len(s.idx) - 1)
	p := e.h >> 32 & m
	for s.idx[p].slot1 != 0 {
		p = (p + 1) & m
	}
	s.idx[p] = e
}

// remove takes slot i, of hash h, out of s's table (locked), moving back
// the entries after it that its entry pushed along (backward shift
// deletion: no tombstones, so probes stay as short as the load allows).
func (s *localShard) remove(h uint64, i int32) {
	m := uint64(len(s.idx) - 1)
	p := h >> 32 & m
	for s.idx[p].slot1 != i+1 {
		p = (p + 1) & m
	}
	for q := (p + 1) & m; s.idx[q].slot1 != 0; q = (q + 1) & m {
		// The entry at q may fill the hole at p unless its home lies
		// cyclically in (p, q].
		if home := s.idx[q].h >> 32 & m; (q-home)&m >= (q-p)&m {
			s.idx[p] = s.idx[q]
			p = q
		}
	}
	s.idx[p] = localEntry{}
	s.held--
}
