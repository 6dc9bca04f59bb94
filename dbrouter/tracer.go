package dbrouter

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/internal/logx"
)

// TracerOptions configures NewTracer.
type TracerOptions struct {
	// Target names the server in logs and stats ("primary", "replica-1").
	// Default: "postgres".
	Target string
	// SlowThreshold logs queries that take longer (Warn, with the target,
	// the duration, the SQL cut to 500 bytes and the error; never the
	// arguments). Default: 500ms.
	SlowThreshold time.Duration
	// Clock replaces the system clock (see package clock); nil is the real
	// time. It times the queries.
	Clock clock.Clock
	// Logger receives slow queries (Warn) and, when it is enabled at
	// Debug, every other query too (Debug: "dbrouter: query", with the
	// target, duration and SQL), each with the query's ctx, so a
	// requestid.NewLogHandler logger adds the request's ID. Default:
	// discard.
	Logger *slog.Logger
}

// Tracer is a pgx.QueryTracer and pgx.BatchTracer that counts the queries
// (each statement of a batch as one), errors and slow queries of one
// target and logs the slow ones. Set it as the
// ConnConfig.Tracer of the target's pool (Open does); a Router reports the
// counts of its pools' Tracers in Stats. It skips the router's own health
// checks. Use pgx's multitracer to combine it with another tracer. It is
// safe for concurrent use.
type Tracer struct {
	o                     TracerOptions
	queries, errors, slow atomic.Uint64
	nanos                 atomic.Int64
}

var (
	_ pgx.QueryTracer = (*Tracer)(nil)
	_ pgx.BatchTracer = (*Tracer)(nil)
)

// NewTracer returns a Tracer, or an error naming the option to fix.
func NewTracer(o TracerOptions) (*Tracer, error) {
	if o.Target == "" {
		o.Target = "postgres"
	}
	if o.SlowThreshold == 0 {
		o.SlowThreshold = defaultSlowQuery
	}
	if o.SlowThreshold < 0 {
		return nil, invalid("TracerOptions.SlowThreshold must be > 0, got %v", o.SlowThreshold)
	}
	o.Logger = logx.Or(o.Logger)
	return &Tracer{o: o}, nil
}

type traceKey struct{}

type traceStart struct {
	sql   string
	start time.Time
}

// TraceQueryStart notes the start of a query.
func (t *Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if ctx.Value(untracedKey{}) != nil {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, &traceStart{sql: data.SQL, start: clock.Now(t.o.Clock)})
}

// TraceQueryEnd counts the query and logs it: at Warn when slow, else at
// Debug.
func (t *Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	s, ok := ctx.Value(traceKey{}).(*traceStart)
	if !ok {
		return
	}
	t.end(ctx, s.sql, clock.Now(t.o.Clock).Sub(s.start), data.Err)
}

// TraceBatchStart notes the start of a batch (pgx.BatchTracer): its
// statements are counted and logged one by one, as queries are.
func (t *Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	if ctx.Value(untracedKey{}) != nil {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, &traceStart{start: clock.Now(t.o.Clock)})
}

// TraceBatchQuery counts and logs one statement of a batch, as
// TraceQueryEnd does a query. Its duration is the time since the batch's
// previous result (or its start): the statements of a batch share one round
// trip, so the first carries it.
func (t *Tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	s, ok := ctx.Value(traceKey{}).(*traceStart)
	if !ok {
		return
	}
	now := clock.Now(t.o.Clock)
	d := now.Sub(s.start)
	s.start = now // a batch's results are read by one goroutine, in order
	t.end(ctx, data.SQL, d, data.Err)
}

// TraceBatchEnd ends a batch: its statements were counted as they came.
func (t *Tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// end counts a finished statement and logs it: at Warn when slow, else at
// Debug.
func (t *Tracer) end(ctx context.Context, sql string, d time.Duration, err error) {
	t.queries.Add(1)
	t.nanos.Add(int64(d))
	if err != nil {
		t.errors.Add(1)
	}
	if d >= t.o.SlowThreshold {
		t.slow.Add(1)
		args := []any{"target", t.o.Target, "duration", d, "sql", truncate(sql, 500)}
		if err != nil {
			args = append(args, "err", err)
		}
		t.o.Logger.WarnContext(ctx, "dbrouter: slow query", args...)
		return
	}
	if t.o.Logger.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("target", t.o.Target), slog.Duration("duration", d), slog.String("sql", truncate(sql, 500))}
		if err != nil {
			attrs = append(attrs, slog.Any("err", err))
		}
		t.o.Logger.LogAttrs(ctx, slog.LevelDebug, "dbrouter: query", attrs...)
	}
}

// TracerStats counts what a Tracer saw (routerstats.TracerStats).
type TracerStats = routerstats.TracerStats

// Stats returns a snapshot of the counts.
func (t *Tracer) Stats() TracerStats {
	if t == nil {
		return TracerStats{}
	}
	return TracerStats{Target: t.o.Target, Queries: t.queries.Load(), Errors: t.errors.Load(),
		Slow: t.slow.Load(), Duration: time.Duration(t.nanos.Load())}
}
