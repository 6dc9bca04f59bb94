package ratelimit

import "time"

// maxTolerance caps a limit's tolerance Burst*Interval at 100 years of
// 365.25 days, as Limit.Burst documents and the error says. Any cap under
// 2^62ns (about 146 years) keeps a timestamp plus the tolerance inside an
// int64 of Unix nanoseconds; 100 years is the round number below it, and
// it also keeps ratelimitredis's arithmetic exact in Lua doubles (see its
// gcraScript).
const maxTolerance = int64(36525 * 24 * time.Hour) // 36525 days: 100 years

// Decide is GCRA (the generic cell rate algorithm) over a policy: the pure
// decision for n events at now (Unix nanoseconds) given each limit's
// theoretical arrival time tats[i] (0 for a key never seen). When the
// events are admitted it stores the new arrival times in tats; when denied
// it leaves tats untouched, so a denial consumes nothing from any limit.
//
// For a limit with interval T = Period/Rate and tolerance τ = Burst*T, the
// events are admitted when now >= max(tat, now) + n*T - τ. Every Limiter of
// this module decides with this math; ratelimitredis runs the same in Lua.
// p must come from Policy.Normalize and len(tats) == len(p).
func Decide(now int64, p Policy, tats []int64, n int) Decision {
	var buf [8]int64
	iv := buf[:0]
	for _, l := range p {
		iv = append(iv, int64(l.Interval()))
	}
	return decide(now, p, iv, tats, n)
}

// decide is Decide with each limit's interval precomputed in iv.
func decide(now int64, p Policy, iv, tats []int64, n int) Decision {
	var d Decision
	decision(&d, now, p, iv, tats, n)
	if d.Allowed {
		advance(now, iv, tats, n)
	}
	return d
}

// admits reports whether n events at now fit every limit, tau[i] being
// limit i's tolerance iv[i]*Burst: the test decision makes, without
// building the Decision. Local runs it, and advance, under a shard lock,
// and decision after unlocking, on a copy of the arrival times it read.
func admits(now int64, iv, tau, tats []int64, n int) bool {
	for i, t := range iv {
		if now < max(tats[i], now)+int64(n)*t-tau[i] {
			return false
		}
	}
	return true
}

// advance stores the arrival times of n admitted events at now in tats.
func advance(now int64, iv, tats []int64, n int) {
	for i, t := range iv {
		tats[i] = max(tats[i], now) + int64(n)*t
	}
}

// decision writes to d the Decision for n events at now given the arrival
// times tats, which it leaves untouched. Denied, the binding limit is the
// one whose retry is longest; allowed, the one with the fewest events
// left (the first of equals, either way).
func decision(d *Decision, now int64, p Policy, iv, tats []int64, n int) {
	var (
		worst, best          = -1, -1
		worstRetry, bestLeft int64
	)
	for i := range p {
		t := iv[i]
		tau := t * int64(p[i].Burst)
		newTAT := max(tats[i], now) + int64(n)*t
		if allowAt := newTAT - tau; now < allowAt {
			if retry := allowAt - now; worst < 0 || retry > worstRetry {
				worst, worstRetry = i, retry
			}
			continue
		}
		if worst >= 0 {
			continue // denied: no allowed Decision to build
		}
		if left := (now + tau - newTAT) / t; best < 0 || left < bestLeft {
			best, bestLeft = i, left
		}
	}
	// Field by field, not *d = Decision{...}: a literal is built on the
	// stack in 8-byte stores and then copied in 16-byte loads, which wait
	// for the stores to retire (a store-forwarding stall, about 8% of a
	// decision's time in BenchmarkLocalKeys).
	if worst >= 0 {
		t := iv[worst]
		tat := max(tats[worst], now)
		d.Allowed = false
		d.Limit = p[worst]
		d.Remaining = int(max(0, (now+t*int64(p[worst].Burst)-tat)/t))
		d.ResetAfter = time.Duration(tat - now)
		d.RetryAfter = time.Duration(worstRetry)
		return
	}
	d.Allowed = true
	d.Limit = p[best]
	d.Remaining = int(bestLeft)
	d.ResetAfter = time.Duration(max(tats[best], now) + int64(n)*iv[best] - now)
	d.RetryAfter = 0
}
