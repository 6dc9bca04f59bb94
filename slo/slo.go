package slo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
)

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = errors.New("slo: invalid")

// Severity says what an alert asks for.
type Severity string

// The severities of the SRE Workbook's multi-window multi-burn-rate alerts.
const (
	Page   Severity = "page"
	Ticket Severity = "ticket"
)

// AlertRule fires when the burn rate is at least BurnRate over both
// LongWindow and ShortWindow (the short window makes it resolve quickly once
// the burn stops).
type AlertRule struct {
	Name                    string
	Severity                Severity
	BurnRate                float64
	LongWindow, ShortWindow time.Duration
}

// DefaultAlerts are the SRE Workbook's recommended rules for a 30-day SLO
// (page at 14.4x over 1h and 5m, and at 6x over 6h and 30m; ticket at 1x
// over 3d and 6h), with the windows scaled to window/30d.
func DefaultAlerts(window time.Duration) []AlertRule {
	scale := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * float64(window) / float64(30*24*time.Hour))
	}
	return []AlertRule{
		{Name: "fast-burn", Severity: Page, BurnRate: 14.4, LongWindow: scale(time.Hour), ShortWindow: scale(5 * time.Minute)},
		{Name: "slow-burn", Severity: Page, BurnRate: 6, LongWindow: scale(6 * time.Hour), ShortWindow: scale(30 * time.Minute)},
		{Name: "budget-burn", Severity: Ticket, BurnRate: 1, LongWindow: scale(72 * time.Hour), ShortWindow: scale(6 * time.Hour)},
	}
}

// Options configures New.
type Options struct {
	// Name identifies the objective in logs, JSON and metrics; required.
	Name string
	// Target is the fraction of good events promised, in (0, 1), e.g.
	// 0.999; required.
	Target float64
	// Window is the rolling period of the objective. Default: 30 days.
	Window time.Duration
	// Alerts are the burn-rate alert rules. Default: DefaultAlerts(Window).
	Alerts []AlertRule
	// OnAlert is called (in its own goroutine, so it never blocks
	// recording) when an alert starts or stops firing. Default: none.
	OnAlert func(AlertEvent)
	// Clock replaces the system clock (see package clock); nil is the real
	// time.
	Clock clock.Clock
	// Logger receives alert changes. Default: discard.
	Logger *slog.Logger
}

// AlertEvent is an alert starting (Firing) or stopping.
type AlertEvent struct {
	Objective string
	Rule      AlertRule
	Firing    bool
	// LongBurn and ShortBurn are the burn rates that decided it.
	LongBurn, ShortBurn float64
	Time                time.Time
}

// SLO tracks one objective: events are recorded into two rings of time
// buckets (fine ones for alert windows up to Window/120, coarse ones for
// the whole window), so memory is constant and recording is O(1) with no
// allocation, whatever the traffic. It is safe for concurrent use.
type SLO struct {
	o      Options
	fine   ring
	coarse ring

	amu    sync.Mutex
	firing map[string]bool
}

// ring is a circular array of buckets of width res covering n*res.
type ring struct {
	res     int64 // bucket width, ns
	mu      sync.Mutex
	buckets []bucket
}

type bucket struct {
	idx         int64 // bucket number (time / res) the counts belong to
	good, total uint64
}

// New returns an SLO, or an error naming the bad option.
func New(o Options) (*SLO, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("%w: Options.Name is required", ErrInvalid)
	}
	if !(o.Target > 0 && o.Target < 1) {
		return nil, fmt.Errorf("%w: Options.Target must be in (0, 1), e.g. 0.999, got %v", ErrInvalid, o.Target)
	}
	if o.Window == 0 {
		o.Window = 30 * 24 * time.Hour
	}
	if o.Window < time.Hour {
		return nil, fmt.Errorf("%w: Options.Window must be >= 1h, got %v", ErrInvalid, o.Window)
	}
	if o.Alerts == nil {
		o.Alerts = DefaultAlerts(o.Window)
	}
	for i, a := range o.Alerts {
		if a.BurnRate <= 0 || a.ShortWindow <= 0 || a.LongWindow < a.ShortWindow || a.LongWindow > o.Window {
			return nil, fmt.Errorf("%w: Options.Alerts[%d] needs BurnRate > 0 and 0 < ShortWindow <= LongWindow <= Window, got %+v", ErrInvalid, i, a)
		}
		if a.Name == "" {
			o.Alerts[i].Name = fmt.Sprintf("burn-%gx-%v", a.BurnRate, a.LongWindow)
		}
	}
	o.Logger = logx.Or(o.Logger)
	o.Alerts = append([]AlertRule(nil), o.Alerts...)
	fineRes := o.Window / 43200 // 1m for 30d
	coarseRes := o.Window / 720 // 1h for 30d
	s := &SLO{o: o, firing: map[string]bool{}}
	s.fine = newRing(fineRes, o.Window/120+fineRes) // 6h (+1 bucket) for 30d
	s.coarse = newRing(coarseRes, o.Window+o.Window/10)
	return s, nil
}

func newRing(res, span time.Duration) ring {
	n := int(span/res) + 1
	return ring{res: int64(res), buckets: make([]bucket, n)}
}

func (r *ring) add(now int64, good bool) {
	i := now / r.res
	b := &r.buckets[i%int64(len(r.buckets))]
	r.mu.Lock()
	if b.idx != i {
		if b.idx > i { // older than the ring holds: drop
			r.mu.Unlock()
			return
		}
		b.idx, b.good, b.total = i, 0, 0
	}
	b.total++
	if good {
		b.good++
	}
	r.mu.Unlock()
}

// sum counts the events of the buckets in the last d (the current bucket,
// partly elapsed, included). It reports false when d is longer than the
// ring holds.
func (r *ring) sum(now int64, d time.Duration) (good, total uint64, ok bool) {
	nb := int64(d) / r.res
	if nb < 1 {
		nb = 1
	}
	if nb > int64(len(r.buckets)) {
		return 0, 0, false
	}
	cur := now / r.res
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := cur - nb + 1; i <= cur; i++ {
		if i < 0 {
			continue
		}
		b := &r.buckets[i%int64(len(r.buckets))]
		if b.idx == i {
			good += b.good
			total += b.total
		}
	}
	return good, total, true
}

// Record counts one event, good or bad, at the current time.
func (s *SLO) Record(good bool) { s.RecordAt(clock.Now(s.o.Clock), good) }

// RecordAt counts one event at t. Events older than the window are
// dropped.
func (s *SLO) RecordAt(t time.Time, good bool) {
	now := t.UnixNano()
	s.fine.add(now, good)
	s.coarse.add(now, good)
}

// Counts returns the good and total events over the last d (at most
// Window; beyond the fine ring's span the count has the coarse ring's
// bucket granularity, Window/720).
func (s *SLO) Counts(d time.Duration) (good, total uint64) {
	now := clock.Now(s.o.Clock).UnixNano()
	if g, t, ok := s.fine.sum(now, d); ok {
		return g, t
	}
	g, t, _ := s.coarse.sum(now, min(d, s.o.Window))
	return g, t
}

// BurnRate is how fast the error budget burns over the last d: the error
// rate divided by the rate the objective allows (1 - Target). 1 spends the
// budget exactly over the window; 0 with no events.
func (s *SLO) BurnRate(d time.Duration) float64 {
	good, total := s.Counts(d)
	return burnRate(good, total, s.o.Target)
}

func burnRate(good, total uint64, target float64) float64 {
	if total == 0 {
		return 0
	}
	return (float64(total-good) / float64(total)) / (1 - target)
}

// Budget is the error budget over the window, in events.
type Budget struct {
	// Good and Total are the events in the window.
	Good, Total uint64
	// Allowed is how many bad events the objective allows for Total
	// events: (1 - Target) * Total.
	Allowed float64
	// Consumed is the bad events so far.
	Consumed uint64
	// Remaining is Allowed - Consumed (negative when blown).
	Remaining float64
	// RemainingFraction is Remaining / Allowed: 1 untouched, 0 spent,
	// negative blown; 1 with no events.
	RemainingFraction float64
}

// Budget returns the error budget over the window.
func (s *SLO) Budget() Budget {
	good, total := s.Counts(s.o.Window)
	b := Budget{Good: good, Total: total, Consumed: total - good, Allowed: (1 - s.o.Target) * float64(total)}
	b.Remaining = b.Allowed - float64(b.Consumed)
	b.RemainingFraction = 1
	if b.Allowed > 0 {
		b.RemainingFraction = b.Remaining / b.Allowed
	}
	return b
}

// AlertState is one rule's current evaluation.
type AlertState struct {
	Rule                AlertRule
	Firing              bool
	LongBurn, ShortBurn float64
}

// Evaluate computes every alert rule now, reports changes to OnAlert and the
// logger, and returns the states.
func (s *SLO) Evaluate() []AlertState {
	now := clock.Now(s.o.Clock)
	out := make([]AlertState, len(s.o.Alerts))
	for i, a := range s.o.Alerts {
		lb, sb := s.BurnRate(a.LongWindow), s.BurnRate(a.ShortWindow)
		out[i] = AlertState{Rule: a, Firing: lb >= a.BurnRate && sb >= a.BurnRate, LongBurn: lb, ShortBurn: sb}
	}
	s.amu.Lock()
	var changed []AlertEvent
	for _, st := range out {
		if s.firing[st.Rule.Name] != st.Firing {
			s.firing[st.Rule.Name] = st.Firing
			changed = append(changed, AlertEvent{Objective: s.o.Name, Rule: st.Rule, Firing: st.Firing, LongBurn: st.LongBurn, ShortBurn: st.ShortBurn, Time: now})
		}
	}
	s.amu.Unlock()
	for _, ev := range changed {
		lvl := slog.LevelInfo
		if ev.Firing {
			lvl = slog.LevelWarn
		}
		s.o.Logger.Log(context.Background(), lvl, "slo: alert", slog.String("objective", s.o.Name), slog.String("alert", ev.Rule.Name),
			slog.String("severity", string(ev.Rule.Severity)), slog.Bool("firing", ev.Firing), slog.Float64("long_burn", ev.LongBurn), slog.Float64("short_burn", ev.ShortBurn))
		if s.o.OnAlert != nil {
			go s.o.OnAlert(ev)
		}
	}
	return out
}

// Name is the objective's name.
func (s *SLO) Name() string { return s.o.Name }

// Target is the objective's target.
func (s *SLO) Target() float64 { return s.o.Target }

// Window is the objective's rolling window.
func (s *SLO) Window() time.Duration { return s.o.Window }

// Stats is a snapshot for metrics and status pages.
type Stats struct {
	Name   string
	Target float64
	Window time.Duration
	Budget Budget
	// BurnRates maps each alert window to its burn rate.
	BurnRates map[time.Duration]float64
	Alerts    []AlertState
}

// Stats evaluates the alerts and returns a snapshot.
func (s *SLO) Stats() Stats {
	st := Stats{Name: s.o.Name, Target: s.o.Target, Window: s.o.Window, Budget: s.Budget(), BurnRates: map[time.Duration]float64{}, Alerts: s.Evaluate()}
	for _, a := range st.Alerts {
		st.BurnRates[a.Rule.LongWindow] = a.LongBurn
		st.BurnRates[a.Rule.ShortWindow] = a.ShortBurn
	}
	return st
}

// round keeps JSON readable.
func round(f float64) float64 { return math.Round(f*1e6) / 1e6 }
