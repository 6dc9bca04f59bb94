package slo

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/httpx"
)

// TrackerOptions configures NewTracker: which objectives every route gets.
type TrackerOptions struct {
	// Availability is the share of requests that must not fail (a 5xx
	// status), e.g. 0.999; 0 for none. Default: 0.999 when Latency is
	// also unset.
	Availability float64
	// Latency is the share of requests that must finish within
	// LatencyThreshold, e.g. 0.99; 0 for none.
	Latency float64
	// LatencyThreshold is the latency objective's bound; required with
	// Latency.
	LatencyThreshold time.Duration
	// Window, Alerts, OnAlert, Clock and Logger are passed to every SLO
	// (see Options). Defaults as there.
	Window  time.Duration
	Alerts  []AlertRule
	OnAlert func(AlertEvent)
	Clock   clock.Clock
	Logger  *slog.Logger
	// Route names a request's route. Default: the ServeMux pattern that
	// matched (r.Pattern), or "other".
	Route func(*http.Request) string
	// MaxRoutes bounds the routes tracked (each costs about 36 KB); later
	// routes are tracked as "other". Default: 100.
	MaxRoutes int
}

// Tracker keeps an availability and/or latency SLO per route and records
// requests into them through Middleware. It is safe for concurrent use.
type Tracker struct {
	o      TrackerOptions
	mu     sync.RWMutex
	routes map[string]*routeSLOs
}

type routeSLOs struct {
	availability, latency *SLO
}

// NewTracker returns a Tracker, or an error naming the bad option.
func NewTracker(o TrackerOptions) (*Tracker, error) {
	if o.Availability == 0 && o.Latency == 0 {
		o.Availability = 0.999
	}
	if o.Latency != 0 && o.LatencyThreshold <= 0 {
		return nil, fmt.Errorf("%w: TrackerOptions.LatencyThreshold must be > 0 with a Latency objective, got %v", ErrInvalid, o.LatencyThreshold)
	}
	if o.Route == nil {
		o.Route = func(r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return "other"
		}
	}
	if o.MaxRoutes == 0 {
		o.MaxRoutes = 100
	}
	if o.MaxRoutes < 1 {
		return nil, fmt.Errorf("%w: TrackerOptions.MaxRoutes must be >= 1, got %d", ErrInvalid, o.MaxRoutes)
	}
	t := &Tracker{o: o, routes: map[string]*routeSLOs{}}
	if _, err := t.newRoute("other"); err != nil { // validates the objectives once
		return nil, err
	}
	return t, nil
}

func (t *Tracker) newRoute(name string) (*routeSLOs, error) {
	mk := func(kind string, target float64) (*SLO, error) {
		if target == 0 {
			return nil, nil
		}
		return New(Options{Name: name + " " + kind, Target: target, Window: t.o.Window, Alerts: t.o.Alerts, OnAlert: t.o.OnAlert, Clock: t.o.Clock, Logger: t.o.Logger})
	}
	rs := &routeSLOs{}
	var err error
	if rs.availability, err = mk("availability", t.o.Availability); err != nil {
		return nil, fmt.Errorf("TrackerOptions.Availability: %w", err)
	}
	if rs.latency, err = mk("latency", t.o.Latency); err != nil {
		return nil, fmt.Errorf("TrackerOptions.Latency: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if existing := t.routes[name]; existing != nil {
		return existing, nil
	}
	if len(t.routes) >= t.o.MaxRoutes+1 { // +1: "other"
		return t.routes["other"], nil
	}
	t.routes[name] = rs
	return rs, nil
}

func (t *Tracker) route(name string) *routeSLOs {
	t.mu.RLock()
	rs := t.routes[name]
	t.mu.RUnlock()
	if rs == nil {
		rs, _ = t.newRoute(name) // options were validated by NewTracker
	}
	return rs
}

// Observe records one request of route: good for availability unless
// status >= 500, good for latency when it took at most LatencyThreshold.
func (t *Tracker) Observe(route string, status int, took time.Duration) {
	rs := t.route(route)
	if rs.availability != nil {
		rs.availability.Record(status < 500)
	}
	if rs.latency != nil {
		rs.latency.Record(took <= t.o.LatencyThreshold)
	}
}

// Middleware records every request into its route's objectives.
func (t *Tracker) Middleware(next http.Handler) http.Handler {
	clk := t.o.Clock
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := clock.Now(clk)
		sw, ww := httpx.Wrap(w)
		defer func() {
			// The route is known only after the mux matched (r.Pattern).
			t.Observe(t.o.Route(r), sw.Status(), clock.Now(clk).Sub(start))
		}()
		next.ServeHTTP(ww, r)
	})
}

// SLOs returns every tracked objective, sorted by name.
func (t *Tracker) SLOs() []*SLO {
	t.mu.RLock()
	var out []*SLO
	for _, rs := range t.routes {
		for _, s := range []*SLO{rs.availability, rs.latency} {
			if s != nil {
				out = append(out, s)
			}
		}
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// Status is the JSON shape StatusHandler serves for one objective.
type Status struct {
	Name            string             `json:"name"`
	Target          float64            `json:"target"`
	Window          string             `json:"window"`
	Good            uint64             `json:"good"`
	Total           uint64             `json:"total"`
	BudgetRemaining float64            `json:"budget_remaining"`
	BudgetConsumed  uint64             `json:"budget_consumed_events"`
	BudgetAllowed   float64            `json:"budget_allowed_events"`
	BurnRates       map[string]float64 `json:"burn_rates"`
	Alerts          []AlertStatus      `json:"alerts"`
}

// AlertStatus is one alert rule in Status.
type AlertStatus struct {
	Name     string   `json:"name"`
	Severity Severity `json:"severity"`
	Firing   bool     `json:"firing"`
}

// StatusOf builds the JSON status of s.
func StatusOf(s *SLO) Status {
	st := s.Stats()
	out := Status{Name: st.Name, Target: st.Target, Window: st.Window.String(), Good: st.Budget.Good, Total: st.Budget.Total,
		BudgetRemaining: round(st.Budget.RemainingFraction), BudgetConsumed: st.Budget.Consumed, BudgetAllowed: round(st.Budget.Allowed),
		BurnRates: map[string]float64{}}
	for w, b := range st.BurnRates {
		out.BurnRates[w.String()] = round(b)
	}
	for _, a := range st.Alerts {
		out.Alerts = append(out.Alerts, AlertStatus{Name: a.Rule.Name, Severity: a.Rule.Severity, Firing: a.Firing})
	}
	return out
}

// StatusHandler serves every objective's budget, burn rates and alerts as
// JSON.
func (t *Tracker) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var out []Status
		for _, s := range t.SLOs() {
			if strings.HasPrefix(s.Name(), "other ") && s.Budget().Total == 0 {
				continue // the catch-all route, unused
			}
			out = append(out, StatusOf(s))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"objectives": out})
	})
}
