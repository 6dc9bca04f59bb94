package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/retry"
)

var retrierFamilies = []family[retry.Stats]{
	counter("scalekit_retry_calls_total", "Calls to the retrier (Do, DoValue, Transport round trips).", func(s retry.Stats) uint64 { return s.Calls }),
	counter("scalekit_retry_attempts_total", "Attempts made, first attempts included (calls + retries).", func(s retry.Stats) uint64 { return s.Attempts }),
	counter("scalekit_retry_retries_total", "Attempts after the first.", func(s retry.Stats) uint64 { return s.Retries }),
	counter("scalekit_retry_exhausted_total", "Calls the retrier gave up on (an ExhaustedError returned), whatever the reason.", func(s retry.Stats) uint64 { return s.Exhausted }),
	counter("scalekit_retry_exhausted_by_budget_total", "Give-ups caused by an empty retry budget (a subset of scalekit_retry_exhausted_total).", func(s retry.Stats) uint64 { return s.BudgetRefusals }),
	counter("scalekit_retry_not_retried_total", "Failed calls not retried because their request is itself a retry (retry.WithRetried, retry.Middleware): the layer above retries.", func(s retry.Stats) uint64 { return s.NotRetried }),
}

// AddRetrier reports r's Stats under name. A nil r reports the default
// Retrier, the one the package-level retry.Do uses.
func (c *Collector) AddRetrier(name string, r *retry.Retrier) error {
	return c.add("AddRetrier", named{"retrier", name}, func(ch chan<- prometheus.Metric) {
		c.retrier.collect(ch, r.Stats(), name)
	})
}

var budgetFamilies = []family[retry.BudgetStats]{
	counter("scalekit_retry_budget_deposits_total", "Calls recorded by the retry budget (each deposits Ratio tokens).", func(s retry.BudgetStats) uint64 { return s.Deposits }),
	counter("scalekit_retry_budget_withdrawals_total", "Retries the retry budget allowed.", func(s retry.BudgetStats) uint64 { return s.Withdrawals }),
	counter("scalekit_retry_budget_refusals_total", "Retries the retry budget refused.", func(s retry.BudgetStats) uint64 { return s.Refusals }),
	gauge("scalekit_retry_budget_tokens", "Retries the retry budget would allow now (deposits plus floor).", func(s retry.BudgetStats) float64 { return s.Tokens }),
}

// AddRetryBudget reports b's Stats under name (a Budget is shared by the
// retriers of one dependency: name it after the dependency).
func (c *Collector) AddRetryBudget(name string, b *retry.Budget) error {
	return addStats(c, "AddRetryBudget", "the *retry.Budget", b, named{"retry budget", name}, &c.budget)
}
