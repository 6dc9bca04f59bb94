package console

import (
	"fmt"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// limStats is what the limiters page shows of any limiter: its allowed
// and denied decisions, a circuit around a server if it has one, and the
// numbers of its kind.
type limStats struct {
	what            string // the kind of limiter
	allowed, denied uint64
	circuit         breaker.State
	remote          bool
	facts           []fact
}

// limiterReader returns how to read l's Stats, or false if l has none of
// the Stats methods AddLimiter accepts.
func limiterReader(l any) (func() limStats, bool) {
	switch l := l.(type) {
	case interface{ Stats() ratelimit.LocalStats }:
		return func() limStats {
			st := l.Stats()
			return limStats{what: "in-process limiter", allowed: st.Allowed, denied: st.Denied, facts: []fact{
				{Label: "keys", Value: fmt.Sprint(st.Keys)}, {Label: "keys evicted", Value: fmt.Sprint(st.Evicted)}}}
		}, true
	case interface{ Stats() ratelimit.HTTPStats }:
		return func() limStats {
			st := l.Stats()
			return limStats{what: "rate limit middleware", allowed: st.Allowed, denied: st.Denied, facts: []fact{
				{Label: "bad keys (400)", Value: fmt.Sprint(st.BadKey)}, {Label: "limiter errors", Value: fmt.Sprint(st.Errors)}}}
		}, true
	case interface{ Stats() ratelimit.RemoteStats }:
		return func() limStats {
			st := l.Stats()
			return limStats{what: "Redis limiter", allowed: st.Allowed, denied: st.Denied, circuit: st.Circuit, remote: true, facts: []fact{
				{Label: "without Redis", Value: fmt.Sprintf("%d fail-open, %d fail-closed, %d fallback", st.FailOpen, st.FailClosed, st.Fallbacks)},
				{Label: "errors", Value: fmt.Sprint(st.Errors)}, {Label: "round trips", Value: fmt.Sprint(st.RoundTrips)}}}
		}, true
	case interface {
		Stats() ratelimit.AdaptiveStats
	}:
		return func() limStats {
			st := l.Stats()
			return limStats{what: "adaptive limiter", allowed: st.Admitted, denied: st.Shed, facts: []fact{
				{Label: "limit", Value: fmt.Sprintf("%d in flight", st.Limit)}, {Label: "in flight", Value: fmt.Sprint(st.InFlight)},
				{Label: "cuts", Value: fmt.Sprint(st.Cuts)}}}
		}, true
	case interface {
		Stats() ratelimit.ConcurrencyStats
	}:
		return func() limStats {
			st := l.Stats()
			return limStats{what: "concurrency limiter", allowed: st.Acquired, denied: st.Rejected}
		}, true
	case interface {
		Stats() ratelimit.RemoteConcurrencyStats
	}:
		return func() limStats {
			st := l.Stats()
			return limStats{what: "Redis concurrency limiter", allowed: st.Acquired, denied: st.Rejected, circuit: st.Circuit, remote: true, facts: []fact{
				{Label: "leases held", Value: fmt.Sprint(st.Held)}, {Label: "leases lost", Value: fmt.Sprint(st.Lost)},
				{Label: "errors", Value: fmt.Sprint(st.Errors)}}}
		}, true
	}
	return nil, false
}

// AddLimiter shows, under name, a limiter's decisions and denials (totals,
// and per second on the limiters page once Start samples them). l is any
// limiter whose Stats the metrics package reads: a *ratelimit.Local, the
// middleware from ratelimit.NewHTTP, a *ratelimitredis.Limiter
// (ratelimit.RemoteStats), a *ratelimit.Adaptive (admitted and shed), a
// *ratelimit.Concurrency or a *ratelimitredis.Concurrency. It shows red
// while the circuit around a Redis limiter is open (decisions made
// without Redis), amber while half-open or while it denied calls in the
// last sampled interval.
func (c *Console) AddLimiter(name string, l any) error {
	if added.IsNil(l) {
		return nilArg("AddLimiter", "the limiter")
	}
	read, ok := limiterReader(l)
	if !ok {
		return fmt.Errorf("%w: AddLimiter: %T has no Stats method returning ratelimit.LocalStats, HTTPStats, RemoteStats, AdaptiveStats, ConcurrencyStats or RemoteConcurrencyStats", ErrInvalid, l)
	}
	return c.add("AddLimiter", named{"limiter", name}, source{kind: "limiter", read: func(v *view) []item {
		return []item{v.limiterItem(name, read())}
	}, sample: func() []metric {
		st := read()
		return []metric{{skey("limiter", name, "allowed"), float64(st.allowed)}, {skey("limiter", name, "denied"), float64(st.denied)}}
	}})
}

func (v *view) limiterItem(name string, st limStats) item {
	it := item{Kind: "limiter", Name: name, Page: "limiters", Reason: st.what + ": not denying"}
	denyRate, rated := v.h.lastRate(skey("limiter", name, "denied"))
	allowRate, _ := v.h.lastRate(skey("limiter", name, "allowed"))
	switch {
	case st.remote && (st.circuit == breaker.Open || st.circuit == breaker.ForcedOpen):
		it.Level, it.Reason = red, st.what+": Redis circuit "+st.circuit.String()+": decisions made without Redis"
	case st.remote && st.circuit == breaker.HalfOpen:
		it.Level, it.Reason = amber, st.what+": Redis circuit half-open: probing"
	case rated && denyRate > 0:
		it.Level, it.Reason = amber, fmt.Sprintf("%s: denying %s", st.what, perSecond(denyRate))
	case !rated:
		it.Reason = fmt.Sprintf("%s: %d denied since start", st.what, st.denied)
	}
	it.Facts = []fact{{Label: "decisions", Value: fmt.Sprintf("%d allowed, %d denied", st.allowed, st.denied)}}
	if n := st.allowed + st.denied; n > 0 {
		it.Facts = append(it.Facts, fact{Label: "denied", Value: percent(float64(st.denied) / float64(n))})
	}
	if rated {
		it.Facts = append(it.Facts, fact{Label: "now", Value: perSecond(allowRate) + " allowed, " + perSecond(denyRate) + " denied"})
	}
	it.Facts = append(it.Facts, st.facts...)
	it.charts = func() []chart {
		return []chart{v.newChart("decisions per second", "per second", perSecond, []series{
			{"allowed/s", rate(v.series("limiter", name, "allowed"))}, {"denied/s", rate(v.series("limiter", name, "denied"))},
		}, nil, 0)}
	}
	return it
}
