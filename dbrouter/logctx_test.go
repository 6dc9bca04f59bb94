package dbrouter

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/requestid"
)

// The router's lines about a request are logged with its ctx, so a
// requestid.NewLogHandler logger gives each its request_id: the Tracer's
// (a query at Debug, a slow one at Warn) and the HTTP middleware's (a
// malformed token at Debug).
func TestLogsCarryTheRequestID(t *testing.T) {
	b := &logBuf{}
	log := slog.New(requestid.NewLogHandler(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	clk := testclock.New()
	tr, err := NewTracer(TracerOptions{Target: "replica-1", SlowThreshold: 100 * time.Millisecond, Clock: clk, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := requestid.NewContext(context.Background(), "req-db")
	for _, d := range []time.Duration{time.Millisecond, time.Second} {
		qctx := tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"})
		clk.Add(d)
		tr.TraceQueryEnd(qctx, nil, pgx.TraceQueryEndData{})
	}
	synctest.Test(t, func(t *testing.T) {
		r, _ := newFake(t, Options{Logger: log}, 1)
		defer r.Close()
		hl, err := NewHTTP(HTTPOptions{Router: r})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
		req.Header.Set("X-DB-Token", "not a token")
		hl.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(httptest.NewRecorder(), req)
	})
	out := b.String()
	for _, msg := range []string{`msg="dbrouter: query"`, `msg="dbrouter: slow query"`, `msg="dbrouter: ignoring a malformed token"`} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, msg) {
				found = true
				if !strings.Contains(line, "request_id=req-db") {
					t.Errorf("no request_id: %s", line)
				}
			}
		}
		if !found {
			t.Errorf("no line %s in:\n%s", msg, out)
		}
	}
}
