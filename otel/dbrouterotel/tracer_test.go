package dbrouterotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/otel/dbrouterotel"
)

// TestMain shares the PostgreSQL primary + replica and checks for leaks.
func TestMain(m *testing.M) { testinfra.Main(m) }

// recorder is a real SDK TracerProvider recording every ended span.
func recorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, sr
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

// Composed after otelpgx's tracer, the decision lands on each query's
// span: a read on the replica (any), Primary(ctx) (intent), a write
// (write); the router's own queries (replay checks) have none.
func TestRouteOnQuerySpans(t *testing.T) {
	f := testinfra.Postgres(t)
	tp, sr := recorder(t)
	rt, err := dbrouterotel.New(dbrouterotel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mt := rt.Compose(newOtelpgx(tp))
	r, err := dbrouter.New(context.Background(), dbrouter.Options{Primary: pool(t, f.PrimaryURL, mt),
		Replicas: []*pgxpool.Pool{pool(t, f.ReplicaURL, mt)}, ReplicaNames: []string{"r1"}, RouteTracer: rt,
		Interval: 50 * time.Millisecond, CheckTimeout: testinfra.CallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request") // otelpgx traces queries within a span
	defer parent.End()
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
		if !isQuery(a) {
			continue
		}
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
	tp, sr := recorder(t)
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
