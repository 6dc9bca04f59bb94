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
	var (
		allowed          = true
		worstRetry int64 = -1
		deny, best Decision
		bestLeft   = -1
	)
	for i := range p {
		t := iv[i]
		tau := t * int64(p[i].Burst)
		tat := max(tats[i], now)
		newTAT := tat + int64(n)*t
		allowAt := newTAT - tau
		if now < allowAt {
			allowed = false
			if retry := allowAt - now; retry > worstRetry {
				worstRetry = retry
				deny = Decision{
					Limit:      p[i],
					Remaining:  int(max(0, (now+tau-tat)/t)),
					ResetAfter: time.Duration(tat - now),
					RetryAfter: time.Duration(retry),
				}
			}
			continue
		}
		left := int((now + tau - newTAT) / t)
		if bestLeft < 0 || left < bestLeft {
			bestLeft = left
			best = Decision{Allowed: true, Limit: p[i], Remaining: left, ResetAfter: time.Duration(newTAT - now)}
		}
	}
	if !allowed {
		return deny
	}
	for i := range p {
		tats[i] = max(tats[i], now) + int64(n)*iv[i]
	}
	return best
}
