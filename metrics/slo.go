package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/scalekit-go/scalekit/slo"
)

type sloDescs struct {
	target, window, events, goodEvents                   *prometheus.Desc
	budgetAllowed, budgetConsumed, budgetRemaining, frac *prometheus.Desc
	burnRate, alertFiring                                *prometheus.Desc
}

func newSLODescs(b *builder) sloDescs {
	return sloDescs{
		target:          b.desc("scalekit_slo_target_ratio", "The objective's target: the share of good events promised (0.999)."),
		window:          b.desc("scalekit_slo_window_seconds", "The objective's rolling window."),
		events:          b.desc("scalekit_slo_window_events", "Events recorded in the rolling window."),
		goodEvents:      b.desc("scalekit_slo_window_good_events", "Good events recorded in the rolling window."),
		budgetAllowed:   b.desc("scalekit_slo_error_budget_allowed_events", "Bad events the objective allows for the window's events: (1 - target) * events."),
		budgetConsumed:  b.desc("scalekit_slo_error_budget_consumed_events", "Bad events in the rolling window."),
		budgetRemaining: b.desc("scalekit_slo_error_budget_remaining_events", "Allowed minus consumed bad events (negative when the budget is blown)."),
		frac:            b.desc("scalekit_slo_error_budget_remaining_ratio", "Share of the error budget left: 1 untouched (or no events), 0 spent, negative blown."),
		burnRate:        b.desc("scalekit_slo_burn_rate", "Error rate over the window label's trailing window divided by the rate the objective allows; 1 spends the budget exactly over the objective's window. One series per window of the alert rules.", "window"),
		alertFiring:     b.desc("scalekit_slo_alert_firing", "Whether a multi-window burn-rate alert rule fires (burn rate at least its threshold over both its windows): 1 or 0.", "alert", "severity"),
	}
}

func (d *sloDescs) collect(ch chan<- prometheus.Metric, st slo.Stats) {
	n := st.Name
	gauge(ch, d.target, st.Target, n)
	gauge(ch, d.window, st.Window.Seconds(), n)
	gauge(ch, d.events, float64(st.Budget.Total), n)
	gauge(ch, d.goodEvents, float64(st.Budget.Good), n)
	gauge(ch, d.budgetAllowed, st.Budget.Allowed, n)
	gauge(ch, d.budgetConsumed, float64(st.Budget.Consumed), n)
	gauge(ch, d.budgetRemaining, st.Budget.Remaining, n)
	gauge(ch, d.frac, st.Budget.RemainingFraction, n)
	for w, r := range st.BurnRates {
		gauge(ch, d.burnRate, r, n, model.Duration(w).String())
	}
	for _, a := range st.Alerts {
		gauge(ch, d.alertFiring, boolf(a.Firing), n, a.Rule.Name, string(a.Rule.Severity))
	}
}

// AddSLO reports s's Stats under its own name (slo.Options.Name) as the
// name label. Reading them evaluates the alert rules, so OnAlert hooks may
// fire during a scrape, as they would on any Stats call.
func (c *Collector) AddSLO(s *slo.SLO) error {
	if s == nil {
		return nilArg("AddSLO", "the *slo.SLO")
	}
	return c.add("AddSLO", named{"SLO", s.Name()}, func(ch chan<- prometheus.Metric) {
		c.slo.collect(ch, s.Stats())
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
			c.slo.collect(ch, s.Stats())
		}
	})
}
