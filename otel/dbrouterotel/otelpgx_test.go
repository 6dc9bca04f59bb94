package dbrouterotel_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/otel/dbrouterotel"
)

// newOtelpgx is otelpgx's tracer on tp, its metrics off.
func newOtelpgx(tp trace.TracerProvider) *otelpgx.Tracer {
	return otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithMeterProvider(metricnoop.NewMeterProvider()))
}

// isQuery reports an otelpgx query span (not its prepare, acquire or
// connect spans).
func isQuery(a map[string]string) bool {
	_, prepare := a[string(otelpgx.PrepareStmtNameKey)]
	return a["db.query.text"] != "" && !prepare
}

// otelpgx's tracer composed with the route Tracer (Compose) makes a span
// per query under the caller's span, holding the routing decision (its
// prepare spans too); queries made outside any span (the router's replay
// checks) make none; a failed query's span has the error and its
// SQLSTATE. Many goroutines at once each get their own span under their
// own parent.
func TestOtelpgxSpans(t *testing.T) {
	f := testinfra.Postgres(t)
	tp, sr := recorder(t)
	rt, _ := dbrouterotel.New(dbrouterotel.Options{})
	mt := rt.Compose(newOtelpgx(tp))
	replica := pool(t, f.ReplicaURL, mt)
	r, err := dbrouter.New(context.Background(), dbrouter.Options{Primary: pool(t, f.PrimaryURL, mt),
		Replicas: []*pgxpool.Pool{replica}, ReplicaNames: []string{"r1"}, RouteTracer: rt,
		Interval: 50 * time.Millisecond, CheckTimeout: testinfra.CallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tr := tp.Tracer("test")

	ctx, parent := tr.Start(context.Background(), "request")
	var s string
	if err := r.QueryRow(ctx, "SELECT 'read'").Scan(&s); err != nil {
		t.Fatal(err)
	}
	_, err = r.Exec(ctx, "INSERT INTO no_such_table VALUES (1)")
	if err == nil {
		t.Fatal("the insert into a missing table succeeded")
	}
	// A read-only transaction: the Router routes its BEGIN; its
	// statements, which reach the pool with ctx as it is, get BEGIN's
	// decision too, until COMMIT.
	tx, err := r.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT 'in tx'").Scan(&s); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// After it, a statement on the replica's pool that the Router did not
	// route has no decision.
	if err := replica.QueryRow(ctx, "SELECT 'unrouted'").Scan(&s); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if err := r.QueryRow(context.Background(), "SELECT 'no parent'").Scan(&s); err != nil {
		t.Fatal(err)
	}

	const workers, each = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				ctx, p := tr.Start(context.Background(), "worker")
				var n int
				if err := r.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
					t.Error(err)
				}
				p.End()
			}
		})
	}
	wg.Wait()

	byText := map[string]sdktrace.ReadOnlySpan{}
	workerQueries, prepares := 0, 0
	for _, sp := range sr.Ended() {
		a := attrs(sp)
		if sp.Name() == "request" || sp.Name() == "worker" {
			continue
		}
		if !sp.Parent().IsValid() {
			t.Errorf("a span outside any caller's span: %q %v", sp.Name(), a)
			continue
		}
		if !isQuery(a) {
			if a[string(otelpgx.PrepareStmtNameKey)] != "" && a["db.query.text"] == "SELECT 'read'" {
				prepares++
				if a["scalekit.dbrouter.target"] != "replica" || a["scalekit.dbrouter.replica"] != "r1" {
					t.Errorf("the read's prepare span has no decision: %v", a)
				}
			}
			continue
		}
		if sp.Parent().SpanID() == parent.SpanContext().SpanID() {
			byText[a["db.query.text"]] = sp
			continue
		}
		if a["db.query.text"] == "SELECT 1" {
			workerQueries++
			continue
		}
		t.Errorf("an unexpected query span: %q %v", sp.Name(), a)
	}
	if prepares != 1 {
		t.Errorf("%d prepare spans for the read, want 1", prepares)
	}
	read, ok := byText["SELECT 'read'"]
	if !ok {
		t.Fatalf("no span for the read under the request's span; got %v", byText)
	}
	a := attrs(read)
	for k, v := range map[string]string{"db.system.name": "postgresql", "db.operation.name": "SELECT",
		"scalekit.dbrouter.target": "replica", "scalekit.dbrouter.replica": "r1", "scalekit.dbrouter.reason": "any"} {
		if a[k] != v {
			t.Errorf("read span: %s = %q, want %q (all: %v)", k, a[k], v, a)
		}
	}
	if read.Name() != "SELECT" || a["db.namespace"] == "" || a["server.port"] == "" {
		t.Errorf("read span %q: %v", read.Name(), a)
	}
	for _, q := range []string{"SELECT 'in tx'", "commit"} {
		sp, ok := byText[q]
		if a := attrs(sp); !ok || a["scalekit.dbrouter.target"] != "replica" || a["scalekit.dbrouter.reason"] != "any" {
			t.Errorf("%s in the routed transaction: %v", q, a)
		}
	}
	if a := attrs(byText["SELECT 'unrouted'"]); a["db.query.text"] == "" || a["scalekit.dbrouter.target"] != "" {
		t.Errorf("the unrouted statement after the transaction: %v", a)
	}
	failed, ok := byText["INSERT INTO no_such_table VALUES (1)"]
	if !ok {
		t.Fatal("no span for the failed insert")
	}
	if a := attrs(failed); failed.Status().Code != codes.Error || a[string(otelpgx.SQLStateKey)] != "42P01" || a["scalekit.dbrouter.target"] != "primary" {
		t.Errorf("failed insert span: status %v, attributes %v", failed.Status(), a)
	}
	if workerQueries != workers*each {
		t.Errorf("%d query spans under the workers' spans, want %d", workerQueries, workers*each)
	}
}
