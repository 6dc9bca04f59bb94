package console

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/slo"
)

// level is a primitive's state on the overview.
type level int

const (
	green level = iota
	amber
	red
)

func (l level) String() string {
	switch l {
	case amber:
		return "amber"
	case red:
		return "red"
	}
	return "green"
}

// item is one row of the overview: a primitive, its state and why.
type item struct {
	Kind, Name string
	Level      level
	Reason     string
	Facts      []fact
	// Page is the detail page (relative link), "" when there is none.
	Page string
	// Forceable: a breaker added by AddBreaker (actions allowed).
	Forceable bool
	State     string // the breaker's state, for the actions shown
	// Transitions are a breaker's last state changes, newest first.
	Transitions []transition
	// charts draws the item's history (detail pages only); nil for none.
	charts func() []chart
	// Charts are what charts drew, on the detail pages.
	Charts []chart
}

// transition is one state change of a breaker.
type transition struct {
	From, To string
	When     fact
}

// fact is one number with its unit, or a time (At, shown relative).
type fact struct {
	Label, Value string
	At           time.Time
	Rel          string // At from the render's now: "3 s ago"
}

func (v *view) at(label string, t time.Time) fact {
	return fact{Label: label, At: t, Rel: relative(v.now, t)}
}

// view holds what one render needs to format items.
type view struct {
	now      time.Time
	lagAmber int64
	// h is the history, span its length; span is 0 when not started.
	h    *history
	span time.Duration
}

// series returns the sampled points of a primitive's metric.
func (v *view) series(kind, name, metric string) []point {
	return v.h.get(skey(kind, name, metric))
}

func (v *view) breakerItem(st breaker.Stats, forceable bool) item {
	it := item{Kind: "breaker", Name: st.Name, Page: "breakers", Forceable: forceable, State: st.State.String()}
	switch st.State {
	case breaker.Closed:
		it.Reason = "closed"
	case breaker.HalfOpen:
		it.Level, it.Reason = amber, "half-open: probing"
	case breaker.Open:
		it.Level, it.Reason = red, "open: calls rejected"
	case breaker.ForcedOpen:
		it.Level, it.Reason = red, "forced open by hand: every call rejected"
	case breaker.ForcedClosed:
		it.Level, it.Reason = amber, "forced closed by hand: no rule applies"
	case breaker.MetricsOnly:
		it.Level, it.Reason = amber, fmt.Sprintf("metrics-only: %d trips reported, none made", st.WouldTrips)
	default:
		it.Level, it.Reason = amber, st.State.String()
	}
	rate, of := failureRate(st)
	it.Facts = []fact{
		{Label: "failure rate", Value: rate + " " + of},
		{Label: "calls", Value: fmt.Sprintf("%d ok, %d failed, %d rejected", st.Successes, st.Failures, st.Rejected)},
		{Label: "transitions", Value: fmt.Sprint(st.Transitions)},
	}
	if st.ConsecutiveFailures > 0 {
		it.Facts = append(it.Facts, fact{Label: "consecutive failures", Value: fmt.Sprint(st.ConsecutiveFailures)})
	}
	if !st.OpenUntil.IsZero() {
		it.Facts = append(it.Facts, v.at("probes from", st.OpenUntil))
	}
	return it
}

// failureRate is the window's failure rate when the breaker has a rate
// rule, else the rate since start.
func failureRate(st breaker.Stats) (rate, of string) {
	if st.WindowCalls > 0 {
		return percent(float64(st.WindowFailures) / float64(st.WindowCalls)), fmt.Sprintf("(of %d calls in the window)", st.WindowCalls)
	}
	n := st.Successes + st.Failures
	if n == 0 {
		return "0 %", "(no calls yet)"
	}
	return percent(float64(st.Failures) / float64(n)), fmt.Sprintf("(of %d calls since start)", n)
}

func (v *view) cacheItem(name string, st cache.Stats) item {
	it := item{Kind: "cache", Name: name, Reason: "store reachable", Page: "caches"}
	switch {
	case st.Circuit == breaker.Open || st.Circuit == breaker.ForcedOpen:
		it.Level, it.Reason = red, "store circuit "+st.Circuit.String()+": L1 only"
	case st.Circuit == breaker.HalfOpen:
		it.Level, it.Reason = amber, "store circuit half-open: probing"
	case st.PendingInvalidations > 0:
		it.Level, it.Reason = amber, fmt.Sprintf("%d invalidations waiting for the store", st.PendingInvalidations)
	}
	hits := st.Hits + st.NegativeHits
	ratio := "n/a (no reads yet)"
	if hits+st.Misses > 0 {
		ratio = percent(float64(hits) / float64(hits+st.Misses))
	}
	it.Facts = []fact{
		{Label: "hit ratio", Value: ratio},
		{Label: "entries", Value: fmt.Sprint(st.Entries)},
		{Label: "loads", Value: fmt.Sprintf("%d (%d failed)", st.Loads, st.LoadErrors)},
		{Label: "stale served", Value: fmt.Sprint(st.StaleServed)},
		{Label: "lease waits", Value: fmt.Sprint(st.LeaseWaits)},
	}
	if l2 := st.L2Hits + st.L2Misses; l2 > 0 {
		it.Facts = slices.Insert(it.Facts, 1, fact{Label: "L2 hit ratio", Value: percent(float64(st.L2Hits) / float64(l2))})
	}
	it.charts = func() []chart { return v.cacheCharts(name) }
	return it
}

func (v *view) queueItem(client string, n added.QueueCount) item {
	it := item{Kind: "queue", Name: client + " / " + n.Queue, Reason: "no dead jobs", Page: "queues#" + queueAnchor(client, n.Queue)}
	it.charts = func() []chart { return v.queueCharts(client, n.Queue) }
	if n.Err != nil {
		it.Level, it.Reason = red, "counting failed: "+redact(n.Err.Error())
		return it
	}
	if n.Dead > 0 {
		it.Level, it.Reason = amber, fmt.Sprintf("%d dead jobs", n.Dead)
	}
	it.Facts = []fact{
		{Label: "pending", Value: fmt.Sprint(n.Pending)},
		{Label: "active", Value: fmt.Sprint(n.Active)},
		{Label: "scheduled", Value: fmt.Sprint(n.Scheduled)},
		{Label: "retry", Value: fmt.Sprint(n.Retry)},
		{Label: "dead", Value: fmt.Sprint(n.Dead)},
		{Label: "oldest pending", Value: duration(n.OldestPending)},
	}
	if r, ok := v.h.lastRate(skey("queue", client+"\x00"+n.Queue, "done")); ok {
		it.Facts = append(it.Facts, fact{Label: "completed", Value: perSecond(r)})
	}
	return it
}

func (v *view) routerItem(name string, st routerstats.Stats) item {
	it := item{Kind: "dbrouter", Name: name, Reason: "primary up, every replica healthy", Page: "dbrouters"}
	var ejected, lagging []string
	for _, r := range st.Replicas {
		switch {
		case !r.Healthy:
			why := r.Reason
			if why == "" {
				why = r.LastError
			}
			ejected = append(ejected, r.Name+" ("+redact(why)+")")
		case r.LagKnown && r.LagBytes >= v.lagAmber:
			lagging = append(lagging, r.Name+" ("+byteSize(r.LagBytes)+" behind)")
		}
	}
	switch {
	case !st.Primary.Up:
		it.Level, it.Reason = red, "primary down: "+redact(st.Primary.LastError)
	case len(st.Replicas) > 0 && len(ejected) == len(st.Replicas):
		it.Level, it.Reason = red, "every replica ejected, reads on the primary: "+strings.Join(ejected, "; ")
	case len(ejected) > 0:
		it.Level, it.Reason = amber, "ejected: "+strings.Join(ejected, "; ")
	case len(lagging) > 0:
		it.Level, it.Reason = amber, "lagging: "+strings.Join(lagging, "; ")
	}
	it.Facts = []fact{{Label: "replicas", Value: fmt.Sprintf("%d of %d healthy", len(st.Replicas)-len(ejected), len(st.Replicas))}}
	for _, r := range st.Replicas {
		lag := "unknown"
		if r.LagKnown {
			lag = byteSize(r.LagBytes)
		}
		it.Facts = append(it.Facts, fact{Label: r.Name + " lag", Value: lag})
	}
	it.Facts = append(it.Facts, fact{Label: "fallbacks to primary", Value: fmt.Sprint(st.Fallbacks)})
	var ejections uint64
	for _, r := range st.Replicas {
		ejections += r.Ejections
	}
	it.Facts = append(it.Facts, fact{Label: "ejections", Value: fmt.Sprint(ejections)})
	if !st.Primary.LastCheck.IsZero() {
		it.Facts = append(it.Facts, v.at("primary checked", st.Primary.LastCheck))
	}
	replicas := make([]string, len(st.Replicas))
	for i, r := range st.Replicas {
		replicas[i] = r.Name
	}
	it.charts = func() []chart { return v.routerCharts(name, replicas) }
	return it
}

func (v *view) sloItem(st slo.Stats) item {
	it := item{Kind: "SLO", Name: st.Name, Reason: "no alert firing", Page: "slos"}
	var page, ticket []string
	for _, a := range st.Alerts {
		if !a.Firing {
			continue
		}
		s := fmt.Sprintf("%s (burn %s over %s)", a.Rule.Name, burn(a.LongBurn), duration(a.Rule.LongWindow))
		if a.Rule.Severity == slo.Page {
			page = append(page, s)
		} else {
			ticket = append(ticket, s)
		}
	}
	switch {
	case len(page) > 0:
		it.Level, it.Reason = red, "burning fast: "+strings.Join(page, "; ")
	case st.Budget.Total > 0 && st.Budget.RemainingFraction < 0:
		it.Level, it.Reason = red, "error budget blown"
	case len(ticket) > 0:
		it.Level, it.Reason = amber, "burning: "+strings.Join(ticket, "; ")
	}
	it.Facts = []fact{
		{Label: "target", Value: percent(st.Target)},
		{Label: "budget left", Value: budgetLeft(st.Budget.RemainingFraction)},
		{Label: "events", Value: fmt.Sprintf("%d (%d bad) over %s", st.Budget.Total, st.Budget.Consumed, duration(st.Window))},
	}
	ws := make([]time.Duration, 0, len(st.BurnRates))
	for w := range st.BurnRates {
		ws = append(ws, w)
	}
	slices.Sort(ws)
	for _, w := range ws {
		it.Facts = append(it.Facts, fact{Label: "burn over " + duration(w), Value: burn(st.BurnRates[w])})
	}
	it.charts = func() []chart { return v.sloCharts(st.Name, ws) }
	return it
}

func (v *view) healthItem(name string, k health.Kind, rep health.Report, st health.Stats) item {
	it := item{Kind: "health", Name: name + " / " + k.String(), Reason: "every check passes"}
	var failing []string
	for _, r := range rep.Results {
		if r.Status == health.Pass {
			continue
		}
		why := string(r.Status)
		if r.Err != nil {
			why = redact(r.Err.Error())
		}
		failing = append(failing, r.Name+" ("+why+")")
	}
	switch rep.Status {
	case health.Fail:
		it.Level, it.Reason = red, "failing: "+strings.Join(failing, "; ")
	case health.Warn:
		it.Level, it.Reason = amber, "degraded: "+strings.Join(failing, "; ")
	}
	it.Facts = []fact{{Label: "checks", Value: fmt.Sprintf("%d, %d not passing", len(rep.Results), len(failing))}}
	if st.Draining {
		it.Facts = append(it.Facts, fact{Label: "draining", Value: "yes"})
	}
	for _, r := range rep.Results {
		if !r.Time.IsZero() {
			it.Facts = append(it.Facts, fact{Label: r.Name, Value: duration(r.Latency)})
		}
	}
	return it
}

func percent(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.4g %%", f*100)
}

// budgetLeft is an error budget's remaining fraction for reading: a
// percentage, or once blown how many budgets were spent ("none: 1000x
// the budget spent" rather than "-99900 %").
func budgetLeft(f float64) string {
	if f >= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return percent(f)
	}
	return "none: " + burn(1-f) + " the budget spent"
}

func burn(f float64) string {
	if math.Abs(f) >= 100 { // "999x", "1000x": %.3g prints 1e+03x from 999.5 up
		return fmt.Sprintf("%.0fx", f)
	}
	return fmt.Sprintf("%.3gx", f)
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for math.Abs(f) >= unit && i < 5 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTPE"[i])
}

// duration is d rounded for reading: "2.5 s", "3 min", "1.5 h", "14 d".
func duration(d time.Duration) string {
	switch a := d.Abs(); {
	case a == 0:
		return "0 s"
	case a < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case a < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case a < time.Minute:
		return fmt.Sprintf("%.3g s", d.Seconds())
	case a < time.Hour:
		return fmt.Sprintf("%.3g min", d.Minutes())
	case a < 48*time.Hour:
		return fmt.Sprintf("%.3g h", d.Hours())
	}
	return fmt.Sprintf("%.3g d", d.Hours()/24)
}

// relative is t from now: "3 s ago", "in 12 s", "now".
func relative(now, t time.Time) string {
	d := now.Sub(t)
	if d.Abs() < time.Second {
		return "now"
	}
	d = d.Round(time.Second)
	if d > 0 {
		return duration(d) + " ago"
	}
	return "in " + duration(-d)
}

// userinfo matches the password of a URL's user info; keyvalue a
// password-like key=value pair of a DSN.
var (
	userinfo = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
	keyvalue = regexp.MustCompile(`(?i)\b((?:password|passwd|pwd|secret|token)\s*=\s*)(?:'[^']*'|"[^"]*"|\S+)`)
)

// redact masks the passwords in s (driver errors may quote a DSN).
func redact(s string) string {
	s = userinfo.ReplaceAllString(s, "${1}[redacted]@")
	return keyvalue.ReplaceAllString(s, "${1}[redacted]")
}
