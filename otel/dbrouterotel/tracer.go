package dbrouterotel

import (
	"context"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/dbrouter"
)

// The attribute keys.
const (
	// Target is primary or replica.
	Target = attribute.Key("scalekit.dbrouter.target")
	// Replica is the replica's name (as in dbrouter's Stats); unset for
	// the primary.
	Replica = attribute.Key("scalekit.dbrouter.replica")
	// Reason is why: dbrouter.RouteReason's String (write, any, intent,
	// fallback, no_replica, primary_only, token, token_wait,
	// replica_failed).
	Reason = attribute.Key("scalekit.dbrouter.reason")
)

// Options configures New. The zero value works.
type Options struct {
	// CallerSpan also sets the decision on the span in the statement's
	// ctx when the Router routes it, for pools with no pgx tracer (the
	// last statement's decision wins on a span that runs several).
	// Default: false, the pgx tracer side sets it on the query's span.
	CallerSpan bool
}

// Tracer is a dbrouter.RouteTracer and a pgx tracer (pgx.QueryTracer,
// pgx.BatchTracer, pgx.CopyFromTracer): see the package doc. It is safe
// for concurrent use.
type Tracer struct {
	callerSpan bool
}

var (
	_ dbrouter.RouteTracer = (*Tracer)(nil)
	_ pgx.QueryTracer      = (*Tracer)(nil)
	_ pgx.BatchTracer      = (*Tracer)(nil)
	_ pgx.CopyFromTracer   = (*Tracer)(nil)
)

// New returns a Tracer.
func New(o Options) (*Tracer, error) {
	return &Tracer{callerSpan: o.CallerSpan}, nil
}

type decisionKey struct{}

// TraceRoute keeps d in ctx for the pgx side (and with CallerSpan sets
// it on ctx's span).
func (t *Tracer) TraceRoute(ctx context.Context, d dbrouter.RouteData) context.Context {
	if t.callerSpan {
		annotate(ctx, d)
	}
	return context.WithValue(ctx, decisionKey{}, d)
}

// annotate sets d on the span in ctx, if it records.
func annotate(ctx context.Context, d dbrouter.RouteData) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if d.Replica == "" {
		span.SetAttributes(Target.String("primary"), Reason.String(d.Reason.String()))
		return
	}
	span.SetAttributes(Target.String("replica"), Replica.String(d.Replica), Reason.String(d.Reason.String()))
}

// fromCtx sets the decision ctx holds, if any, on ctx's span.
func fromCtx(ctx context.Context) context.Context {
	if d, ok := ctx.Value(decisionKey{}).(dbrouter.RouteData); ok {
		annotate(ctx, d)
	}
	return ctx
}

// TraceQueryStart sets the decision on the query's span.
func (t *Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return fromCtx(ctx)
}

// TraceQueryEnd does nothing.
func (t *Tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart sets the decision on the batch's span.
func (t *Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return fromCtx(ctx)
}

// TraceBatchQuery does nothing.
func (t *Tracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd does nothing.
func (t *Tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart sets the decision on the copy's span.
func (t *Tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return fromCtx(ctx)
}

// TraceCopyFromEnd does nothing.
func (t *Tracer) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}
