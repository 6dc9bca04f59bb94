package bench

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	slokmetrics "github.com/slok/go-http-metrics/metrics/prometheus"
	slokmiddleware "github.com/slok/go-http-metrics/middleware"
	slokstd "github.com/slok/go-http-metrics/middleware/std"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/requestid"
)

// serverWriter is a ResponseWriter that costs nothing but has the optional
// interfaces net/http's HTTP/1 writer has (Flusher, Hijacker,
// io.ReaderFrom), so each middleware takes the path it takes behind a real
// server and the benchmark measures the middleware, not the writer.
type serverWriter struct{ h http.Header }

func (w *serverWriter) Header() http.Header         { return w.h }
func (w *serverWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *serverWriter) WriteHeader(int)             {}
func (w *serverWriter) Flush()                      {}
func (w *serverWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}
func (w *serverWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

// discardSpans is a SpanExporter that drops what it is given.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// BenchmarkMiddleware: what an HTTP service pays per request to know each
// request (an ID or trace in its context and response, for the logs) and to
// count and time it (RED metrics), over the bare ServeMux and handler, in
// parallel. Issue 20's budget for scalekit/requestid+red: <= 1µs and <= 2
// allocations over bare.
//
//   - bare: the mux and a handler writing 200.
//   - scalekit-red: metrics.HTTP alone (route, method, status class; a
//     native + classic histogram).
//   - scalekit: requestid.HTTP (a new random ID per request, in the context
//     and the X-Request-ID response header) + metrics.HTTP, with exemplars.
//   - otelhttp: the OpenTelemetry contrib handler with the SDK's tracer
//     provider (every request sampled, a span batched to an exporter that
//     drops it) and the SDK's meter provider (its HTTP server metrics,
//     read by a manual reader): a trace ID in the context for the logs,
//     plus RED.
//   - slok: slok/go-http-metrics' std middleware with its Prometheus
//     recorder (RED and response sizes; no ID).
func BenchmarkMiddleware(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

	red, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ids, err := requestid.NewHTTP(requestid.HTTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	red2, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}

	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(discardSpans{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})

	slok := slokmiddleware.New(slokmiddleware.Config{
		Recorder: slokmetrics.NewRecorder(slokmetrics.Config{Registry: prometheus.NewRegistry()}),
	})

	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", mux},
		{"scalekit-red", red.Middleware(mux)},
		{"scalekit", ids.Middleware(red2.Middleware(mux))},
		{"otelhttp", otelhttp.NewHandler(mux, "users", otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp))},
		{"slok", slokstd.Handler("", slok, mux)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/users/42", nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &serverWriter{h: http.Header{}}
				for pb.Next() {
					bc.h.ServeHTTP(w, r)
				}
			})
		})
	}
}
