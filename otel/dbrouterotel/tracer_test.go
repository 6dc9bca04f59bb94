package dbrouterotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/otel/dbrouterotel"
)

// TestMain shares the PostgreSQL primary + replica and checks for leaks.
func TestMain(m *testing.M) { testinfra.Main(m) }

// spanTracer is a span-making pgx tracer, as otelpgx is (which the
// module proxy does not serve here): a span "db" per query.
type spanTracer struct{ tr trace.Tracer }

func (s spanTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	ctx, _ = s.tr.Start(ctx, "db", trace.WithAttributes(attribute.String("db.query.text", d.SQL)))
	return ctx
}

func (s spanTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	trace.SpanFromContext(ctx).End()
}

// pool opens a pool on url whose tracer is t.
func pool(t *testing.T, url string, tr pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = tr
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// Composed after a span-making pgx tracer, the decision lands on each
// query's span: a read on the replica (any), Primary(ctx) (intent), a
// write (write).
func TestRouteOnQuerySpans(t *testing.T) {
	f := testinfra.Postgres(t)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	rt, err := dbrouterotel.New(dbrouterotel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mt := multitracer.New(spanTracer{tp.Tracer("pgx")}, rt)
	r, err := dbrouter.New(context.Background(), dbrouter.Options{Primary: pool(t, f.PrimaryURL, mt),
		Replicas: []*pgxpool.Pool{pool(t, f.ReplicaURL, mt)}, ReplicaNames: []string{"r1"}, RouteTracer: rt,
		Interval: 50 * time.Millisecond, CheckTimeout: testinfra.CallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if _, err := r.Exec(ctx, "SELECT 'write'"); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := r.QueryRow(ctx, "SELECT 'read'").Scan(&s); err != nil {
		t.Fatal(err)
	}
	if err := r.QueryRow(dbrouter.Primary(ctx), "SELECT 'intent'").Scan(&s); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"SELECT 'write'":  {"scalekit.dbrouter.target": "primary", "scalekit.dbrouter.reason": "write"},
		"SELECT 'read'":   {"scalekit.dbrouter.target": "replica", "scalekit.dbrouter.replica": "r1", "scalekit.dbrouter.reason": "any"},
		"SELECT 'intent'": {"scalekit.dbrouter.target": "primary", "scalekit.dbrouter.reason": "intent"},
	}
	seen := 0
	for _, sp := range sr.Ended() {
		a := attrs(sp)
		w, ok := want[a["db.query.text"]]
		if !ok {
			if a["scalekit.dbrouter.reason"] != "" {
				t.Errorf("the router's own query %q has a decision %v", a["db.query.text"], a)
			}
			continue
		}
		seen++
		for k, v := range w {
			if a[k] != v {
				t.Errorf("%s: %s = %q, want %q", a["db.query.text"], k, a[k], v)
			}
		}
	}
	if seen != 3 {
		t.Fatalf("saw %d of the 3 query spans", seen)
	}
}

// With CallerSpan and pools without a pgx tracer, the decision lands on
// the caller's span.
func TestRouteOnCallerSpan(t *testing.T) {
	f := testinfra.Postgres(t)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	rt, _ := dbrouterotel.New(dbrouterotel.Options{CallerSpan: true})
	r, err := dbrouter.New(context.Background(), dbrouter.Options{Primary: f.Primary, RouteTracer: rt})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	var s string
	err = r.QueryRow(ctx, "SELECT 'x'").Scan(&s)
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	a := attrs(sr.Ended()[0])
	if a["scalekit.dbrouter.target"] != "primary" || a["scalekit.dbrouter.reason"] != "primary_only" {
		t.Fatalf("caller span attributes %v", a)
	}
}
