package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
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
	mu        sync.Mutex
	idx       map[string]int32 // key -> slot
	tats      []int64          // slot i holds tats[i*nl : (i+1)*nl]
	free      []int32
	lastSweep int64
	lastNow   int64 // the latest time a decision in this shard used
	// Counted under mu: no shared atomic on the hot path.
	allowed, denied uint64
	scanned         uint64   // keys looked at by sweeps and makeRoom (tests)
	_               [64]byte // keep shards' locks on separate cache lines
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
	for i := range l.shards {
		l.shards[i].idx = make(map[string]int32)
	}
	for _, lim := range p {
		l.iv = append(l.iv, int64(lim.Interval()))
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
func (l *Local) AllowN(_ context.Context, key string, n int) (Decision, error) {
	if key == "" || n < 1 || n > l.maxBurst {
		return Decision{}, ratelimitx.CheckArgs(ErrInvalid, l.maxBurst, key, n)
	}
	now := l.nowNS()
	s := &l.shards[maphash.String(l.seed, key)&l.mask]
	s.mu.Lock()
	// A time read before the lock is stale by however long this goroutine
	// waited for it; deciding with it would deny wrongly, or admit against
	// an old arrival time. Never decide with a time older than one this
	// shard has already used.
	now = max(now, s.lastNow)
	s.lastNow = now
	var d Decision
	if i, ok := s.idx[key]; ok {
		d = decide(now, l.p, l.iv, s.tats[int(i)*l.nl:(int(i)+1)*l.nl], n)
	} else {
		var buf [4]int64
		var tats []int64
		if l.nl <= len(buf) {
			tats = buf[:l.nl]
		} else {
			tats = make([]int64, l.nl)
		}
		if d = decide(now, l.p, l.iv, tats, n); d.Allowed {
			copy(l.insert(s, key, now), tats)
		}
	}
	if d.Allowed {
		s.allowed++
	} else {
		s.denied++
	}
	s.mu.Unlock()
	return d, nil
}

// Wait blocks until an event for key is admitted, failing fast with a
// *LimitedError when that would be after ctx's deadline (see Wait).
func (l *Local) Wait(ctx context.Context, key string) (Decision, error) {
	return Wait(ctx, l, key, 1)
}

// insert adds key to s (locked) and returns its zeroed slot.
func (l *Local) insert(s *localShard, key string, now int64) []int64 {
	if now-s.lastSweep >= l.sweepNS {
		l.sweep(s, now)
	}
	if l.keys.Load() >= l.maxKeys {
		l.makeRoom(s, now)
	}
	l.keys.Add(1)
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		i = int32(len(s.tats) / l.nl)
		s.tats = append(s.tats, make([]int64, l.nl)...)
	}
	// Clone: the caller's key may share memory with something large.
	s.idx[strings.Clone(key)] = i
	slot := s.tats[int(i)*l.nl : (int(i)+1)*l.nl]
	clear(slot)
	return slot
}

// sweep drops the keys of s (locked) whose every arrival time has passed:
// their buckets are full, so forgetting them changes no decision.
func (l *Local) sweep(s *localShard, now int64) {
	s.lastSweep = now
	for k, i := range s.idx {
		s.scanned++
		if l.latest(s, i) <= now {
			l.drop(s, k, i, &l.swept)
		}
	}
}

// fullSample is how many held keys of its shard a new key looks at when
// the limiter is full (makeRoom): a bounded cost per new key, where a
// sweep of the shard would cost O(MaxKeys/Shards) and, under a flood of
// new keys, hold the shard's lock for that long on every one.
const fullSample = 16

// makeRoom, the limiter being full, looks at up to fullSample keys of s
// (locked), from a random place in its map: it drops those whose buckets
// are full (lossless, counted in Swept) and, when none of them is,
// evicts the one whose bucket is nearest to full (counted in Evicted: it
// may burst again, by the least of the keys seen). With no key in s it
// evicts nothing: the limiter goes over MaxKeys by this key until another
// shard's insert or sweep makes room.
func (l *Local) makeRoom(s *localShard, now int64) {
	var (
		victim    string
		victimIdx int32
		victimTAT int64
		seen      int
		dropped   bool
	)
	for k, i := range s.idx {
		s.scanned++
		if t := l.latest(s, i); t <= now {
			l.drop(s, k, i, &l.swept)
			dropped = true
		} else if victim == "" || t < victimTAT {
			victim, victimIdx, victimTAT = k, i, t
		}
		if seen++; seen == fullSample {
			break
		}
	}
	if !dropped && victim != "" {
		l.drop(s, victim, victimIdx, &l.evicted)
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

// drop removes key k (slot i) from s (locked), counted in c.
func (l *Local) drop(s *localShard, k string, i int32, c *atomic.Uint64) {
	delete(s.idx, k)
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
		st.Keys += len(s.idx)
		st.Allowed += s.allowed
		st.Denied += s.denied
		s.mu.Unlock()
	}
	return st
}
