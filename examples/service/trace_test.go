package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOneTracePerRequest follows one request through the service on real
// servers with tracing on (an SDK tracer provider with a span recorder,
// through Config.TracerProvider): POST /users/5/welcome misses the cache,
// loads the user from the replica through dbrouter and enqueues an email
// job the worker runs. Its trace holds the HTTP server span, the cache
// load under it, the replica query under that (with the routing
// decision), the enqueue span and the job's attempt span, a child of
// (and linked to) the enqueue span: one trace id from the request to the
// job.
func TestOneTracePerRequest(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	base, _ := startService(t, io.Discard, func(c *Config) { c.TracerProvider, c.MeterProvider = tp, mp })
	client := &http.Client{Timeout: 10 * time.Second}
	waitReplicaReads(t, client, base)

	const rid = "e2e-trace-5"
	accepted := welcome(t, client, base, rid)

	// The request's server span; then, once the job has run, its trace.
	var server sdktrace.ReadOnlySpan
	eventually(t, 20*time.Second, "the request's server span", func() bool {
		for _, s := range sr.Ended() {
			if s.SpanKind() == trace.SpanKindServer && s.Name() == "POST /users/{id}/welcome" {
				server = s
				return true
			}
		}
		return false
	})
	var spans []sdktrace.ReadOnlySpan
	eventually(t, 20*time.Second, "the job's attempt span in the request's trace", func() bool {
		spans = spans[:0]
		done := false
		for _, s := range sr.Ended() {
			if s.SpanContext().TraceID() != server.SpanContext().TraceID() {
				continue
			}
			spans = append(spans, s)
			done = done || s.Name() == "process emails" && attr(s, "messaging.message.id") == accepted.JobID
		}
		return done
	})
	defer func() {
		if t.Failed() {
			for _, s := range spans {
				t.Logf("%s span %s parent %s: %v", s.Name(), s.SpanContext().SpanID(), s.Parent().SpanID(), s.Attributes())
			}
		}
	}()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	// under reports whether s descends from anc in the trace.
	under := func(s, anc sdktrace.ReadOnlySpan) bool {
		for p, ok := s, true; ok; p, ok = byID[p.Parent().SpanID()] {
			if p.Parent().SpanID() == anc.SpanContext().SpanID() {
				return true
			}
		}
		return false
	}
	find := func(what string, match func(s sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
		t.Helper()
		for _, s := range spans {
			if match(s) {
				return s
			}
		}
		t.Fatalf("no %s in the request's trace", what)
		return nil
	}
	if got := attr(server, "http.route"); got != "/users/{id}/welcome" {
		t.Errorf("server span http.route %q", got)
	}
	load := find("cache load span", func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == "cache get users" && attr(s, "scalekit.cache.tier") == "loader"
	})
	query := find("replica query span", func(s sdktrace.ReadOnlySpan) bool { // otelpgx's, not its prepare span
		return s.SpanKind() == trace.SpanKindClient && strings.Contains(attr(s, "db.query.text"), "FROM users") && attr(s, "pgx.prepare_stmt.name") == ""
	})
	enqueue := find("enqueue span", func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == "send emails" && s.SpanKind() == trace.SpanKindProducer
	})
	attempt := find("attempt span", func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == "process emails" && attr(s, "messaging.message.id") == accepted.JobID
	})
	for name, s := range map[string]sdktrace.ReadOnlySpan{"cache load": load, "query": query, "enqueue": enqueue, "attempt": attempt} {
		if !under(s, server) {
			t.Errorf("the %s span is not under the server span", name)
		}
	}
	if !under(query, load) {
		t.Error("the query span is not under the cache load span")
	}
	// The user is read in a batch (dbrouter's ReadBatch): the routing is on
	// the batch's span, the query span's parent.
	routed := query
	for _, s := range spans {
		if s.SpanContext().SpanID() == query.Parent().SpanID() && attr(s, "db.operation.batch.size") != "" {
			routed = s
		}
	}
	if got := fmt.Sprint(attr(routed, "scalekit.dbrouter.target"), " ", attr(routed, "scalekit.dbrouter.reason")); got != "replica any" {
		t.Errorf("query span routing: %q, want replica any", got)
	}
	if attempt.Parent().SpanID() != enqueue.SpanContext().SpanID() {
		t.Error("the attempt span is not the enqueue span's child")
	}
	linked := false
	for _, l := range attempt.Links() {
		linked = linked || l.SpanContext.SpanID() == enqueue.SpanContext().SpanID()
	}
	if !linked {
		t.Error("the attempt span is not linked to the enqueue span")
	}
	if got := attr(attempt, "scalekit.queue.outcome"); got != "completed" {
		t.Errorf("attempt outcome %q", got)
	}
	t.Logf("one trace %s, %d spans", server.SpanContext().TraceID(), len(spans))

	// The MeterProvider gets the primitives' Stats: the user cache's L1
	// miss of this request among them.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	misses := 0.0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[float64]); ok && m.Name == "scalekit_cache_misses" {
				for _, dp := range sum.DataPoints {
					if v, _ := dp.Attributes.Value("name"); v.AsString() == "users" {
						misses += dp.Value
					}
				}
			}
		}
	}
	if misses < 1 {
		t.Errorf("the OpenTelemetry metrics show %v misses of the users cache, want at least 1", misses)
	}

	// No trace for the probes.
	for _, s := range sr.Ended() {
		if strings.Contains(s.Name(), "/health/") || strings.Contains(s.Name(), "/metrics") {
			t.Errorf("a probe made a span: %s", s.Name())
		}
	}
}

// attr is s's attribute key as a string ("" when unset).
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}
