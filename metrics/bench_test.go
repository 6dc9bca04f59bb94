package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/requestid"
)

// BenchmarkGather is the cost of one scrape of a Collector holding one
// primitive of every kind (some 210 series), through a registry.
func BenchmarkGather(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(everything(b, metrics.Options{Instance: "api-1"}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCollect is the Collector's own share: reading the snapshots
// and making the metrics, without the registry's encoding.
func BenchmarkCollect(b *testing.B) {
	m := everything(b, metrics.Options{Instance: "api-1"})
	ch := make(chan prometheus.Metric, 1024)
	b.ReportAllocs()
	for b.Loop() {
		m.Collect(ch)
		for len(ch) > 0 {
			<-ch
		}
	}
}

// nopWriter is a ResponseWriter that costs nothing, so the middleware
// benchmarks measure the middleware.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkHTTPMiddleware is the cost of the RED middleware, and of it
// with package requestid's in front (issue 20's budget: <= 1µs and <= 2
// allocations over the bare handler), against the bare ServeMux and
// handler. Compare ns/op and allocs/op with "bare".
func BenchmarkHTTPMiddleware(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	reg := prometheus.NewRegistry()
	red, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	ids, _ := requestid.NewHTTP(requestid.HTTPOptions{})
	for _, bc := range []struct {
		name string
		h    http.Handler
		hdr  string
	}{
		{"bare", mux, ""},
		{"red", red.Middleware(mux), ""},
		{"requestid+red", ids.Middleware(red.Middleware(mux)), ""},
		{"requestid+red/traceparent", ids.Middleware(red.Middleware(mux)), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/users/42", nil)
			if bc.hdr != "" {
				r.Header.Set("traceparent", bc.hdr)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &nopWriter{h: http.Header{}}
				for pb.Next() {
					bc.h.ServeHTTP(w, r)
				}
			})
		})
	}
}
