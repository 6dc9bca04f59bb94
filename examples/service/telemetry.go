package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
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
	query    *otelpgx.Tracer // makes the query spans, route puts its decisions on them
	metrics  *scalekitotel.Metrics
	shutdown func(context.Context) error // flushes and stops the exporter (nil: the caller's provider)
}

// telemetryFromEnv builds the tracer and meter providers the environment
// asks for, with the OpenTelemetry SDK's variables:
//
//	OTEL_TRACES_EXPORTER=console            spans printed to out as JSON, as each ends
//	OTEL_TRACES_EXPORTER=otlp               OTLP over HTTP to OTEL_EXPORTER_OTLP_ENDPOINT
//	                                        (default http://localhost:4318), or _TRACES_ENDPOINT,
//	                                        with OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT...
//	OTEL_METRICS_EXPORTER=console           the primitives' metrics (scalekitotel.Metrics) and
//	                                        otelpgx's printed to out as JSON, every
//	                                        OTEL_METRIC_EXPORT_INTERVAL ms (default 60000) and at shutdown
//	OTEL_METRICS_EXPORTER=otlp              OTLP over HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, or
//	                                        _METRICS_ENDPOINT, as often
//	OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*
//	OTEL_SDK_DISABLED=true                  off, whatever else is set
//
// Unlike the SDK's default (otlp), no OTEL_TRACES_EXPORTER means no
// tracing and no OTEL_METRICS_EXPORTER no OpenTelemetry metrics (the
// service's metrics are Prometheus's, on /metrics), unless an OTLP
// endpoint is set for them (then otlp): with nothing set it returns nil
// providers. OTEL_METRICS_EXPORTER=prometheus is refused: /metrics is
// that already. The shutdown func flushes and stops both.
func telemetryFromEnv(ctx context.Context, out io.Writer) (trace.TracerProvider, metric.MeterProvider, func(context.Context) error, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil, nil, nil
	}
	anyEndpoint := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
	traces := exporterFromEnv("OTEL_TRACES_EXPORTER", anyEndpoint || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "")
	metrics := exporterFromEnv("OTEL_METRICS_EXPORTER", anyEndpoint || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "")
	for _, e := range []struct{ name, value string }{{"OTEL_TRACES_EXPORTER", traces}, {"OTEL_METRICS_EXPORTER", metrics}} {
		switch e.value {
		case "none", "console", "otlp":
		default:
			return nil, nil, nil, fmt.Errorf("%s=%q: use none, console or otlp", e.name, e.value)
		}
	}
	if traces == "none" && metrics == "none" {
		return nil, nil, nil, nil
	}
	if traces == "otlp" || metrics == "otlp" {
		if p := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
			return nil, nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: this example speaks http/protobuf only", p)
		}
	}
	res, err := sdkresource.New(ctx, sdkresource.WithAttributes(attribute.String("service.name", serviceName)),
		sdkresource.WithFromEnv(), sdkresource.WithTelemetrySDK())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	var (
		tp        trace.TracerProvider
		mp        metric.MeterProvider
		shutdowns []func(context.Context) error
	)
	shutdown := func(ctx context.Context) error {
		var errs []error
		for _, f := range shutdowns {
			errs = append(errs, f(ctx))
		}
		return errors.Join(errs...)
	}
	if traces != "none" {
		p, err := newTracerProvider(ctx, traces, out, res)
		if err != nil {
			return nil, nil, nil, err
		}
		tp, shutdowns = p, append(shutdowns, p.Shutdown)
	}
	if metrics != "none" {
		p, err := newMeterProvider(ctx, metrics, out, res)
		if err != nil {
			return nil, nil, nil, errors.Join(err, shutdown(ctx))
		}
		mp, shutdowns = p, append(shutdowns, p.Shutdown)
	}
	return tp, mp, shutdown, nil
}

// exporterFromEnv is the exporter the variable key names: none when
// unset, unless endpoint (an OTLP endpoint is set for that signal).
func exporterFromEnv(key string, endpoint bool) string {
	switch e := os.Getenv(key); {
	case e != "":
		return e
	case endpoint:
		return "otlp"
	}
	return "none"
}

// newTracerProvider is a tracer provider exporting to exporter (console
// or otlp), with the sampler from OTEL_TRACES_SAMPLER.
func newTracerProvider(ctx context.Context, exporter string, out io.Writer, res *sdkresource.Resource) (*sdktrace.TracerProvider, error) {
	var opt sdktrace.TracerProviderOption
	if exporter == "console" {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(out))
		if err != nil {
			return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=console: %w", err)
		}
		opt = sdktrace.WithSyncer(exp) // printed as each span ends
	} else {
		exp, err := otlptracehttp.New(ctx) // reads OTEL_EXPORTER_OTLP_* itself
		if err != nil {
			return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=otlp: %w", err)
		}
		opt = sdktrace.WithBatcher(exp)
	}
	return sdktrace.NewTracerProvider(opt, sdktrace.WithResource(res)), nil
}

// newMeterProvider is a meter provider whose periodic reader (every
// OTEL_METRIC_EXPORT_INTERVAL, and at shutdown) exports to exporter
// (console or otlp).
func newMeterProvider(ctx context.Context, exporter string, out io.Writer, res *sdkresource.Resource) (*sdkmetric.MeterProvider, error) {
	var exp sdkmetric.Exporter
	var err error
	if exporter == "console" {
		exp, err = stdoutmetric.New(stdoutmetric.WithWriter(out))
	} else {
		exp, err = otlpmetrichttp.New(ctx) // reads OTEL_EXPORTER_OTLP_* itself
	}
	if err != nil {
		return nil, fmt.Errorf("OTEL_METRICS_EXPORTER=%s: %w", exporter, err)
	}
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)), sdkmetric.WithResource(res)), nil
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
	pgxMeters := mp
	if pgxMeters == nil {
		pgxMeters = metricnoop.NewMeterProvider() // not the global one
	}
	t.query = otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithMeterProvider(pgxMeters))
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

// configurePool is dbrouter.Options.ConfigurePool: otelpgx's span per
// query made within a span, with the routing decision on it (Compose:
// otelpgx first, then the route Tracer), and otelpgx's query metrics
// when a MeterProvider is set.
func (t *telemetry) configurePool(_ string, cfg *pgxpool.Config) error {
	if t == nil {
		return nil
	}
	if cfg.ConnConfig.Tracer != nil {
		return errors.New("the pool has a pgx tracer already")
	}
	cfg.ConnConfig.Tracer = t.route.Compose(t.query)
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
