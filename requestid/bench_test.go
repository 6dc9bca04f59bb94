package requestid_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/scalekit-go/scalekit/requestid"
)

// nopWriter is a ResponseWriter that costs nothing, so the benchmarks
// measure the middleware and not httptest.ResponseRecorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkMiddleware measures the middleware over a bare handler, per
// where the ID comes from.
func BenchmarkMiddleware(b *testing.B) {
	m, _ := requestid.NewHTTP(requestid.HTTPOptions{})
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, bc := range []struct {
		name string
		hdr  map[string]string
		h    http.Handler
	}{
		{"bare", nil, bare},
		{"generated", nil, m.Middleware(bare)},
		{"incoming", map[string]string{"X-Request-ID": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}, m.Middleware(bare)},
		{"traceparent", map[string]string{"traceparent": validTP}, m.Middleware(bare)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/", nil)
			for k, v := range bc.hdr {
				r.Header.Set(k, v)
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

// BenchmarkLogHandler measures the handler on a disabled level (the cost
// of a suppressed line) and on an enabled one with an ID to add.
func BenchmarkLogHandler(b *testing.B) {
	ctx := requestid.NewContext(context.Background(), requestid.Generate())
	logger := slog.New(requestid.NewLogHandler(slog.DiscardHandler))
	b.Run("disabled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			logger.DebugContext(ctx, "m", "k", 1)
		}
	})
	h := requestid.NewLogHandler(slog.NewJSONHandler(discard{}, nil))
	b.Run("json", func(b *testing.B) {
		l := slog.New(h)
		b.ReportAllocs()
		for b.Loop() {
			l.InfoContext(ctx, "m", "k", 1)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
