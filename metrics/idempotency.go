package metrics

import (
	"github.com/scalekit-go/scalekit/idempotency"
)

var idempotencyFamilies = []family[idempotency.HTTPStats]{
	counterBy("scalekit_idempotency_requests_total", "Keyed requests through the Idempotency-Key middleware, by result: executed (first run), replayed (stored response served), conflict (409, running), mismatch (422, key reused with another request), bad_key (400) or unavailable (503, Store failing).", "result",
		with("executed", func(s idempotency.HTTPStats) uint64 { return s.Executed }),
		with("replayed", func(s idempotency.HTTPStats) uint64 { return s.Replayed }),
		with("conflict", func(s idempotency.HTTPStats) uint64 { return s.Conflicts }),
		with("mismatch", func(s idempotency.HTTPStats) uint64 { return s.Mismatches }),
		with("bad_key", func(s idempotency.HTTPStats) uint64 { return s.BadKeys }),
		with("unavailable", func(s idempotency.HTTPStats) uint64 { return s.Unavailable })),
	counter("scalekit_idempotency_released_total", "Keys given back after a 5xx, a panic or an oversized response, so a retry runs again.", func(s idempotency.HTTPStats) uint64 { return s.Released }),
	counter("scalekit_idempotency_lease_lost_total", "Requests whose key's lease was lost while the handler ran (its ctx was cancelled with ErrLeaseLost).", func(s idempotency.HTTPStats) uint64 { return s.LeaseLost }),
}

// AddIdempotency reports the Stats of the Idempotency-Key middleware m
// under name.
func (c *Collector) AddIdempotency(name string, m *idempotency.HTTP) error {
	return addStats(c, "AddIdempotency", "the *idempotency.HTTP", m, named{"idempotency middleware", name}, &c.idem)
}
