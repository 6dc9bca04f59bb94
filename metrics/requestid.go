package metrics

import (
	"github.com/scalekit-go/scalekit/requestid"
)

var requestIDFamilies = []family[requestid.HTTPStats]{
	counterBy("scalekit_requestid_requests_total", "Requests given an ID by the request-ID middleware, by where it came from: header (the request's own, valid), traceparent (its W3C trace ID) or generated.", "source",
		with("header", func(s requestid.HTTPStats) uint64 { return s.Accepted }),
		with("traceparent", func(s requestid.HTTPStats) uint64 { return s.FromTraceparent }),
		with("generated", func(s requestid.HTTPStats) uint64 { return s.Generated })),
	counter("scalekit_requestid_replaced_total", "Incoming request IDs refused (too long, or characters outside A-Z a-z 0-9 . _ : -) and replaced.", func(s requestid.HTTPStats) uint64 { return s.Replaced }),
}

// AddRequestID reports the Stats of the request-ID middleware m under
// name.
func (c *Collector) AddRequestID(name string, m *requestid.HTTP) error {
	return addStats(c, "AddRequestID", "the *requestid.HTTP", m, named{"request-ID middleware", name}, &c.requestID)
}
