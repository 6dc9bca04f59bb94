package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/idempotency"
)

type idempotencyDescs struct {
	requests, released, leaseLost *prometheus.Desc
}

func newIdempotencyDescs(b *builder) idempotencyDescs {
	return idempotencyDescs{
		requests:  b.desc("scalekit_idempotency_requests_total", "Keyed requests through the Idempotency-Key middleware, by result: executed (first run), replayed (stored response served), conflict (409, running), mismatch (422, key reused with another request), bad_key (400) or unavailable (503, Store failing).", "result"),
		released:  b.desc("scalekit_idempotency_released_total", "Keys given back after a 5xx, a panic or an oversized response, so a retry runs again."),
		leaseLost: b.desc("scalekit_idempotency_lease_lost_total", "Requests whose key's lease was lost while the handler ran (its ctx was cancelled with ErrLeaseLost)."),
	}
}

// AddIdempotency reports the Stats of the Idempotency-Key middleware m
// under name.
func (c *Collector) AddIdempotency(name string, m *idempotency.HTTP) error {
	if m == nil {
		return nilArg("AddIdempotency", "the *idempotency.HTTP")
	}
	d := &c.idem
	return c.add("AddIdempotency", named{"idempotency middleware", name}, func(ch chan<- prometheus.Metric) {
		st := m.Stats()
		counter(ch, d.requests, st.Executed, name, "executed")
		counter(ch, d.requests, st.Replayed, name, "replayed")
		counter(ch, d.requests, st.Conflicts, name, "conflict")
		counter(ch, d.requests, st.Mismatches, name, "mismatch")
		counter(ch, d.requests, st.BadKeys, name, "bad_key")
		counter(ch, d.requests, st.Unavailable, name, "unavailable")
		counter(ch, d.released, st.Released, name)
		counter(ch, d.leaseLost, st.LeaseLost, name)
	})
}
