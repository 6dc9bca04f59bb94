package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/slo"
)

var sloFamilies = []family[slo.Stats]{
	gauge("scalekit_slo_target_ratio", "The objective's target: the share of good events promised (0.999).", func(s slo.Stats) float64 { return s.Target }),
	gauge("scalekit_slo_window_seconds", "The objective's rolling window.", func(s slo.Stats) float64 { return s.Window.Seconds() }),
	gauge("scalekit_slo_window_events", "Events recorded in the rolling window.", func(s slo.Stats) uint64 { return s.Budget.Total }),
	gauge("scalekit_slo_window_good_events", "Good events recorded in the rolling window.", func(s slo.Stats) uint64 { return s.Budget.Good }),
	gauge("scalekit_slo_error_budget_allowed_events", "Bad events the objective allows for the window's events: (1 - target) * events.", func(s slo.Stats) float64 { return s.Budget.Allowed }),
	gauge("scalekit_slo_error_budget_consumed_events", "Bad events in the rolling window.", func(s slo.Stats) uint64 { return s.Budget.Consumed }),
	gauge("scalekit_slo_error_budget_remaining_events", "Allowed minus consumed bad events (negative when the budget is blown).", func(s slo.Stats) float64 { return s.Budget.Remaining }),
	gauge("scalekit_slo_error_budget_remaining_ratio", "Share of the error budget left: 1 untouched (or no events), 0 spent, negative blown.", func(s slo.Stats) float64 { return s.Budget.RemainingFraction }),
	gaugeFunc("scalekit_slo_burn_rate", "Error rate over the window label's trailing window divided by the rate the objective allows; 1 spends the budget exactly over the objective's window. One series per window of the alert rules.", []string{"window"},
		func(o out, s slo.Stats) {
			for w, r := range s.BurnRates {
				o.send(r, model.Duration(w).String())
			}
		}),
	gaugeFunc("scalekit_slo_alert_firing", "Whether a multi-window burn-rate alert rule fires (burn rate at least its threshold over both its windows): 1 or 0.", []string{"alert", "severity"},
		func(o out, s slo.Stats) {
			for _, a := range s.Alerts {
				o.send(added.Boolf(a.Firing), a.Rule.Name, string(a.Rule.Severity))
			}
		}),
}

// AddSLO reports s's Stats under its own name (slo.Options.Name) as the
// name label. Reading them evaluates the alert rules, so OnAlert hooks may
// fire during a scrape, as they would on any Stats call.
func (c *Collector) AddSLO(s *slo.SLO) error {
	if s == nil {
		return nilArg("AddSLO", "the *slo.SLO")
	}
	return c.add("AddSLO", named{"SLO", s.Name()}, func(ch chan<- prometheus.Metric) {
		st := s.Stats()
		c.slo.collect(ch, st, st.Name)
	})
}

// AddSLOTracker reports every objective t tracks at scrape time, as AddSLO
// would, each under its own name ("<route> availability", "<route>
// latency"). The names share the name space of AddSLO.
func (c *Collector) AddSLOTracker(t *slo.Tracker) error {
	if t == nil {
		return nilArg("AddSLOTracker", "the *slo.Tracker")
	}
	return c.add("AddSLOTracker", t, func(ch chan<- prometheus.Metric) {
		for _, s := range t.SLOs() {
			st := s.Stats()
			c.slo.collect(ch, st, st.Name)
		}
	})
}
