package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter"
	scalekitotel "github.com/scalekit-go/scalekit/otel"
	"github.com/scalekit-go/scalekit/otel/dbrouterotel"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
)

// serviceName is the service.name of the traces, unless OTEL_SERVICE_NAME
// or OTEL_RESOURCE_ATTRIBUTES says otherwise.
const serviceName = "scalekit-example"

// telemetry is the service's OpenTelemetry: the tracer of the scalekit
// primitives, the pgx query spans with dbrouter's decisions on them, the
// HTTP server spans and, with a MeterProvider, the primitives' Stats as
// OpenTelemetry metrics. A nil *telemetry is tracing off: each method
// then returns what leaves a primitive untraced (no middleware, a nil
// Tracer), so the service pays nothing for it.
type telemetry struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider // nil: no OpenTelemetry metrics
	tracer   *scalekitotel.Tracer
	route    *dbrouterotel.Tracer
	query    *dbrouterotel.QueryTracer
	metrics  *scalekitotel.Metrics
	shutdown func(context.Context) error // flushes and stops the exporter (nil: the caller's provider)
}

// telemetryFromEnv builds the tracer provider the environment asks for,
// with the OpenTelemetry SDK's variables:
//
//	OTEL_TRACES_EXPORTER=console            spans printed to out as JSON, as each ends
//	OTEL_TRACES_EXPORTER=otlp               OTLP over HTTP to OTEL_EXPORTER_OTLP_ENDPOINT
//	                                        (default http://localhost:4318), or _TRACES_ENDPOINT,
//	                                        with OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT...
//	OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*
//	OTEL_SDK_DISABLED=true                  off, whatever else is set
//
// Unlike the SDK's default (otlp), no OTEL_TRACES_EXPORTER means no
// tracing, unless an OTLP endpoint is set (then otlp): it returns nil.
// OTEL_METRICS_EXPORTER may only be none: the service's metrics are
// Prometheus's, on /metrics (Config.MeterProvider adds OpenTelemetry's).
func telemetryFromEnv(ctx context.Context, out io.Writer) (trace.TracerProvider, func(context.Context) error, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil, nil
	}
	if m := os.Getenv("OTEL_METRICS_EXPORTER"); m != "" && m != "none" {
		return nil, nil, fmt.Errorf("OTEL_METRICS_EXPORTER=%q: this example exports no OpenTelemetry metrics from the environment (only none); its metrics are on /metrics", m)
	}
	exporter := os.Getenv("OTEL_TRACES_EXPORTER")
	if exporter == "" && (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		exporter = "otlp"
	}
	var opt sdktrace.TracerProviderOption
	switch exporter {
	case "", "none":
		return nil, nil, nil
	case "console":
		exp, err := stdouttrace.New(stdouttrace.WithWriter(out))
		if err != nil {
			return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER=console: %w", err)
		}
		opt = sdktrace.WithSyncer(exp) // printed as each span ends
	case "otlp":
		if p := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
			return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: this example speaks http/protobuf only", p)
		}
		exp, err := otlptracehttp.New(ctx) // reads OTEL_EXPORTER_OTLP_* itself
		if err != nil {
			return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER=otlp: %w", err)
		}
		opt = sdktrace.WithBatcher(exp)
	default:
		return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: use none, console or otlp", exporter)
	}
	res, err := sdkresource.New(ctx, sdkresource.WithAttributes(attribute.String("service.name", serviceName)),
		sdkresource.WithFromEnv(), sdkresource.WithTelemetrySDK())
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(opt, sdktrace.WithResource(res)) // the sampler from OTEL_TRACES_SAMPLER
	return tp, tp.Shutdown, nil
}

// newTelemetry builds the service's telemetry on tp (and mp, if not
// nil); nil, tracing off, when both are nil.
func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider, shutdown func(context.Context) error) (*telemetry, error) {
	if tp == nil && mp == nil {
		return nil, nil
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	t := &telemetry{tp: tp, mp: mp, shutdown: shutdown}
	var err error
	if t.tracer, err = scalekitotel.New(scalekitotel.Options{TracerProvider: tp}); err != nil {
		return nil, err
	}
	if t.route, err = dbrouterotel.New(dbrouterotel.Options{}); err != nil {
		return nil, err
	}
	if t.query, err = dbrouterotel.NewQueryTracer(dbrouterotel.QueryTracerOptions{TracerProvider: tp}); err != nil {
		return nil, err
	}
	if mp != nil {
		if t.metrics, err = scalekitotel.NewMetrics(scalekitotel.MetricsOptions{MeterProvider: mp}); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// close unregisters the metrics and flushes the exporter.
func (t *telemetry) close(ctx context.Context) error {
	var errs []error
	if t.metrics != nil {
		errs = append(errs, t.metrics.Close())
	}
	if t.shutdown != nil {
		errs = append(errs, t.shutdown(ctx))
	}
	return errors.Join(errs...)
}

// configurePool is dbrouter.Options.ConfigurePool: a span per query
// made within a span, with the routing decision on it (the span maker
// first in the multitracer).
func (t *telemetry) configurePool(_ string, cfg *pgxpool.Config) error {
	if t == nil {
		return nil
	}
	if cfg.ConnConfig.Tracer != nil {
		return errors.New("the pool has a pgx tracer already")
	}
	cfg.ConnConfig.Tracer = multitracer.New(t.query, t.route)
	return nil
}

// routeTracer is dbrouter.Options.RouteTracer (nil when off: a nil
// interface, not a nil *Tracer).
func (t *telemetry) routeTracer() dbrouter.RouteTracer {
	if t == nil {
		return nil
	}
	return t.route
}

// cache is cache.Options.Tracer for the cache name.
func (t *telemetry) cache(name string) cache.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer.Cache(name)
}

// batch is batch.Options.Tracer for the loader name.
func (t *telemetry) batch(name string) batch.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer.Batch(name)
}

// onRetry is retry.Options.OnRetry: an event per retry on the caller's
// span.
func (t *telemetry) onRetry() func(context.Context, retry.Event) {
	if t == nil {
		return nil
	}
	return t.tracer.OnRetry
}

// onStateChange is breaker.Options.OnStateChange: a span per change.
func (t *telemetry) onStateChange() func(string, breaker.State, breaker.State) {
	if t == nil {
		return nil
	}
	return t.tracer.OnStateChange
}

// limiter wraps l so that its denials are events on the request's span.
func (t *telemetry) limiter(name string, l ratelimit.Limiter) ratelimit.Limiter {
	if t == nil {
		return l
	}
	return t.tracer.Limiter(name, l)
}

// enqueue is queue client (and scheduler) middleware: a producer span
// per job, its trace context in the job's metadata.
func (t *telemetry) enqueue() []func(queue.EnqueueFunc) queue.EnqueueFunc {
	if t == nil {
		return nil
	}
	return []func(queue.EnqueueFunc) queue.EnqueueFunc{t.tracer.EnqueueMiddleware}
}

// attempt is worker middleware: a consumer span per attempt, a child of
// the enqueuing span (in the request's trace).
func (t *telemetry) attempt() []func(queue.AttemptFunc) queue.AttemptFunc {
	if t == nil {
		return nil
	}
	return []func(queue.AttemptFunc) queue.AttemptFunc{t.tracer.AttemptMiddleware}
}

// handler makes a server span per API request (joining the caller's
// trace from its traceparent header), named by the ServeMux pattern
// (nameSpan sets it once the mux has routed); probes and /metrics make
// none.
func (t *telemetry) handler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	mp := t.mp
	if mp == nil {
		mp = metricnoop.NewMeterProvider() // the RED metrics are Prometheus's
	}
	return otelhttp.NewHandler(h, "http", otelhttp.WithTracerProvider(t.tp), otelhttp.WithMeterProvider(mp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
		otelhttp.WithFilter(func(r *http.Request) bool { return !isProbe(r.URL.Path) }))
}

// nameSpan, around the mux, names the request's server span by the
// pattern the mux routed it to ("POST /users/{id}/welcome"), and sets
// http.route.
func (t *telemetry) nameSpan(mux http.Handler) http.Handler {
	if t == nil {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if r.Pattern == "" {
			return
		}
		span := trace.SpanFromContext(r.Context())
		span.SetName(r.Pattern)
		route := r.Pattern
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		span.SetAttributes(attribute.String("http.route", route))
	})
}

// isProbe reports the paths that are neither traced nor rate-limited.
func isProbe(path string) bool {
	switch path {
	case "/health/live", "/health/ready", "/health/startup", "/metrics":
		return true
	}
	return false
}
