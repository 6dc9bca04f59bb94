package dbrouterotel

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The database semantic conventions' keys the QueryTracer sets (kept
// here rather than importing a semconv version).
const (
	dbSystem     = attribute.Key("db.system.name")
	dbNamespace  = attribute.Key("db.namespace")
	dbOperation  = attribute.Key("db.operation.name")
	dbQueryText  = attribute.Key("db.query.text")
	dbStatusCode = attribute.Key("db.response.status_code")
	errorType    = attribute.Key("error.type")
	serverAddr   = attribute.Key("server.address")
	serverPort   = attribute.Key("server.port")
)

// QueryTracerOptions configures NewQueryTracer. The zero value works.
type QueryTracerOptions struct {
	// TracerProvider makes the spans. Default: the global one
	// (otel.GetTracerProvider), a no-op until the program sets one.
	TracerProvider trace.TracerProvider
	// RootSpans makes a span for a query whose ctx holds no span too.
	// Default: false: only a query made within a span (a request's, a
	// job attempt's) gets one, so a pool's background statements
	// (dbrouter's replay checks, a queue backend's polls) make no
	// traces of their own.
	RootSpans bool
}

// QueryTracer is a minimal span-making pgx.QueryTracer, for programs
// without otelpgx: one client span per query, named by its operation
// (SELECT, INSERT...), with the database semantic conventions'
// db.system.name (postgresql), db.namespace, db.operation.name,
// db.query.text (the SQL as sent: with pgx's $n placeholders, no
// argument values), server.address and server.port, and on failure the
// error, the span's status and the SQLSTATE (db.response.status_code).
// Compose it before the Tracer in a multitracer, which then puts the
// routing decision on its spans. It is safe for concurrent use.
type QueryTracer struct {
	tracer trace.Tracer
	root   bool
}

var _ pgx.QueryTracer = (*QueryTracer)(nil)

// NewQueryTracer returns a QueryTracer.
func NewQueryTracer(o QueryTracerOptions) (*QueryTracer, error) {
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &QueryTracer{tracer: tp.Tracer(ScopeName), root: o.RootSpans}, nil
}

// ScopeName is the instrumentation scope of the QueryTracer's spans.
const ScopeName = "github.com/scalekit-go/scalekit/otel/dbrouterotel"

// querySpanKey marks a ctx whose span the QueryTracer started, so that
// TraceQueryEnd never ends the caller's.
type querySpanKey struct{}

// TraceQueryStart starts the query's span.
func (q *QueryTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !q.root && !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	op := operation(d.SQL)
	name := op
	if name == "" {
		name = "postgresql"
	}
	attrs := []attribute.KeyValue{dbSystem.String("postgresql"), dbQueryText.String(d.SQL)}
	if op != "" {
		attrs = append(attrs, dbOperation.String(op))
	}
	if conn != nil {
		if cfg := conn.Config(); cfg != nil {
			attrs = append(attrs, dbNamespace.String(cfg.Database), serverAddr.String(cfg.Host), serverPort.Int(int(cfg.Port)))
		}
	}
	ctx, span := q.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, querySpanKey{}, span)
}

// TraceQueryEnd ends the query's span, with its error if it failed.
func (q *QueryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	span, ok := ctx.Value(querySpanKey{}).(trace.Span)
	if !ok {
		return
	}
	if d.Err != nil {
		span.RecordError(d.Err)
		span.SetStatus(codes.Error, d.Err.Error())
		var pgErr *pgconn.PgError
		if errors.As(d.Err, &pgErr) {
			span.SetAttributes(dbStatusCode.String(pgErr.Code), errorType.String(pgErr.Code))
		} else {
			span.SetAttributes(errorType.String("_OTHER"))
		}
	}
	span.End()
}

// operation is the SQL's first keyword, upper-cased (SELECT, INSERT,
// WITH...), or "" when it does not start with one.
func operation(sql string) string {
	sql = strings.TrimLeft(sql, " \t\r\n(")
	end := strings.IndexFunc(sql, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
	})
	if end < 0 {
		end = len(sql)
	}
	if end == 0 || end > 16 {
		return ""
	}
	return strings.ToUpper(sql[:end])
}
