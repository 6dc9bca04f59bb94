package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/retry"
)

type retrierDescs struct {
	calls, attempts, retries, exhausted, budgetExhausted *prometheus.Desc
}

func newRetrierDescs(b *builder) retrierDescs {
	return retrierDescs{
		calls:           b.desc("scalekit_retry_calls_total", "Calls to the retrier (Do, DoValue, Transport round trips)."),
		attempts:        b.desc("scalekit_retry_attempts_total", "Attempts made, first attempts included (calls + retries)."),
		retries:         b.desc("scalekit_retry_retries_total", "Attempts after the first."),
		exhausted:       b.desc("scalekit_retry_exhausted_total", "Calls the retrier gave up on (an ExhaustedError returned), whatever the reason."),
		budgetExhausted: b.desc("scalekit_retry_exhausted_by_budget_total", "Give-ups caused by an empty retry budget (a subset of scalekit_retry_exhausted_total)."),
	}
}

// AddRetrier reports r's Stats under name. A nil r reports the default
// Retrier, the one the package-level retry.Do uses.
func (c *Collector) AddRetrier(name string, r *retry.Retrier) error {
	d := &c.retrier
	return c.add("AddRetrier", named{"retrier", name}, func(ch chan<- prometheus.Metric) {
		st := r.Stats()
		counter(ch, d.calls, st.Calls, name)
		counter(ch, d.attempts, st.Attempts, name)
		counter(ch, d.retries, st.Retries, name)
		counter(ch, d.exhausted, st.Exhausted, name)
		counter(ch, d.budgetExhausted, st.BudgetRefusals, name)
	})
}

type budgetDescs struct {
	deposits, withdrawals, refusals, tokens *prometheus.Desc
}

func newBudgetDescs(b *builder) budgetDescs {
	return budgetDescs{
		deposits:    b.desc("scalekit_retry_budget_deposits_total", "Calls recorded by the retry budget (each deposits Ratio tokens)."),
		withdrawals: b.desc("scalekit_retry_budget_withdrawals_total", "Retries the retry budget allowed."),
		refusals:    b.desc("scalekit_retry_budget_refusals_total", "Retries the retry budget refused."),
		tokens:      b.desc("scalekit_retry_budget_tokens", "Retries the retry budget would allow now (deposits plus floor)."),
	}
}

// AddRetryBudget reports b's Stats under name (a Budget is shared by the
// retriers of one dependency: name it after the dependency).
func (c *Collector) AddRetryBudget(name string, b *retry.Budget) error {
	if b == nil {
		return nilArg("AddRetryBudget", "the *retry.Budget")
	}
	d := &c.budget
	return c.add("AddRetryBudget", named{"retry budget", name}, func(ch chan<- prometheus.Metric) {
		st := b.Stats()
		counter(ch, d.deposits, st.Deposits, name)
		counter(ch, d.withdrawals, st.Withdrawals, name)
		counter(ch, d.refusals, st.Refusals, name)
		gauge(ch, d.tokens, st.Tokens, name)
	})
}
